"""Many threads' items carried out as one batch: the first thread to find no batch running runs one.

This is the "leader and followers" form of group commit (as in a database's log writer or
TigerBeetle's request batching): a thread submits its item and waits; if no batch is running it
becomes the leader and runs the queued items (up to ``max_items``) with one call of ``run``, then
hands each waiting thread its own result. Items that arrive while a batch runs queue up and go in
the next one, so under load batches grow by themselves, and a thread alone never waits.

``linger`` lets a leader wait a little for items it knows are coming (threads inside
:meth:`Batcher.coming` that have not submitted yet) before it runs a batch, for fuller batches at
the cost of that wait; with only its own item coming a leader runs at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from compliance.consent import ConsentAction
from compliance.service import ConsentChange, ConsentService
from node.core.audit import NodeAudit

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiter(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """How batching went so far (for benchmarks and metrics)."""

    batches: int = 0
    items: int = 0
    largest: int = 0


@dataclass
class Batcher(Generic[T, R]):
    """Runs submitted items in batches: ``run(items)`` returns one result per item, in order.

    If ``run`` raises, every item of that batch raises the same error in its own thread.
    """

    run: Callable[[Sequence[T]], Sequence[R]]
    max_items: int = 64
    linger: float = 0.0
    stats: BatchStats = field(default_factory=BatchStats)
    _queue: list[_Waiter[T, R]] = field(default_factory=list, repr=False)
    _busy: bool = field(default=False, repr=False)
    _coming: int = field(default=0, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError("a batch holds at least one item")
        if self.linger < 0:
            raise ValueError("linger is a duration, not negative")

    @contextmanager
    def coming(self) -> Iterator[None]:
        """Announce an item this thread will submit soon (a leader may linger for it)."""
        with self._cond:
            self._coming += 1
        try:
            yield
        finally:
            with self._cond:
                self._coming -= 1
                self._cond.notify_all()

    def submit(self, item: T) -> R:
        """Carry out ``item`` in a batch and return its result (or raise the batch's error)."""
        me: _Waiter[T, R] = _Waiter(item)
        with self._cond:
            self._queue.append(me)
            self._cond.notify_all()  # a lingering leader may be waiting for this item
        while True:
            with self._cond:
                while not me.done and self._busy:
                    self._cond.wait()
                if me.done:
                    return self._outcome(me)
                # no batch is running: this thread leads the next one (its own item may have to
                # wait for the one after, behind a full batch of earlier items)
                self._busy = True
                batch = self._take()
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _take(self) -> list[_Waiter[T, R]]:
        # called holding the condition: wait a little for announced items, then take a batch
        if self.linger:
            deadline = time.monotonic() + self.linger
            while len(self._queue) < min(self.max_items, max(self._coming, 1)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        batch, self._queue = self._queue[: self.max_items], self._queue[self.max_items :]
        return batch

    def _run(self, batch: list[_Waiter[T, R]]) -> None:
        try:
            results = self.run([w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items gave {len(results)} results")
        except BaseException as exc:
            for w in batch:
                w.error, w.done = exc, True
        else:
            for w, r in zip(batch, results, strict=True):
                w.result, w.done = r, True
        with self._cond:
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))

    @staticmethod
    def _outcome(me: _Waiter[T, R]) -> R:
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]


class GroupedConsent:
    """Consent changes from concurrent requests committed together: group commit, so one transaction
    and one audit append serve many members, each request answered after its own change commits."""

    def __init__(self, consent: ConsentService, audit: NodeAudit) -> None:
        self.audit = audit
        self._batcher: Batcher[ConsentChange, str | Exception] = Batcher(consent.change_each, max_items=64)

    def change(self, member_ref: str, purposes: Sequence[str], action: ConsentAction) -> str:
        """As :meth:`ConsentService.change`: the signed receipt, or the change's own error."""
        wanted = ConsentChange(member_ref, tuple(purposes), action, audit_actor=self.audit.current_actor())
        result = self._batcher.submit(wanted)
        if isinstance(result, Exception):
            raise result
        return result
