"""Read access to the node's logs: checkpoints, entries with inclusion proofs, consistency proofs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from ledger import note
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import LogDep, NodeDep, Staff
from node.api.problems import Problem

router = APIRouter(prefix="/v1/logs", tags=["ledger"], route_class=OffLoopJsonRoute)
Size = Annotated[int, Query(ge=0, le=2**62)]


class LogInfo(BaseModel):
    """A log's name, origin and current head."""

    name: str
    origin: str
    size: int
    root_hash: str


class EntryProof(BaseModel):
    """An entry and its inclusion proof in the tree of ``tree_size``."""

    index: int
    data_b64: str
    leaf_hash: str
    tree_size: int
    inclusion_proof: list[str]


class ConsistencyProof(BaseModel):
    """A consistency proof between two tree sizes (base64 hashes)."""

    first: int
    second: int
    proof: list[str]


@router.get("")
def list_logs(node: NodeDep) -> list[LogInfo]:
    """Every log of this node with its head."""
    out = []
    for name in node.store.log_names():
        log = node.store.log(name)
        head = log.head()
        out.append(LogInfo(name=name, origin=log.origin, size=head.size, root_hash=head.root_hash.hex()))
    return out


@router.get(
    "/{name}/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "a C2SP signed checkpoint"}},
)
def checkpoint(log: LogDep, node: NodeDep) -> PlainTextResponse:
    """The signed checkpoint of the current head, with the witnesses' cosignatures collected so far."""
    return PlainTextResponse(log.current_checkpoint(node.signer))


@router.get("/{name}/entries/{index}")
def entry(
    log: LogDep, _: Staff, index: Annotated[int, Path(ge=0, le=2**62)], tree_size: Size | None = None
) -> EntryProof:
    """Entry ``index`` with its inclusion proof at ``tree_size`` (default: the current size). Staff only:
    entries hold pseudonymised records; checkpoints and consistency proofs (hashes only) are public."""
    size = log.size if tree_size is None else tree_size
    if index >= size:
        raise Problem(404, f"entry {index} is not in the tree of size {size}")
    e = log.entry(index)
    proof = log.inclusion_proof(index, size)
    return EntryProof(
        index=index,
        data_b64=note.b64encode(e.data),
        leaf_hash=e.leaf_hash.hex(),
        tree_size=size,
        inclusion_proof=[note.b64encode(p) for p in proof],
    )


@router.get("/{name}/consistency")
def consistency(log: LogDep, first: Size, second: Size) -> ConsistencyProof:
    """The consistency proof from tree size ``first`` to ``second``."""
    if first == 0 or first > second:
        raise Problem(400, "need 1 <= first <= second")
    proof = log.consistency_proof(first, second)
    return ConsistencyProof(first=first, second=second, proof=[note.b64encode(p) for p in proof])
