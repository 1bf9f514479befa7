"""The CDNOW purchase base shipped by the ``lifetimes`` package, read in place.

23,570 real customers' CD purchases from 1997-98; columns: customer id, date (YYYYMMDD),
number of CDs, dollar value. The file is located through the installed distribution's
metadata, so the package's (heavy) modules are never imported and nothing is copied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

DATA_PATH = "lifetimes/datasets/CDNOW_master.txt"


class DatasetMissing(Exception):
    """The ``lifetimes`` package (and so the CDNOW file) is not installed."""


@dataclass(frozen=True)
class Purchase:
    """One purchase line: who, when, how many CDs, and the amount in fen (0.01 CNY-equivalent units)."""

    customer_id: str
    day: date
    cds: int
    amount_fen: int


def dataset_path() -> Path:
    """Where the installed ``lifetimes`` keeps ``CDNOW_master.txt``."""
    try:
        path = Path(str(distribution("lifetimes").locate_file(DATA_PATH)))
    except PackageNotFoundError as exc:
        raise DatasetMissing("the CDNOW data comes with the `lifetimes` package: pip install lifetimes") from exc
    if not path.exists():
        raise DatasetMissing(f"{path} is missing from the installed lifetimes package")
    return path


def parse_line(line: str) -> Purchase:
    """Parse one whitespace-separated CDNOW line; amounts are rounded half-even to whole cents."""
    cid, day, cds, value = line.split()
    cents = (Decimal(value) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return Purchase(cid, date(int(day[:4]), int(day[4:6]), int(day[6:8])), int(cds), int(cents))


def purchases(path: Path | None = None) -> Iterator[Purchase]:
    """Yield every purchase in file order (customers ascending, then dates)."""
    with open(path or dataset_path(), encoding="ascii") as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("customer_id"):
                yield parse_line(line)


def assign_brand(customer_id: str, weights: list[tuple[str, int]]) -> str:
    """Deterministically assign a customer to one brand with the given integer weights."""
    total = sum(w for _, w in weights)
    bucket = int.from_bytes(hashlib.sha256(customer_id.encode()).digest()[:8], "big") % total
    for brand, weight in weights:
        if bucket < weight:
            return brand
        bucket -= weight
    raise AssertionError("unreachable: weights cover every bucket")


#: Which brands a customer joins, by the size of their first purchase: each brand draws its own
#: profile (the airline big first baskets, the coffee chain small ones, none of the biggest), and
#: the sizes differ clearly (about 68 %, 27 % and 5 % of the customers).
PROFILES: dict[str, list[tuple[str, int]]] = {
    "small": [("airline", 12), ("supermarket", 6), ("coffee", 2)],  # first purchase under $15
    "medium": [("airline", 14), ("supermarket", 5), ("coffee", 1)],
    "large": [("airline", 16), ("supermarket", 4), ("coffee", 0)],  # first purchase of $40 or more
}


def first_basket_tier(amount_fen: int) -> str:
    """The profile tier of a customer's first purchase."""
    return "small" if amount_fen < 1500 else "large" if amount_fen >= 4000 else "medium"


def split_customers(
    purchases: Iterable[Purchase], profiles: dict[str, list[tuple[str, int]]] = PROFILES
) -> dict[str, str]:
    """Each customer's brand: drawn by a hash of the id with the weights of their first purchase's tier."""
    brands: dict[str, str] = {}
    for p in purchases:
        if p.customer_id not in brands:  # the file lists each customer's purchases oldest first
            brands[p.customer_id] = assign_brand(p.customer_id, profiles[first_basket_tier(p.amount_fen)])
    return brands


#: Customers of the airline who are members of the supermarket too (percent, by a hash of the id):
#: their purchases are split between the two brands, so each brand sees part of their history.
SHARED_WITH = ("airline", "supermarket", 40)


def is_shared(customer_id: str, percent: int = SHARED_WITH[2]) -> bool:
    """Whether this customer of the first brand of :data:`SHARED_WITH` is a member of the second too."""
    return int.from_bytes(hashlib.sha256(b"shared|" + customer_id.encode()).digest()[:4], "big") % 100 < percent


def brand_of_purchase(p: Purchase, brand: str) -> str:
    """Where a purchase of a customer of ``brand`` is made: a shared customer's alternate by a hash of the day."""
    first, second, _ = SHARED_WITH
    if brand != first or not is_shared(p.customer_id):
        return brand
    digest = hashlib.sha256(f"{p.customer_id}|{p.day.isoformat()}".encode()).digest()
    return second if digest[0] & 1 else first


def phone_of(customer_id: str) -> str:
    """The demo's phone number of a CDNOW customer (a valid mainland mobile number, the same at every brand)."""
    return f"+86139{int(customer_id):08d}"
