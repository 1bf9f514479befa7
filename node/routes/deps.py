"""Typed dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger.storage import Log
from node.identity import Node
from node.problems import Problem


def get_node(request: Request) -> Node:
    """The node this app serves."""
    return request.app.state.node


NodeDep = Annotated[Node, Depends(get_node)]


def get_log(name: str, node: NodeDep) -> Log:
    """The log named in the path, or a 404 problem."""
    if name not in node.store.log_names():
        raise Problem(404, f"this node has no log named {name!r}")
    return node.store.log(name)


LogDep = Annotated[Log, Depends(get_log)]
