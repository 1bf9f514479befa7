"""The node's public interface is what we recorded: the OpenAPI document and every command's options.

A change to either is a change for the brands' apps and operators' scripts, so it must be made on
purpose: rewrite the records with ``ALLIANCE_UPDATE_INTERFACE=1 pytest tests/test_interface.py``
and let the diff of ``tests/data/interface/`` show what changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest
import typer

from node.api.app import create_app
from node.cli.main import app as cli_app
from node.core.datadir import init_node
from node.runtime import Node

RECORDS = Path(__file__).parent / "data" / "interface"
UPDATE = os.environ.get("ALLIANCE_UPDATE_INTERFACE") == "1"


def _check(name: str, current: Any) -> None:
    path = RECORDS / name
    text = json.dumps(current, indent=1, sort_keys=True) + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert json.loads(path.read_text()) == json.loads(text), f"{name} changed: see this module's docstring"


def _options(command: click.Command) -> list[dict[str, Any]]:
    """What a caller can pass to a command: names, kind, whether required, default (not the help text)."""
    return [
        {
            "name": p.name,
            "kind": p.param_type_name,
            "flags": sorted([*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())]),
            "required": p.required,
            "multiple": getattr(p, "multiple", False),
            "default": None if callable(p.default) else repr(p.default),
        }
        for p in sorted(command.params, key=lambda p: p.name or "")
    ]


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    found = {" ".join(path) or "alliance-node": _options(group)}
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            found |= _commands(sub, (*path, name))
    return found


def test_the_openapi_document_is_the_recorded_one(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    try:
        _check("openapi.json", create_app(node).openapi())
    finally:
        node.dispose()


def test_every_command_keeps_its_recorded_options() -> None:
    _check("cli-options.json", _commands(typer.main.get_command(cli_app)))


@pytest.mark.skipif(UPDATE, reason="the records are being rewritten")
def test_the_records_cover_every_command() -> None:
    recorded = json.loads((RECORDS / "cli-options.json").read_text())
    assert len(recorded) > 50
    assert {"serve", "ledger verify", "federate run", "federation run", "chain verify"} <= set(recorded)
