"""Closed-loop HTTP load for the benchmarks: N threads, each with its own keep-alive client.

Every request is timed in its thread from send to full response; throughput is requests over
the phase's wall time; the server's CPU time is read from /proc around the phase.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.table import Table

Send = Callable[[httpx.Client, int], httpx.Response]


@dataclass
class Report:
    """One table: its title, column names and rows of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def rich(self) -> Table:
        """The table for the terminal."""
        table = Table(title=self.title, show_lines=True)
        for i, name in enumerate(self.columns):
            table.add_column(name, overflow="fold", justify="left" if i == 0 else "right")
        for row in self.rows:
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        """The table as GitHub Markdown."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


def replace_section(path: Path, start: str, end: str, heading: str, section: str) -> None:
    """Replace the part of ``path`` between the ``start`` and ``end`` markers, or append it under ``heading``."""
    block = f"{start}\n{section.strip()}\n{end}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if start in text and end in text:
            pre, rest = text.split(start, 1)
            _, post = rest.split(end, 1)
            text = pre + block + post
        else:
            text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + block + "\n"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# Benchmarks\n\n## {heading}\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), or None where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """User + system CPU seconds of this process (every thread)."""
    t = os.times()
    return t.user + t.system


def fmt_ms(seconds: float) -> str:
    """Milliseconds with sensible precision."""
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


@dataclass
class Endpoint:
    """One endpoint under load: how to send its request number ``i`` and the status it must answer."""

    name: str
    send: Send
    expect: int
    next_index: int = 0  # requests sent so far, warm-up included


@dataclass
class Load:
    """One phase of requests: per-request seconds, wall seconds, CPU seconds of both sides."""

    latencies: list[float]
    elapsed: float
    client_cpu: float
    server_cpu: float | None

    @property
    def rate(self) -> float:
        """Requests per wall-clock second."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def run_load(
    clients: Sequence[httpx.Client], ep: Endpoint, count: int, budget_s: float, server_pids: Sequence[int]
) -> Load:
    """Send ``count`` requests of ``ep`` from one thread per client (stopping early after ``budget_s``).

    Any answer but ``ep.expect``, or a transport error, stops every thread and raises.
    """
    start_index = ep.next_index
    ticket = itertools.count()  # next() on it is atomic under the GIL
    per_thread: list[list[float]] = [[] for _ in clients]
    failures: list[str] = []
    stop = threading.Event()
    pc = time.perf_counter
    deadline = pc() + budget_s

    def worker(k: int) -> None:
        client, times = clients[k], per_thread[k]
        try:
            while not stop.is_set():
                n = next(ticket)
                if n >= count:
                    return
                t0 = pc()
                r = ep.send(client, start_index + n)
                t1 = pc()
                times.append(t1 - t0)
                if r.status_code != ep.expect:
                    failures.append(f"{ep.name}: HTTP {r.status_code} (expected {ep.expect}): {r.text[:300]}")
                    stop.set()
                if t1 > deadline:
                    stop.set()
        except Exception as exc:  # a transport error: stop everyone, report after the join
            failures.append(f"{ep.name}: {type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(len(clients))]
    gc.collect()
    cpu0 = [process_cpu_s(p) for p in server_pids]
    client0 = own_cpu_s()
    t0 = pc()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = pc() - t0
    client_cpu = own_cpu_s() - client0
    cpu1 = [process_cpu_s(p) for p in server_pids]
    if failures:
        raise RuntimeError(failures[0])
    latencies = [x for times in per_thread for x in times]
    ep.next_index += len(latencies)
    known = [b - a for a, b in zip(cpu0, cpu1, strict=True) if a is not None and b is not None]
    return Load(latencies, elapsed, client_cpu, sum(known) if len(known) == len(server_pids) else None)
