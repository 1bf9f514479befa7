"""One read per record per request: a scope in which repeated reads return the first read's result.

One exchange consults the member's record, pseudonym, consent history and the feature switches
several times: the exchange itself, then the egress check on the way out, then the audit actor.
Each is a separate database round trip that returns the same rows. Inside :func:`read_once`,
the first read is kept and reused, so a request decides on one consistent view of the member,
taken when it first looked. A withdrawal or a switch turned off counts from the next request,
as it would if the request had read everything up front. Outside a scope nothing is kept:
every read goes to the database, as before.

Anything in this package that writes what is memoised calls :func:`forget`, so a request that
changes consent and then checks it sees its own change.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_memo: ContextVar[dict[Hashable, object] | None] = ContextVar("compliance_read_once", default=None)


@contextmanager
def read_once() -> Iterator[None]:
    """Within this block (this thread or task), each memoised read happens at most once.

    A scope opened inside another is the same scope: the outer request's view holds throughout.
    """
    if _memo.get() is not None:
        yield
        return
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def memoised(key: Hashable, read: Callable[[], T]) -> T:
    """``read()``, or its result from earlier in the current scope; always ``read()`` outside one."""
    memo = _memo.get()
    if memo is None:
        return read()
    if key in memo:
        return memo[key]  # type: ignore[return-value]
    value = memo[key] = read()
    return value


def forget() -> None:
    """Drop everything kept in the current scope (after a write to what may be kept)."""
    memo = _memo.get()
    if memo is not None:
        memo.clear()


__all__ = ["forget", "memoised", "read_once"]
