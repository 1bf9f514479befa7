"""Scheduled duties: each runs once per period, across restarts and processes, and its runs are recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from node.cli.main import app
from node.core.datadir import init_node
from node.core.periodic import JobRuns, parse_schedule
from node.ops.jobs import LEASE, Scheduler, job_metrics
from node.runtime import Node

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-12-06 01:30 in Shanghai: after the default 01:00 of point expiry, before the rest
NIGHT = datetime(2026, 12, 5, 17, 30, tzinfo=UTC)
ONLY_EXPIRY = {
    "points_expire": "daily 01:00",
    "rights_escalate": "off",
    "retention_purge": "off",
    "witness_request": "off",
}


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    init_node(tmp_path / "n", "jobs.alliance.example", jobs=ONLY_EXPIRY)
    return tmp_path / "n"


@pytest.fixture
def node(data_dir: Path) -> Iterator[Node]:
    opened = Node.open(data_dir)
    yield opened
    opened.dispose()


# --- the timetable (pure) ----------------------------------------------------------------------


def test_a_daily_duty_is_due_once_its_local_time_has_passed() -> None:
    daily = parse_schedule("daily 01:00")
    assert daily.period(NIGHT - timedelta(hours=1), SHANGHAI) is None  # 00:30 in Shanghai
    assert daily.period(NIGHT, SHANGHAI) == "2026-12-06"
    assert daily.period(NIGHT + timedelta(hours=20), SHANGHAI) == "2026-12-06"  # 21:30: still that day's run


def test_an_interval_duty_is_due_once_per_slot() -> None:
    hourly = parse_schedule("every 1h")
    assert hourly.period(NIGHT, SHANGHAI) == hourly.period(NIGHT + timedelta(minutes=29), SHANGHAI)
    assert hourly.period(NIGHT, SHANGHAI) != hourly.period(NIGHT + timedelta(minutes=31), SHANGHAI)


def test_an_off_duty_is_never_due() -> None:
    assert parse_schedule("off").period(NIGHT, SHANGHAI) is None


@pytest.mark.parametrize("text", ["daily 25:00", "daily 1am", "every 0m", "weekly", ""])
def test_a_schedule_that_is_not_one_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="daily HH:MM"):
        parse_schedule(text)


def test_node_toml_refuses_a_bad_schedule_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a schedule"):
        init_node(tmp_path / "bad", "bad.alliance.example", jobs={"points_expire": "at midnight"})


# --- once per period ---------------------------------------------------------------------------


def test_a_daily_duty_runs_once_however_often_the_loop_looks(node: Node) -> None:
    clock = Clock(NIGHT)
    scheduler = Scheduler(node, clock)
    assert [o.job for o in scheduler.tick()] == ["points_expire"]
    clock.now += timedelta(minutes=30)
    assert scheduler.tick() == []


def test_a_restart_does_not_run_a_daily_duty_twice_in_a_day(data_dir: Path) -> None:
    clock = Clock(NIGHT)
    first = Node.open(data_dir)
    try:
        assert [o.job for o in Scheduler(first, clock).tick()] == ["points_expire"]
    finally:
        first.dispose()
    clock.now += timedelta(hours=6)
    again = Node.open(data_dir)  # the process restarted, later the same day
    try:
        assert Scheduler(again, clock).tick() == []
        clock.now += timedelta(days=1)
        assert [o.period for o in Scheduler(again, clock).tick()] == ["2026-12-07"]
    finally:
        again.dispose()


def test_of_two_processes_only_one_runs_a_period(node: Node, data_dir: Path) -> None:
    other = Node.open(data_dir)
    try:
        clock = Clock(NIGHT)
        ran = Scheduler(node, clock).tick() + Scheduler(other, clock).tick()
        assert len(ran) == 1
    finally:
        other.dispose()


def test_a_run_its_process_never_finished_is_taken_over_after_the_lease(node: Node) -> None:
    runs = JobRuns(node.store.engine)
    assert runs.claim("points_expire", "2026-12-06", NIGHT, LEASE)  # then the process died
    assert not runs.claim("points_expire", "2026-12-06", NIGHT + LEASE / 2, LEASE)
    assert runs.claim("points_expire", "2026-12-06", NIGHT + LEASE * 2, LEASE)


def test_a_finished_run_is_never_taken_over(node: Node) -> None:
    runs = JobRuns(node.store.engine)
    assert runs.claim("points_expire", "2026-12-06", NIGHT, LEASE)
    assert runs.finish("points_expire", "2026-12-06", NIGHT, NIGHT, True, "done")
    assert not runs.claim("points_expire", "2026-12-06", NIGHT + LEASE * 5, LEASE)


def test_a_run_taken_over_after_its_lease_does_not_overwrite_the_new_runs_record(node: Node) -> None:
    runs = JobRuns(node.store.engine)
    assert runs.claim("points_expire", "2026-12-06", NIGHT, LEASE)  # slow: still running ...
    assert runs.claim("points_expire", "2026-12-06", NIGHT + LEASE * 2, LEASE)  # ... when another takes over
    assert runs.finish("points_expire", "2026-12-06", NIGHT + LEASE * 2, NIGHT + LEASE * 2, True, "second")
    assert not runs.finish("points_expire", "2026-12-06", NIGHT, NIGHT + LEASE * 3, False, "first, late")
    [row] = runs.runs("points_expire")
    assert (row.outcome, row.detail) == ("ok", "second")


# --- what the duties do ------------------------------------------------------------------------


def test_the_expiry_duty_expires_what_is_left_of_lots_past_their_day(node: Node) -> None:
    node.consent.register_members([("m1", None, None)])
    member = node.consent.member_pseudonym("m1")
    node.wallets.earn(member, 500, "promotion", date(2025, 1, 1), date(2026, 12, 1))
    node.wallets.earn(member, 200, "promotion", date(2025, 1, 1), date(2027, 12, 1))
    [outcome] = Scheduler(node, Clock(NIGHT)).tick()
    assert outcome.ok
    assert outcome.detail == "500 point(s) expired in 1 wallet(s)"
    assert node.wallets.balance(member, date(2026, 12, 6)) == 200
    assert node.wallets.expire_due(date(2026, 12, 6)) == (0, 0)  # nothing left to expire


def test_a_failing_duty_is_recorded_failed_and_counted(tmp_path: Path) -> None:
    init_node(
        tmp_path / "w",
        "w.alliance.example",
        jobs={**ONLY_EXPIRY, "points_expire": "off", "witness_request": "every 60m"},
    )
    node = Node.open(tmp_path / "w")
    try:
        node.settings.peers.append(_unreachable_peer(node))
        [outcome] = Scheduler(node, Clock(NIGHT)).tick()
        assert not outcome.ok
        samples = {
            (s.labels["job"], s.labels["outcome"]): s.value
            for f in job_metrics(JobRuns(node.store.engine))
            for s in f.samples
            if "outcome" in s.labels
        }
        assert samples[("witness_request", "failed")] == 1
    finally:
        node.dispose()


def _unreachable_peer(node: Node):  # type: ignore[no-untyped-def]
    from ledger import note
    from node.core.processes import free_port
    from node.core.settings import Peer

    vkey = note.Signer.generate("gone.alliance.example").verifier().to_vkey()
    return Peer(node_id="gone.alliance.example", vkey=vkey, url=f"http://127.0.0.1:{free_port()}")


# --- the command line --------------------------------------------------------------------------


def test_jobs_run_runs_a_duty_now_and_jobs_list_shows_it(data_dir: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["jobs", "run", "points_expire", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert "expired in 0 wallet(s)" in r.output
    listed = runner.invoke(app, ["jobs", "list", "--format", "json", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    jobs = {j["job"]: j for j in json.loads(listed.output)["jobs"]}
    assert (jobs["points_expire"]["outcome"], jobs["rights_escalate"]["schedule"]) == ("ok", "off")


def test_jobs_run_of_an_unknown_duty_names_the_duties(data_dir: Path) -> None:
    r = CliRunner().invoke(app, ["jobs", "run", "reindex", "--data-dir", str(data_dir)])
    assert r.exit_code == 1
    assert "points_expire" in r.output
