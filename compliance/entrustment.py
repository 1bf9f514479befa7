"""The entrustment contract of a node hosted by another party (PIPL Art. 21; checklist PIPL-ROLE-02).

A brand that lets an operator host its node or its SuperLink entrusts it with processing. Art. 21
asks for an agreement on the purpose, duration, method, PI categories and protective measures; the
entrusted party returns or deletes the data when it ends, and entrusts no one else without the
brand's consent. A compliance officer records those terms (``alliance-node entrustment set``) in
``entrustment.json`` in the node's directory; audit events about the host then cite the contract
as their recipient (role ``entrusted``, ``contract_id``). A host's staff key is issued only while
a contract is in force, and ``alliance-node decommission`` names it in the deletion attestation.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from compliance.purposes import catalogue

ENTRUSTMENT_FILE = "entrustment.json"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Terms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(_Terms):
    """The entrusted party: who hosts the node, and how the brand reaches them."""

    name: Name
    contact: Name


class Subcontractor(_Terms):
    """Someone the entrusted party entrusts in turn, which Art. 21 allows only with the brand's consent."""

    name: Name
    brand_consent: Name = Field(description="the reference of the brand's written consent to this sub-entrustment")


class Entrustment(_Terms):
    """The terms of the entrustment contract, as the compliance officer records them."""

    contract_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,80}$")]
    party: Party
    purpose: Text
    method: Text = Field(description="how the party processes: what it runs, where, what it may see")
    pi_categories: tuple[str, ...] = Field(min_length=1, description="PI categories the hosted node holds")
    protections: tuple[Text, ...] = Field(min_length=1, description="the protective measures the party keeps")
    valid_from: date
    valid_until: date
    at_end: Literal["delete", "return_and_delete"] = Field(
        default="delete", description="what the party does with the data when the contract ends"
    )
    subcontractors: tuple[Subcontractor, ...] = ()

    @field_validator("pi_categories")
    @classmethod
    def _known_categories(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(catalogue().categories))
        if unknown:
            known = ", ".join(catalogue().categories)
            raise ValueError(f"unknown PI categories {unknown}: the catalogue has {known}")
        return v

    @model_validator(mode="after")
    def _a_real_term(self) -> Entrustment:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self

    def in_force(self, on: date) -> bool:
        """Whether the contract covers day ``on``."""
        return self.valid_from <= on <= self.valid_until

    def recipient(self) -> dict[str, str]:
        """The contract as an audit event's ``recipient``: the party, role ``entrusted``, the contract id."""
        return {"id": self.party.name, "role": "entrusted", "contract_id": self.contract_id}


def load_entrustment(data_dir: Path) -> Entrustment | None:
    """The contract recorded in ``data_dir`` (None if the node is not hosted under one)."""
    path = data_dir / ENTRUSTMENT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Entrustment.model_validate_json(text)
    except ValueError as exc:
        raise ValueError(f"{path} does not hold a valid entrustment contract: {exc}") from exc


def save_entrustment(data_dir: Path, terms: Entrustment) -> Path:
    """Record ``terms`` in ``data_dir`` (replacing any earlier contract, never half-written); return the file."""
    path = data_dir / ENTRUSTMENT_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(terms.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def summary(terms: Entrustment) -> dict[str, Any]:
    """What an audit event's details say about the contract (flat values only)."""
    return {
        "contract_id": terms.contract_id,
        "party": terms.party.name,
        "valid_from": terms.valid_from.isoformat(),
        "valid_until": terms.valid_until.isoformat(),
        "at_end": terms.at_end,
        "subcontractors": len(terms.subcontractors),
    }
