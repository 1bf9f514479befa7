"""The purpose catalogue: which purposes exist, their legal basis and PI categories (data, not code)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.resources import files


class PurposeError(ValueError):
    """A purpose code that is not in the catalogue, or a parameter it does not accept."""


class LegalBasis(StrEnum):
    """PIPL Art. 13 bases used by the catalogue."""

    CONSENT = "consent"
    CONTRACT = "contract"  # Art. 13(2): necessary to perform a contract with the member
    LEGAL_OBLIGATION = "legal_obligation"


class ConsentKind(StrEnum):
    """What kind of consent a purpose needs (PIPL Art. 14, 23, 29, 39)."""

    NONE = "none"
    GENERAL = "general"
    SEPARATE = "separate"


@dataclass(frozen=True)
class PICategory:
    """A category of personal information."""

    code: str
    sensitive: bool
    description: str


@dataclass(frozen=True)
class Purpose:
    """One purpose, parameter resolved (``points_exchange:coffee.alliance.example``)."""

    code: str
    family: str
    parameter: str | None
    title: str
    legal_basis: LegalBasis
    consent: ConsentKind
    pi_categories: tuple[str, ...]
    methods: tuple[str, ...]
    title_zh: str = ""  # the title in Chinese, for the member's privacy centre

    @property
    def needs_consent(self) -> bool:
        """Whether processing for this purpose needs the member's consent."""
        return self.consent is not ConsentKind.NONE


_PARAM = re.compile(r"[A-Za-z0-9._:-]{1,200}")


@dataclass(frozen=True)
class Catalogue:
    """Every purpose family and PI category of this node."""

    families: dict[str, dict]
    categories: dict[str, PICategory]

    def purpose(self, code: str) -> Purpose:
        """Resolve ``code`` (e.g. ``joint_modeling`` or ``points_exchange:<brand>``)."""
        family, sep, param = code.partition(":")
        key = family + sep
        spec = self.families.get(key)
        if spec is None:
            raise PurposeError(f"unknown purpose {code!r}")
        if sep:
            if not _PARAM.fullmatch(param):
                raise PurposeError(f"purpose {code!r} needs a {spec.get('parameter', 'parameter')}")
            if family == "sensitive" and param not in self.sensitive_categories():
                raise PurposeError(f"{param!r} is not a sensitive PI category")
        cats = (param,) if family == "sensitive" else tuple(spec["pi_categories"])
        return Purpose(
            code=code,
            family=key,
            parameter=param or None,
            title=spec["title"],
            legal_basis=LegalBasis(spec["legal_basis"]),
            consent=ConsentKind(spec["consent"]),
            pi_categories=cats,
            methods=tuple(spec["methods"]),
            title_zh=spec.get("title_zh", spec["title"]),
        )

    def optional_codes(self, recipients: list[str] = (), countries: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """Every purpose that needs consent, with parameters expanded (what "accept all" offers)."""
        out = []
        for key, spec in self.families.items():
            if spec["consent"] == ConsentKind.NONE:
                continue
            if key in ("points_exchange:", "joint_modeling:"):
                out += [f"{key}{r}" for r in recipients]
            elif key == "cross_border:":
                out += [f"cross_border:{c}" for c in countries]
            elif not key.endswith(":"):
                out.append(key)
        return out

    def sensitive_categories(self) -> set[str]:
        """Codes of the sensitive PI categories."""
        return {c.code for c in self.categories.values() if c.sensitive}


@cache
def catalogue() -> Catalogue:
    """The catalogue shipped with the package (``compliance/data/purposes.json``)."""
    raw = json.loads(files("compliance").joinpath("data/purposes.json").read_text())
    cats = {
        code: PICategory(code, spec["sensitive"], spec["description"]) for code, spec in raw["pi_categories"].items()
    }
    for key, spec in raw["purposes"].items():
        unknown = set(spec["pi_categories"]) - set(cats)
        if unknown:
            raise PurposeError(f"purpose {key!r} names unknown PI categories {sorted(unknown)}")
    return Catalogue(raw["purposes"], cats)
