"""The batcher behind batched peer calls: threads' items run together, each thread gets its own result."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from node.core.batching import Batcher


def _in_threads(batcher: Batcher[int, int], items: list[int]) -> dict[int, object]:
    results: dict[int, object] = {}

    def go(i: int) -> None:
        try:
            results[i] = batcher.submit(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_a_lone_item_runs_at_once_in_a_batch_of_one():
    seen: list[list[int]] = []
    batcher = Batcher(lambda items: seen.append(list(items)) or [i * 2 for i in items], linger=5.0)
    started = time.monotonic()
    assert batcher.submit(21) == 42
    assert time.monotonic() - started < 1.0  # the linger is only for items announced as coming
    assert seen == [[21]]


def test_items_that_arrive_while_a_batch_runs_go_together_in_the_next():
    gate, first_running = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            first_running.set()
            gate.wait(5)
        return [i + 100 for i in items]

    batcher: Batcher[int, int] = Batcher(run)
    first = threading.Thread(target=batcher.submit, args=(0,))
    first.start()
    assert first_running.wait(5)
    waiting = threading.Thread(target=lambda: results.update(_in_threads(batcher, [1, 2, 3, 4, 5])))
    results: dict[int, object] = {}
    waiting.start()
    while len(batcher._queue) < 5:
        time.sleep(0.01)
    gate.set()
    waiting.join(10)
    first.join(10)
    assert batches[0] == [0]
    assert sorted(batches[1]) == [1, 2, 3, 4, 5]
    assert results == {i: i + 100 for i in range(1, 6)}


def test_a_batch_never_holds_more_than_max_items():
    gate = threading.Event()
    sizes: list[int] = []

    def run(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        gate.wait(5)
        return list(items)

    batcher: Batcher[int, int] = Batcher(run, max_items=3)
    t = threading.Thread(target=lambda: _in_threads(batcher, list(range(10))))
    t.start()
    time.sleep(0.2)
    gate.set()
    t.join(10)
    assert sum(sizes) == 10
    assert max(sizes) <= 3
    assert batcher.stats.items == 10
    assert batcher.stats.largest <= 3


def test_each_thread_gets_the_result_of_its_own_item():
    batcher: Batcher[int, int] = Batcher(lambda items: [i * i for i in items], max_items=4)
    results = _in_threads(batcher, list(range(40)))
    assert results == {i: i * i for i in range(40)}


def test_a_failing_batch_raises_in_each_of_its_threads_and_the_next_batch_runs():
    calls = 0

    def run(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return list(items)

    batcher: Batcher[int, int] = Batcher(run)
    with pytest.raises(OSError, match="disk full"):
        batcher.submit(1)
    assert batcher.submit(2) == 2


def test_a_leader_lingers_for_items_announced_as_coming():
    batches: list[list[int]] = []
    batcher: Batcher[int, int] = Batcher(lambda items: batches.append(list(items)) or list(items), linger=2.0)
    announced = threading.Barrier(3)

    def go(i: int) -> None:
        with batcher.coming():
            announced.wait(5)
            time.sleep(0.05 * i)  # the others are still on their way when the first submits
            batcher.submit(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [sorted(b) for b in batches] == [[0, 1, 2]]


def test_a_batcher_refuses_nonsense_settings():
    with pytest.raises(ValueError, match="at least one"):
        Batcher(lambda items: list(items), max_items=0)
    with pytest.raises(ValueError, match="negative"):
        Batcher(lambda items: list(items), linger=-1)
