"""Benchmarks of the compliance paths: consent changes and gate checks over HTTP, and audit bundles.

Part 1, the HTTP API. A fresh node (a notice published, members registered, an operator key,
member tokens) is served by `python -m node serve` in a subprocess on 127.0.0.1, as in
production: uvicorn, a SQLite file (WAL, synchronous=FULL), its access log going to a file.
`--concurrency` threads, each with its own keep-alive httpx client, send:

- `GET /health`, the reference: uvicorn and FastAPI with no work behind them;
- `POST /v1/me/consents` with a member token: `marketing` granted, then withdrawn, then granted
  again ..., per member (64 members in turn), so the state keeps changing;
- `GET /v1/members/{ref}/gate/marketing` with an operator key, for members who granted it (200);
- the same for `personalization`, which they never granted (403, and the denial is audited).

Each endpoint gets `--requests` requests after a warm-up, split into `--rounds` rounds whose order
rotates, so drift on a shared machine does not favour one endpoint. Every request is timed in its
thread from send to full response (p50 / p99 by nearest rank); throughput is the requests over the
wall time of the endpoint's phases; the server's CPU time (from /proc) and this process's (the
clients) are read around each phase. This machine is shared and noisy: compare the ratios to
/health, not absolute rates across runs.

Part 2, audit bundles. `--events` audit events (pseudonymous subjects, a mix of consent, gate and
read actions) are appended to a fresh node's audit log with `node.audit.many` in batches of 1,000;
then `node.audit.export` writes the bundle of (a) every event, (b) one action (`consent.withdraw`,
about 10 %), (c) one member's events, and `verify_bundle` checks each in process; each export and
check is repeated `--reps` times (3; the median is shown). The full bundle is also checked by
`python -m node audit verify BUNDLE --vkey node.vkey` in a subprocess, which must exit 0 and print
the exported count and root (start-up included; the start-up alone is timed with `--help`).

    python benchmarks/compliance.py                 # full run: 2,000 requests per endpoint, 100,000 events
    python benchmarks/compliance.py --quick         # 300 requests per endpoint, 5,000 events
    python benchmarks/compliance.py --write-docs    # also rewrite the compliance section of docs/benchmarks.md

Everything lives in a temporary directory removed at the end; the server is stopped on every exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

# This script is named like the package it measures, and Python puts the script's own folder
# first on the import path: drop it so that `import compliance` finds the package, not this file.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository: packages, and benchmarks.*

import httpx
import uvicorn
from rich.console import Console

from benchmarks.httpload import Report, percentile, replace_section, run_load
from benchmarks.page_load import page_endpoints, pages_report, sign_in_members, sign_in_officer
from compliance.audit import AuditFilter
from compliance.audit_bundle import verify_bundle
from compliance.audit_index import AuditIndex
from compliance.consent import ConsentAction
from compliance.service import ConsentChange
from node.core.auth import Role
from node.core.datadir import init_node
from node.core.processes import free_port, stop_process
from node.core.progress import progress_bar
from node.core.settings import VKEY_FILE
from node.demo.consent import notice_for
from node.runtime import Node

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
NODE_ID = "bench.example"
SEED = 2026
GRANT_MEMBERS = 64
GATE_MEMBERS = 64
TOKEN_TTL = 3 * 3600
AUDIT_BATCH = 1000
# (action, weight): consent.withdraw is the filtered export's action, about 10 % of the events.
ACTION_MIX = (("consent.grant", 50), ("gate.denied", 20), ("pi.read", 20), ("consent.withdraw", 10))
FILTER_ACTION = "consent.withdraw"
PURPOSES = ("marketing", "personalization", "joint_modeling", "points_exchange:hotel.example")
SERVER_START_S = 60.0
MD_START = "<!-- compliance-benchmark:start -->"
MD_END = "<!-- compliance-benchmark:end -->"

out = Console()
if not out.is_terminal:
    out.width = 200  # a file or pipe: do not fold the tables to 80 columns
err = Console(stderr=True)


# --- results -------------------------------------------------------------------------------


DETAILS: list[str] = []


def detail(line: str) -> None:
    """Note a per-run detail: printed now and listed under the Markdown tables."""
    DETAILS.append(line)
    err.print(f"  {line}", style="dim", highlight=False)


def write_markdown(path: Path, section: str) -> None:
    """Replace the marked section of ``path``, or append it under a ``## Compliance`` heading."""
    replace_section(path, MD_START, MD_END, "Compliance", section)


# --- helpers -------------------------------------------------------------------------------


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Announce a phase on stderr and say how long it took."""
    err.print(f"[bold]·[/bold] {name} …", highlight=False)
    t0 = time.perf_counter()
    yield
    err.print(f"  done in {time.perf_counter() - t0:.1f} s", highlight=False, style="dim")


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with two decimals."""
    return f"{seconds * 1e3:.2f}"


# --- 1. the HTTP API ---------------------------------------------------------------------------


@dataclass
class ApiFixture:
    """What the HTTP clients need: the operator key, member tokens and the members to gate."""

    data_dir: Path
    operator_key: str
    grant_tokens: list[str]
    gate_refs: list[str]
    audit_size: int
    page_refs: list[str]  # members the pages are measured with (sessions, not tokens)
    officer_key: str


def prepare_api_node(data_dir: Path) -> ApiFixture:
    """Create a node with a notice, registered members, an operator key and member tokens (not timed).

    The gate members have granted ``marketing`` (and nothing else); the grant members start with no
    consent. The node is disposed before returning: the server opens the database itself.
    """
    init_node(data_dir, NODE_ID)
    node = Node.open(data_dir)
    try:
        node.consent.publish_notice(notice_for(node, ["hotel.example"]))
        grant_refs = [f"G-{i:04d}" for i in range(GRANT_MEMBERS)]
        gate_refs = [f"C-{i:04d}" for i in range(GATE_MEMBERS)]
        page_refs = [f"P-{i:04d}" for i in range(GRANT_MEMBERS)]
        node.consent.register_members([(ref, None, None) for ref in grant_refs + gate_refs + page_refs])
        node.consent.change_many(
            [ConsentChange(ref, ("marketing",), ConsentAction.GRANT, collection_method="bench") for ref in gate_refs]
        )
        operator_key = node.staff_keys.issue("bench", Role.OPERATOR)
        officer_key = node.staff_keys.issue("bench-officer", Role.COMPLIANCE)
        now = time.time()
        tokens = [node.member_tokens.issue(ref, TOKEN_TTL, now) for ref in grant_refs]
        audit_size = node.store.log("audit").size
    finally:
        node.dispose()
    return ApiFixture(data_dir, operator_key, tokens, gate_refs, audit_size, page_refs, officer_key)


@dataclass
class Server:
    """A node served in a subprocess."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's output, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@contextmanager
def served_node(data_dir: Path, log_path: Path) -> Iterator[Server]:
    """Run ``python -m node serve`` on a free local port until /health answers; always stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "node", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    cmd += ["--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + SERVER_START_S
        with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log_tail()}")
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer on /health after {SERVER_START_S:.0f} s:\n{server.log_tail()}")
                time.sleep(0.1)
        yield server
    finally:
        stop_process(proc)


Send = Callable[[httpx.Client, int], httpx.Response]


@dataclass
class Endpoint:
    """One endpoint under load: how to send its request number ``i``, the status it must answer,
    and what its measured phases added up to."""

    name: str
    send: Send
    expect: int
    audited: bool  # each request appends one audit event
    next_index: int = 0  # requests sent so far, warm-up included
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float | None = 0.0
    client_cpu: float = 0.0

    @property
    def count(self) -> int:
        """Measured requests so far."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Measured requests per wall-clock second."""
        return self.count / self.elapsed


def endpoints(fx: ApiFixture, server: Server) -> list[Endpoint]:
    """The endpoints measured, /health first (the reference), then the pages and the API calls they match."""
    operator = {"Authorization": f"Bearer {fx.operator_key}"}
    members = [{"Authorization": f"Bearer {t}"} for t in fx.grant_tokens]
    grant = {"action": "grant", "purposes": ["marketing"]}
    withdraw = {"action": "withdraw", "purposes": ["marketing"]}
    refs = fx.gate_refs

    def health(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/health")

    def consent(c: httpx.Client, i: int) -> httpx.Response:
        # member i % 64; each member's own requests alternate grant, withdraw, grant, ...
        turn, member = divmod(i, len(members))
        return c.post("/v1/me/consents", json=withdraw if turn % 2 else grant, headers=members[member])

    def gate_allowed(c: httpx.Client, i: int) -> httpx.Response:
        return c.get(f"/v1/members/{refs[i % len(refs)]}/gate/marketing", headers=operator)

    def gate_denied(c: httpx.Client, i: int) -> httpx.Response:
        return c.get(f"/v1/members/{refs[i % len(refs)]}/gate/personalization", headers=operator)

    return [
        Endpoint("GET /health", health, 200, False),
        Endpoint("POST /v1/me/consents (grant / withdraw marketing, member token)", consent, 200, True),
        Endpoint("GET /v1/members/{ref}/gate/marketing (allowed: 200, operator key)", gate_allowed, 200, False),
        Endpoint("GET /v1/members/{ref}/gate/personalization (denied: 403, audited)", gate_denied, 403, True),
        *(
            Endpoint(*e)
            for e in page_endpoints(
                sign_in_members(server.base_url, fx.operator_key, fx.page_refs),
                sign_in_officer(server.base_url, fx.officer_key),
                fx.grant_tokens,
                fx.officer_key,
            )
        ),
    ]


def bench_http(
    fx: ApiFixture, server: Server, requests: int, concurrency: int, rounds: int, budget_s: float
) -> tuple[list[Report], int]:
    """Drive every endpoint through ``server``, interleaved in rounds.

    Returns the table of part 1 and how many audit events the requests should have appended
    (one per consent change and one per denial, warm-up included).
    """
    eps = endpoints(fx, server)
    warmup = max(10, min(100, requests // 10))
    pid = server.proc.pid
    clients = [httpx.Client(base_url=server.base_url, timeout=30.0) for _ in range(concurrency)]
    try:
        for ep in eps:  # warm-up: connections, imports, caches; not measured
            run_load(clients, ep, warmup, budget_s, [pid])
        sizes = [requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)]
        with progress_bar(err, remaining=True) as bar:
            task = bar.add_task(f"{len(eps)} endpoints x {rounds} rounds", total=len(eps) * requests)
            for r, size in enumerate(sizes):
                # rotate the order each round so drift does not favour one endpoint
                for ep in eps[r % len(eps) :] + eps[: r % len(eps)]:
                    load = run_load(clients, ep, size, budget_s / rounds, [pid])
                    ep.latencies += load.latencies
                    ep.elapsed += load.elapsed
                    ep.client_cpu += load.client_cpu
                    ep.server_cpu = (
                        None if ep.server_cpu is None or load.server_cpu is None else (ep.server_cpu + load.server_cpu)
                    )
                    bar.advance(task, len(load.latencies))
    finally:
        for c in clients:
            c.close()
    if server.proc.poll() is not None:
        raise RuntimeError(f"the server died during the run:\n{server.log_tail()}")

    health = eps[0]
    report = Report(
        f"HTTP API: {NODE_ID} served by uvicorn, {concurrency} concurrent clients, {rounds} rounds",
        [
            "operation",
            "requests",
            "seconds",
            "per second",
            "p50 ms",
            "p99 ms",
            "ratio vs /health",
            "server CPU ms/req",
            "client CPU ms/req",
        ],
    )
    for ep in eps:
        lat = sorted(ep.latencies)
        short = f" (stopped at the {budget_s:.0f} s budget)" if ep.count < requests else ""
        report.rows.append(
            [
                ep.name + short,
                f"{ep.count:,}",
                f"{ep.elapsed:.2f}",
                f"{ep.rate:,.0f}",
                fmt_ms(percentile(lat, 50)),
                fmt_ms(percentile(lat, 99)),
                f"{ep.rate / health.rate:.3f}",
                "—" if ep.server_cpu is None else fmt_ms(ep.server_cpu / ep.count),
                fmt_ms(ep.client_cpu / ep.count),
            ]
        )
        detail(
            f"{ep.name}: mean {statistics.fmean(lat) * 1e3:.2f} ms, max {lat[-1] * 1e3:.2f} ms, "
            f"{warmup} warm-up requests"
        )
    return [report, pages_report(eps)], sum(ep.next_index for ep in eps if ep.audited)


def check_http_effects(fx: ApiFixture, want: int) -> None:
    """After the server stopped: every consent change and every denial reached the audit log."""
    node = Node.open(fx.data_dir)
    try:
        grew = node.store.log("audit").size - fx.audit_size
    finally:
        node.dispose()
    if grew != want:
        raise RuntimeError(f"the audit log grew by {grew:,} events during the run, expected {want:,}")
    detail(f"audit log of the served node grew by {grew:,} events (one per consent change and per denial): checked")


# --- 2. audit bundles -------------------------------------------------------------------------


def make_events(count: int, seed: int = SEED) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """``count`` deterministic audit events for ``node.audit.many``, and one member's pseudonym."""
    rng = random.Random(seed)
    members = [f"{rng.getrandbits(128):032x}" for _ in range(max(10, count // 10))]  # ~10 events each
    actions = [a for a, _ in ACTION_MIX]
    weights = [w for _, w in ACTION_MIX]
    events: list[tuple[str, dict[str, Any]]] = []
    for action in rng.choices(actions, weights, k=count):
        member = rng.choice(members)
        purpose = rng.choice(PURPOSES)
        if action.startswith("consent."):
            fields: dict[str, Any] = {
                "subject_pseudo_ids": [member],
                "purpose_code": purpose,
                "consent_ids": [f"{rng.getrandbits(128):032x}"],
                "legal_basis": "consent",
                "details": {"notice_version": 1, "actor": "self"},
            }
        elif action == "gate.denied":
            fields = {
                "subject_pseudo_ids": [member],
                "purpose_code": purpose,
                "outcome": "denied",
                "reason_code": "no_consent",
                "details": {"accessor": "bench"},
            }
        else:
            fields = {
                "subject_pseudo_ids": [member],
                "purpose_code": "loyalty.core",
                "legal_basis": "contract",
                "pi_categories": ["loyalty.balance", "loyalty.transactions"],
                "record_count": 1,
            }
        events.append((action, fields))
    return events, members[0]


class CountingReader:
    """A binary stream that advances a progress bar every 1,000 lines read (what ``verify_bundle`` reads)."""

    def __init__(self, stream: BinaryIO, advance: Callable[[int], None]) -> None:
        self.stream = stream
        self.advance = advance
        self.lines = 0

    def readline(self, limit: int = -1) -> bytes:
        """One line, as ``stream.readline``."""
        line = self.stream.readline(limit)
        self.lines += 1
        if self.lines % 1000 == 0:
            self.advance(1000)
        return line


def cli_run(args: Sequence[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``python -m node ARGS``; return (wall seconds, the finished process)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "node", *args], capture_output=True, text=True, check=False, cwd=REPO, timeout=600
    )
    return time.perf_counter() - t0, proc


@dataclass
class BundleRun:
    """Timings of one filter's export and verification (medians over the repetitions)."""

    label: str
    tree_size: int
    count: int
    size_bytes: int
    export_s: float
    verify_s: float
    cli_s: float | None = None


def export_and_verify(node: Node, label: str, flt: AuditFilter, path: Path, reps: int, with_cli: bool) -> BundleRun:
    """Export the bundle of ``flt`` ``reps`` times and verify each copy (in process, and by the CLI)."""
    verifier = node.signer.verifier()
    vkey = node.settings.data_dir / VKEY_FILE
    times: dict[str, list[float]] = {"export": [], "verify": [], "cli": []}
    size = node.store.log("audit").size
    for rep in range(reps):
        with progress_bar(err, remaining=True) as bar:
            task = bar.add_task(f"export {label} ({rep + 1}/{reps})", total=size)
            gc.collect()
            t0 = time.perf_counter()
            with open(path, "wb") as f:
                manifest = node.audit.export(flt, f, progress=functools.partial(bar.advance, task))
            times["export"].append(time.perf_counter() - t0)
            task = bar.add_task(f"verify {label} ({rep + 1}/{reps})", total=manifest.count)
            gc.collect()
            t0 = time.perf_counter()
            with open(path, "rb") as f:
                verified = verify_bundle(CountingReader(f, functools.partial(bar.advance, task)), verifier)  # type: ignore[arg-type]
            times["verify"].append(time.perf_counter() - t0)
            bar.update(task, completed=manifest.count)
        if (verified.count, verified.tree_size, verified.root_hash) != (
            manifest.count,
            manifest.tree_size,
            manifest.root_hash,
        ):
            raise RuntimeError(f"{label}: verify_bundle returned another count, size or root than the export")
        if with_cli:
            seconds, proc = cli_run(["audit", "verify", str(path), "--vkey", str(vkey)])
            expected = f"OK {manifest.count} {manifest.tree_size} {manifest.root_hash.hex()}"
            if proc.returncode != 0 or not proc.stdout.startswith(expected):
                raise RuntimeError(f"`audit verify` exited {proc.returncode}: {proc.stdout}{proc.stderr}")
            times["cli"].append(seconds)
        size = manifest.tree_size + 1  # the export itself was audited
    run = BundleRun(
        label,
        manifest.tree_size,
        manifest.count,
        path.stat().st_size,
        statistics.median(times["export"]),
        statistics.median(times["verify"]),
        statistics.median(times["cli"]) if times["cli"] else None,
    )
    detail(
        f"{label}: {run.count:,} of {run.tree_size:,} events, {run.size_bytes / 1e6:.1f} MB; seconds per run: "
        + "; ".join(f"{k} {', '.join(f'{s:.2f}' if s >= 1 else f'{s:.3f}' for s in v)}" for k, v in times.items() if v)
    )
    return run


def bench_audit(data_dir: Path, n_events: int, reps: int, with_cli: bool) -> Report:
    """Append ``n_events`` audit events, then export and verify bundles; the table of part 2."""
    init_node(data_dir, NODE_ID)
    node = Node.open(data_dir)
    try:
        events, member = make_events(n_events)
        mix = Counter(a for a, _ in events)
        detail("event mix: " + ", ".join(f"{a} {n:,}" for a, n in mix.most_common()))
        log = node.store.log("audit")
        before = log.size
        with progress_bar(err, remaining=True) as bar:
            task = bar.add_task(f"appending {n_events:,} audit events", total=n_events)
            gc.collect()
            t0 = time.perf_counter()
            for i in range(0, n_events, AUDIT_BATCH):
                node.audit.many(events[i : i + AUDIT_BATCH])
                bar.advance(task, min(AUDIT_BATCH, n_events - i))
            append_s = time.perf_counter() - t0
        if log.size != before + n_events:
            raise RuntimeError(f"the audit log holds {log.size - before:,} new events, expected {n_events:,}")
        del events
        gc.collect()
        t0 = time.perf_counter()
        indexed = AuditIndex(node.store.engine, log).catch_up()  # what the first filtered query would do
        index_s = time.perf_counter() - t0

        bundles = Path(data_dir) / "bundles"
        bundles.mkdir()
        full = export_and_verify(node, "all events", AuditFilter(), bundles / "all.jsonl", reps, with_cli)
        expect_action = mix[FILTER_ACTION]
        one_action = export_and_verify(
            node, f"action {FILTER_ACTION}", AuditFilter(action=FILTER_ACTION), bundles / "action.jsonl", reps, False
        )
        if one_action.count != expect_action:
            raise RuntimeError(f"the {FILTER_ACTION} bundle holds {one_action.count} events, expected {expect_action}")
        one_member = export_and_verify(
            node, "one member (subject filter)", AuditFilter(subject=member), bundles / "member.jsonl", reps, False
        )
        startup_s: float | None = None
        if with_cli:
            startup = [cli_run(["--help"])[0] for _ in range(3)]
            startup_s = statistics.median(startup)
            detail(f"CLI start-up (`python -m node --help`), seconds per run: {', '.join(f'{s:.2f}' for s in startup)}")
    finally:
        node.dispose()

    report = Report(
        f"audit bundles: {n_events:,} events appended, exported and verified"
        + (f" (median of {reps})" if reps > 1 else ""),
        ["operation", "log entries", "events in bundle", "seconds", "log entries/s", "bundle events/s", "bundle MB"],
    )
    report.rows.append(
        [
            f"append (node.audit.many, batches of {AUDIT_BATCH:,})",
            f"{n_events:,}",
            "—",
            f"{append_s:.2f}",
            f"{n_events / append_s:,.0f}",
            "—",
            "—",
        ]
    )
    report.rows.append(
        [
            "index the log by member, action and time (AuditIndex.catch_up, once)",
            f"{indexed:,}",
            "—",
            f"{index_s:.2f}",
            f"{indexed / index_s:,.0f}",
            "—",
            "—",
        ]
    )
    for run in (full, one_action, one_member):
        mb = f"{run.size_bytes / 1e6:.2f}"
        report.rows.append(
            [
                f"export {run.label} (node.audit.export: {'scan' if run is full else 'index or scan'}, proofs, sign)",
                f"{run.tree_size:,}",
                f"{run.count:,}",
                f"{run.export_s:.2f}",
                f"{run.tree_size / run.export_s:,.0f}",
                f"{run.count / run.export_s:,.0f}",
                mb,
            ]
        )
        report.rows.append(
            [
                f"verify {run.label} (verify_bundle, in process)",
                "—",
                f"{run.count:,}",
                f"{run.verify_s:.3f}",
                "—",
                f"{run.count / run.verify_s:,.0f}",
                mb,
            ]
        )
        if run.cli_s is not None:
            report.rows.append(
                [
                    f"verify {run.label}: `python -m node audit verify` subprocess, start-up included (exit 0)",
                    "—",
                    f"{run.count:,}",
                    f"{run.cli_s:.2f}",
                    "—",
                    f"{run.count / run.cli_s:,.0f}",
                    mb,
                ]
            )
    if startup_s is not None:
        report.rows.append(
            ["CLI start-up alone (`python -m node --help`)", "—", "—", f"{startup_s:.2f}", "—", "—", "—"]
        )
    return report


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` changes the defaults of the others."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="300 requests per endpoint in 2 rounds, 5,000 events, 1 repetition"
    )
    p.add_argument("--requests", type=int, default=None, help="measured requests per endpoint (default 2,000)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent clients (threads), default 4")
    p.add_argument("--rounds", type=int, default=None, help="rounds the requests are split into (default 4)")
    p.add_argument(
        "--budget", type=float, default=120.0, help="seconds at most per endpoint; fewer requests if reached"
    )
    p.add_argument("--events", type=int, default=None, help="audit events in the log (default 100,000)")
    p.add_argument("--reps", type=int, default=None, help="exports and verifications per bundle (median), default 3")
    p.add_argument("--no-http", action="store_true", help="skip part 1 (the HTTP API)")
    p.add_argument("--no-audit", action="store_true", help="skip part 2 (audit bundles)")
    p.add_argument("--no-cli", action="store_true", help="skip timing `python -m node audit verify`")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="also write the tables as the marked section of PATH")
    p.add_argument("--write-docs", action="store_true", help=f"the same as --markdown {DOCS.relative_to(REPO)}")
    p.add_argument("--date", default=dt.date.today().isoformat(), help="date written with the Markdown tables")
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 300 if args.quick else 2000
    if args.rounds is None:
        args.rounds = 2 if args.quick else 4
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.events is None:
        args.events = 5000 if args.quick else 100_000
    if args.write_docs:
        args.markdown = DOCS
    if args.requests < args.rounds or args.rounds < 1 or args.concurrency < 1 or args.events < 1 or args.reps < 1:
        p.error("need --requests >= --rounds >= 1, --concurrency >= 1, --events >= 1 and --reps >= 1")
    return args


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for the Markdown section."""
    cmd = "python benchmarks/compliance.py" + (" --quick" if args.quick else "")
    defaults = parse_args(["--quick"] if args.quick else [])
    for name in ("requests", "concurrency", "rounds", "budget", "events", "reps"):
        if getattr(args, name) != getattr(defaults, name):
            cmd += f" --{name} {getattr(args, name)}"
    for name in ("no_http", "no_audit", "no_cli"):
        if getattr(args, name):
            cmd += f" --{name.replace('_', '-')}"
    if args.write_docs:
        cmd += " --write-docs"
    elif args.markdown:
        cmd += f" --markdown {args.markdown}"
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the tables, and write them to Markdown if asked."""
    args = parse_args(argv)
    # `kill` (SIGTERM) unwinds like Ctrl-C, so the server is stopped and the temp dir removed
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    started = time.perf_counter()
    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="compliance-bench-") as tmp:
        work = Path(tmp)
        if not args.no_http:
            with phase("1. preparing the API node (notice, members, operator key, tokens; not measured)"):
                fx = prepare_api_node(work / "api-node")
            with phase(
                f"1. HTTP API: {args.requests:,} requests per endpoint, {args.concurrency} concurrent, "
                f"{args.rounds} rounds"
            ):
                with served_node(fx.data_dir, work / "server.log") as server:
                    err.print(f"  server: pid {server.proc.pid} at {server.base_url}", style="dim", highlight=False)
                    http_reports, audited = bench_http(
                        fx, server, args.requests, args.concurrency, args.rounds, args.budget
                    )
                check_http_effects(fx, audited)  # the server has stopped
                reports += http_reports
        if not args.no_audit:
            with phase(f"2. audit bundles: {args.events:,} events"):
                reports.append(bench_audit(work / "audit-node", args.events, args.reps, with_cli=not args.no_cli))

    total = time.perf_counter() - started
    for report in reports:
        out.print(report.rich())
    err.print(f"whole run: {total:.0f} s on {os.cpu_count()} cores", highlight=False)

    if args.markdown:
        section = (
            f"Measured on {args.date} by `{command_line(args)}` (the whole run took {total:.0f} s): "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"uvicorn {uvicorn.__version__}, httpx {httpx.__version__}.\n\n"
            + "\n\n".join(f"**{r.title}**\n\n{r.markdown()}" for r in reports)
            + "\n\n"
            + "".join(f"- {line}\n" for line in DETAILS)
        )
        write_markdown(args.markdown, section)
        err.print(f"wrote the tables to {args.markdown}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
