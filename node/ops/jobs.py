"""The daily duties ``serve`` runs on the schedules of ``node.toml``'s ``[jobs]`` table.

Each duty calls the same service as its command (``rights escalate``, ``retention purge``, ``witness
request``; point expiry has only the job and ``jobs run points_expire``), so it is audited where the
command is. A run is claimed in the database (:class:`node.core.periodic.JobRuns`) before it starts:
a restart, or a second process on the same database, never runs a duty twice in one period.
``serve --no-jobs`` leaves them to cron, which calls ``alliance-node jobs run NAME``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ledger import note
from node.core.periodic import JobRuns, Periodic, parse_schedule
from node.peers.witnessing import HttpWitness, request_cosignatures
from node.runtime import Node

log = logging.getLogger(__name__)
#: How often the loop looks at the timetable; a daily duty starts within this much of its time.
TICK_SECONDS = 30.0
#: A run left unfinished this long (its process died) may be run again in the same period.
LEASE = timedelta(hours=1)


def expire_points(node: Node, today: date) -> str:
    """Expire what is left of every lot past its day."""
    wallets, points = node.wallets.expire_due(today)
    return f"{points} point(s) expired in {wallets} wallet(s)"


def escalate_rights(node: Node, today: date) -> str:
    """Escalate every open rights request, and every joint handlers' notice, past its deadline (audited)."""
    requests, notices = len(node.rights.escalate(today)), node.joint.escalate(today)
    return f"{requests} request(s) and {notices} joint handlers' notice(s) past their deadline escalated"


def purge_retention(node: Node, today: date) -> str:
    """Delete records past their retention that no legal hold keeps (the counts audited)."""
    r = node.retention.purge()
    return (
        f"purged {r.consent_records} consent record(s), {r.rights_requests} rights request(s), "
        f"{r.xborder_counts} cross-border count(s); {r.held_members_skipped} held"
    )


def request_witnesses(node: Node, today: date) -> str:
    """Have every peer with a URL cosign each log's newest checkpoint."""
    witnesses = [
        HttpWitness(p.node_id, note.Verifier.from_vkey(p.vkey).cosigner(), node.outbound)
        for p in node.settings.peers
        if p.url
    ]
    if not witnesses:
        return "no peer with a URL to ask"
    outcomes = [
        o for name in node.store.log_names() for o in request_cosignatures(node.store.log(name), node.signer, witnesses)
    ]
    refused = [f"{o.witness}: {o.detail}" for o in outcomes if not o.ok]
    if refused:
        raise RuntimeError(f"{len(refused)} of {len(outcomes)} cosignature(s) refused: {'; '.join(refused)[:300]}")
    return f"{len(outcomes)} cosignature(s) collected"


Duty = Callable[[Node, date], str]
DUTIES: dict[str, Duty] = {
    "points_expire": expire_points,
    "rights_escalate": escalate_rights,
    "retention_purge": purge_retention,
    "witness_request": request_witnesses,
}


@dataclass(frozen=True)
class JobOutcome:
    """One run of a duty."""

    job: str
    period: str
    ok: bool
    detail: str


class Scheduler:
    """Runs each duty once in each period its schedule names, whoever else is running."""

    def __init__(self, node: Node, clock: Callable[[], datetime] | None = None) -> None:
        self.node = node
        self.clock = clock or (lambda: datetime.now(UTC))
        self.zone = ZoneInfo(node.settings.jobs.timezone)
        self.schedules = {name: parse_schedule(text) for name, text in node.settings.jobs.schedules().items()}
        self.runs = JobRuns(node.store.engine)

    def tick(self) -> list[JobOutcome]:
        """Run every duty due now that no one has run in its period yet."""
        done = []
        for name, schedule in self.schedules.items():
            now = self.clock()
            period = schedule.period(now, self.zone)
            if period is None or not self.runs.claim(name, period, now, LEASE):
                continue
            done.append(self.run(name, period, now))
        return done

    def run(self, name: str, period: str, claimed_at: datetime) -> JobOutcome:
        """Run duty ``name`` for ``period`` (claimed at ``claimed_at``) and record how it ended."""
        # the zone decides when a duty is due; what it does is reckoned in the node's own days (UTC),
        # as wallets and rights deadlines are: a lot stays usable through its last day everywhere
        today = self.clock().astimezone(UTC).date()
        try:
            detail, ok = DUTIES[name](self.node, today), True
            log.info("job %s (%s): %s", name, period, detail)
        except Exception as exc:  # recorded and counted; the next period tries again
            detail, ok = f"{type(exc).__name__}: {_plain(exc)}", False
            log.warning("job %s (%s) failed: %s", name, period, detail)
        if not self.runs.finish(name, period, claimed_at, self.clock(), ok, detail):
            log.warning("job %s (%s) ran past its lease: another process took the period over", name, period)
        return JobOutcome(name, period, ok, detail)

    def run_now(self, name: str) -> JobOutcome:
        """Run ``name`` at once, outside its schedule (``jobs run``): recorded as a manual run."""
        if name not in DUTIES:
            raise ValueError(f"no duty named {name!r}: there are {', '.join(DUTIES)}")
        now = self.clock()
        period = f"manual-{now.strftime('%Y%m%dT%H%M%S.%f')}"
        self.runs.claim(name, period, now, LEASE)
        return self.run(name, period, now)


def job_metrics(runs: JobRuns) -> Iterator[Metric]:
    """Finished runs by duty and outcome, runs in progress, and each duty's newest success, from the
    database (cron's runs too)."""
    finished = CounterMetricFamily(
        "alliance_job_runs", "Finished runs of each scheduled duty, by outcome (ok, failed).", labels=["job", "outcome"]
    )
    running = GaugeMetricFamily("alliance_job_running", "Runs of each duty started and not finished.", labels=["job"])
    last = GaugeMetricFamily(
        "alliance_job_last_success_timestamp_seconds",
        "When each duty last finished without error (Unix time; 0: never).",
        labels=["job"],
    )
    counts = runs.counts()
    for name in DUTIES:
        mine = {outcome: (n, at) for job, outcome, n, at in counts if job == name}
        for outcome in ("ok", "failed"):
            finished.add_metric([name, outcome], mine.get(outcome, (0, None))[0])
        running.add_metric([name], mine.get("running", (0, None))[0])
        at = mine.get("ok", (0, None))[1]
        last.add_metric([name], _aware(at).timestamp() if at is not None else 0.0)
    yield from (finished, running, last)


def _plain(exc: Exception) -> str:
    """The error for people: the driver's message for a database error, never SQLAlchemy's, which quotes
    the statement's parameters (pseudonyms)."""
    orig = getattr(exc, "orig", None)
    return str(orig) if orig is not None else str(exc)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class JobLoop(Periodic):
    """Looks at the timetable every :data:`TICK_SECONDS` in a thread (what ``serve`` starts)."""

    def __init__(self, scheduler: Scheduler, interval: float = TICK_SECONDS) -> None:
        self.scheduler = scheduler
        super().__init__("jobs", interval, scheduler.tick, log)
