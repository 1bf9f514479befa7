"""An entrustment contract for tests: the example of compliance/data, in force today."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from importlib.resources import files

from compliance.entrustment import Entrustment

EXAMPLE = files("compliance").joinpath("data/entrustment_example.toml").read_text()


def contract(**changes: object) -> Entrustment:
    """The example contract, running from 30 days ago to a year from today, with ``changes``."""
    today = datetime.now(UTC).date()
    terms = tomllib.loads(EXAMPLE)
    terms |= {"valid_from": today - timedelta(days=30), "valid_until": today + timedelta(days=365)} | changes
    return Entrustment.model_validate(terms)
