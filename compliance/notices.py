"""Versioned privacy notices with every field PIPL Art. 17 (and NDSMR Art. 21) requires.

A notice is validated before it can be published: one missing field and it is rejected. Each
consent stores the notice version and its SHA-256, and a new version that widens a purpose (new
PI categories or methods) blocks that purpose for members who consented under the old one until
they renew (PIPL Art. 14 para. 2).

A notice is published as :func:`notice_bytes`: its JSON with keys sorted and no whitespace, as in
:func:`ledger.canonical.canonical_json`, but UTF-8 with every character as itself, where canonical
JSON escapes non-ASCII as ``\\uXXXX``. Members are shown these bytes and consents pin their
SHA-256, so they cannot change for a notice already published (see :func:`notice_bytes`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from compliance.purposes import PurposeError, catalogue

NonEmpty = Field(min_length=1)


#: PIPL Art. 52 and the CAC announcement of 2025-07-18: from one million individuals a PI protection
#: officer is appointed, their contact published in the notice and reported to the city-level CAC.
PIPO_THRESHOLD = 1_000_000


class NoticeError(ValueError):
    """A notice that misses a required field or contradicts the purpose catalogue."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Handler(_Strict):
    """The PI handler (the brand): who processes, and how to reach them."""

    name: str = NonEmpty
    contact: str = NonEmpty
    uscc: str = Field(default="", description="Unified Social Credit Code of the company")
    pipo_contact: str = Field(default="", description="PI protection officer; required at >= 1M individuals")


class PurposeTerms(_Strict):
    """What the notice says about one purpose (PIPL Art. 17(1)(2),(3))."""

    description: str = NonEmpty
    pi_categories: list[str] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)
    retention: str = NonEmpty
    at_expiry: str = Field(min_length=1, description="what happens to the data when retention ends")


class Recipient(_Strict):
    """A party PI is provided to (PIPL Art. 23; NDSMR Art. 21 para. 2)."""

    name: str = NonEmpty
    contact: str = NonEmpty
    purpose: str = NonEmpty
    method: str = NonEmpty
    pi_categories: list[str] = Field(min_length=1)
    country: str = Field(default="CN", min_length=2, max_length=2)


class Rights(_Strict):
    """How the member exercises each right (PIPL Art. 17(1)(3), 44-47, 15)."""

    access: str = NonEmpty
    get_copy: str = NonEmpty
    transfer: str = NonEmpty
    correct: str = NonEmpty
    delete: str = NonEmpty
    restrict: str = NonEmpty
    close_account: str = NonEmpty
    withdraw_consent: str = NonEmpty
    complaint: str = NonEmpty


class Notice(_Strict):
    """One published version of the privacy notice."""

    version: int = Field(ge=1)
    language: str = NonEmpty
    published_at: datetime
    handler: Handler
    purposes: dict[str, PurposeTerms] = Field(min_length=1)
    rights: Rights
    pi_collected: list[str] = Field(min_length=1)
    pi_shared: list[Recipient] = Field(default_factory=list)
    changes: str = Field(default="", description="what changed since the previous version, in plain words")

    @field_validator("purposes")
    @classmethod
    def _purposes_are_in_the_catalogue(cls, value: dict[str, PurposeTerms]) -> dict[str, PurposeTerms]:
        cat = catalogue()
        for code, terms in value.items():
            try:
                if code.endswith(":"):  # a family, described once for every recipient or country
                    if code not in cat.families:
                        raise PurposeError(f"unknown purpose family {code!r}")
                else:
                    cat.purpose(code)
            except PurposeError as exc:
                raise ValueError(str(exc)) from exc
            unknown = set(terms.pi_categories) - set(cat.categories)
            if unknown:
                raise ValueError(f"purpose {code}: unknown PI categories {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _everything_used_is_declared_collected(self) -> Notice:
        used = {c for terms in self.purposes.values() for c in terms.pi_categories}
        missing = used - set(self.pi_collected)
        if missing:
            raise ValueError(f"pi_collected does not list {sorted(missing)}, which purposes use")
        return self

    def sha256(self) -> str:
        """SHA-256 (hex) of the notice's published bytes (:func:`notice_bytes`): what a consent record pins."""
        return hashlib.sha256(notice_bytes(self)).hexdigest()

    def widened_purposes(self, previous: Notice) -> set[str]:
        """Purposes whose PI categories or methods this version adds to ``previous``'s."""
        widened = set()
        for code, terms in self.purposes.items():
            old = previous.purposes.get(code)
            if old is None or not (
                set(terms.pi_categories) <= set(old.pi_categories) and set(terms.methods) <= set(old.methods)
            ):
                widened.add(code)
        return widened


def notice_bytes(notice: Notice) -> bytes:
    """The exact bytes a notice is published, served and hashed as: sorted keys, no whitespace, UTF-8.

    Deliberately not :func:`ledger.canonical.canonical_json`, which would escape the notice's
    Chinese text as ``\\uXXXX``: see the comment below.
    """
    # Every consent pins the SHA-256 of these bytes, and nothing keeps that hash next to the notice
    # the node works with: the store parses the stored text back into a Notice (ComplianceStore.notices)
    # and Notice.sha256 re-encodes it, for every new consent record, every receipt and the
    # GET /v1/notices listing. So the encoding must be the same function of the notice for every
    # version ever published. Escaping non-ASCII here would change the hash of every published
    # notice with Chinese text: new consents under it would pin a hash that matches neither the
    # bytes GET /v1/notices/{v} serves (stored verbatim when published) nor the consents already
    # given. Moving notices onto canonical_json needs the store to treat the stored text and its
    # stored hash as authoritative first; then only versions published after that would be escaped.
    # allow_nan=False changes nothing here (a notice holds no floats): it keeps the rule the same as
    # canonical JSON's in everything but the escaping.
    return json.dumps(
        notice.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_notice(data: dict) -> Notice:
    """Validate a notice; a :class:`NoticeError` lists every missing or invalid field."""
    try:
        return Notice.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise NoticeError(f"the notice is not publishable: {problems}") from exc


def covers(consented: Notice, current: Notice, purpose_code: str) -> bool:
    """Whether consent given under ``consented`` still covers ``purpose_code`` under ``current``.

    Parameterised purposes (``points_exchange:<brand>``) are described once per family in a
    notice, under the family key (``points_exchange:``) or the exact code.
    """
    key = _terms_key(current, purpose_code)
    old_key = _terms_key(consented, purpose_code)
    if key is None or old_key is None:
        return False
    new, old = current.purposes[key], consented.purposes[old_key]
    return set(new.pi_categories) <= set(old.pi_categories) and set(new.methods) <= set(old.methods)


def _terms_key(notice: Notice, purpose_code: str) -> str | None:
    if purpose_code in notice.purposes:
        return purpose_code
    family = purpose_code.split(":", 1)[0] + ":"
    return family if ":" in purpose_code and family in notice.purposes else None
