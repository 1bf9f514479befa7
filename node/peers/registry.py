"""The alliance registry: one file listing every brand's node, which every node loads.

Each brand: node id, name, Ed25519 verifier key, URL, region, the value of one of its points in
fen (a ``Decimal``: a mile may be worth 4.5 fen) and the fee it charges on points leaving it. A
node absent from the registry is refused for exchange; its key is the only one accepted for its
quotes and peer calls.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from ledger import note
from ledger.errors import LedgerError
from node.core.refusals import Refused

NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,200}$")]


class UnknownBrandError(Refused, LookupError):
    """A node id that is not in the alliance registry (reason ``unknown_brand``)."""

    def __init__(self, message: str) -> None:
        super().__init__("unknown_brand", message)

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else "unknown brand"


class Brand(BaseModel):
    """One brand's node as the alliance knows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: NodeId
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    vkey: str = Field(description="the node's Ed25519 verifier key, Go note text form")
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=500)]
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "CN"
    point_value_fen: Decimal = Field(gt=0, le=Decimal(1_000_000), decimal_places=4)
    exchange_fee: Decimal = Field(ge=0, lt=1, decimal_places=4, description="share kept on points leaving")

    @model_validator(mode="after")
    def _key_names_the_node(self) -> Brand:
        try:
            verifier = note.Verifier.from_vkey(self.vkey)
        except LedgerError as exc:
            raise ValueError(f"brand {self.node_id}: {exc}") from exc
        if verifier.name != self.node_id:
            raise ValueError(f"brand {self.node_id}: its key is named {verifier.name!r}")
        return self

    @property
    def verifier(self) -> note.Verifier:
        """The key this brand signs quotes, checkpoints and peer calls with."""
        return note.Verifier.from_vkey(self.vkey)


class JointPurpose(BaseModel):
    """A purpose the alliance runs jointly (PIPL Art. 20): its handlers, their agreement and who does what.

    A member's withdrawal, correction or erasure at one handler for this purpose reaches every other
    (:mod:`node.peers.joint`); a transfer for it between two of them is recorded with the role ``joint``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: Annotated[str, StringConstraints(pattern=r"^[a-z_.]{1,64}$")] = Field(
        description="a purpose family of the catalogue, e.g. joint_modeling"
    )
    handlers: tuple[NodeId, ...] = Field(min_length=2)
    agreement: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="the reference of the joint handlers' agreement"
    )
    duties: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")], Annotated[str, StringConstraints(max_length=200)]
    ] = Field(default_factory=dict, description="the allocation of duties: duty -> a handler's node id, or 'each'")

    @model_validator(mode="after")
    def _known_purpose(self) -> JointPurpose:
        from compliance.purposes import PurposeError, catalogue

        try:
            catalogue().purpose(self.purpose)
        except PurposeError as exc:
            raise ValueError(f"joint purpose {self.purpose!r}: {exc}") from exc
        return self


class Registry(BaseModel):
    """Every brand of the alliance, by node id, and the purposes they run jointly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alliance: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    version: int = Field(ge=1)
    brands: tuple[Brand, ...] = Field(min_length=1)
    joint: tuple[JointPurpose, ...] = ()

    @model_validator(mode="after")
    def _handlers_are_brands(self) -> Registry:
        known = {b.node_id for b in self.brands}
        for j in self.joint:
            stranger = sorted(set(j.handlers) - known)
            if stranger:
                raise ValueError(f"joint purpose {j.purpose}: {', '.join(stranger)} not among the brands")
            for duty, who in j.duties.items():
                if who != "each" and who not in j.handlers:
                    raise ValueError(f"joint purpose {j.purpose}: duty {duty} goes to {who!r}, not a handler")
        return self

    def joint_handlers(self, purpose: str, node_id: str) -> tuple[str, ...]:
        """The other joint handlers of ``purpose`` (a code or its family) with ``node_id``; none if it
        is not run jointly or ``node_id`` is not one of its handlers."""
        family = purpose.split(":", 1)[0]
        return tuple(
            h for j in self.joint if j.purpose == family and node_id in j.handlers for h in j.handlers if h != node_id
        )

    @field_validator("brands")
    @classmethod
    def _unique(cls, v: tuple[Brand, ...]) -> tuple[Brand, ...]:
        seen: set[str] = set()
        for b in v:
            if b.node_id in seen:
                raise ValueError(f"brand {b.node_id} is listed twice")
            seen.add(b.node_id)
        return v

    def brand(self, node_id: str) -> Brand:
        """The brand ``node_id``, or :class:`UnknownBrandError`."""
        for b in self.brands:
            if b.node_id == node_id:
                return b
        raise UnknownBrandError(f"{node_id!r} is not in the alliance registry (version {self.version})")


def load_registry(path: Path) -> Registry:
    """Read and validate a registry file (TOML), with one clear error for anything wrong."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: the alliance registry is needed for exchange") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    return Registry.model_validate(raw)


class BrandBook(Protocol):
    """Anything that finds a brand by node id: a :class:`Registry`, or a node's :class:`RegistryFile`."""

    def brand(self, node_id: str) -> Brand:
        """The brand ``node_id``, or :class:`UnknownBrandError`."""
        ...


class RegistryFile:
    """A node's registry file, read at its first use: a node that never exchanges needs none."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        """Whether the file is there (without reading it)."""
        return self.path.exists()

    @cached_property
    def registry(self) -> Registry:
        """The registry as the file says (read once); ``not_in_registry`` while there is no file."""
        try:
            return load_registry(self.path)
        except FileNotFoundError as exc:  # a node not in an alliance yet: nothing to exchange with
            raise Refused("not_in_registry", str(exc)) from exc

    @property
    def brands(self) -> tuple[Brand, ...]:
        """Every brand of the alliance."""
        return self.registry.brands

    def brand(self, node_id: str) -> Brand:
        """The brand ``node_id``, or :class:`UnknownBrandError`."""
        return self.registry.brand(node_id)

    def joint_handlers(self, purpose: str, node_id: str) -> tuple[str, ...]:
        """The other joint handlers of ``purpose`` with ``node_id`` (none without a registry file)."""
        return self.registry.joint_handlers(purpose, node_id) if self.exists() else ()

    def role_of(self, recipient: str, purpose: str, node_id: str | None = None) -> str:
        """The PIPL role in which ``recipient`` receives data for ``purpose``: ``joint`` when both run it
        jointly (Art. 20), else ``independent`` (Art. 23)."""
        if not self.exists():
            return "independent"
        family = purpose.split(":", 1)[0]
        joint = any(j.purpose == family and recipient in j.handlers and (node_id is None or node_id in j.handlers)
                    for j in self.registry.joint)
        return "joint" if joint else "independent"

    def own(self, node_id: str) -> Brand:
        """This node's own entry; ``not_in_registry`` while the alliance has not listed it yet."""
        try:
            return self.brand(node_id)
        except UnknownBrandError as exc:
            raise Refused("not_in_registry", f"this node is not in the alliance registry: {exc}") from exc
