"""Serve's background work: a pass run at start and then every few seconds in a daemon thread (the
loops), and the scheduled duties' timetable (:class:`Schedule`) and record of runs (:class:`JobRuns`)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel


class Periodic:
    """Runs ``step`` now and then every ``interval`` seconds until stopped; a failing pass is logged
    and the next one still runs (a database, peer or chain hiccup must not end the loop)."""

    def __init__(self, name: str, interval: float, step: Callable[[], None], log: logging.Logger) -> None:
        self.name, self.interval, self.step, self.log = name, interval, step, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def stop(self) -> None:
        """Stop it and wait for the pass in progress."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                self.log.exception("%s pass failed", self.name)
            self._stop.wait(self.interval)


# --- scheduled duties: when each is due, and the record of its runs ---------------------------------

DAILY = re.compile(r"daily (\d{2}):(\d{2})")
EVERY = re.compile(r"every (\d+) ?([mh])")


@dataclass(frozen=True)
class Schedule:
    """When a duty runs: ``daily HH:MM`` (local time), ``every N[m|h]``, or ``off``."""

    text: str
    at: dt_time | None = None
    every: timedelta | None = None

    @property
    def off(self) -> bool:
        """The duty never runs on its own (cron, or nobody, runs it)."""
        return self.at is None and self.every is None

    def period(self, now: datetime, zone: ZoneInfo) -> str | None:
        """The period ``now`` falls in if the duty is due in it, else ``None``.

        A daily duty's period is the local date, due once its time of day has passed: a node that
        was down at that time runs it when it comes back, still once that day. An interval duty's
        period is the slot of ``every`` since the epoch.
        """
        if self.at is not None:
            local = now.astimezone(zone)
            return local.date().isoformat() if local.time() >= self.at else None
        if self.every is not None:
            return f"slot-{int(now.timestamp() // self.every.total_seconds())}"
        return None


def parse_schedule(text: str) -> Schedule:
    """A :class:`Schedule` from its text (``ValueError`` naming the accepted forms otherwise)."""
    clean = " ".join(text.lower().split())
    if clean == "off":
        return Schedule(clean)
    if m := DAILY.fullmatch(clean):
        hour, minute = int(m[1]), int(m[2])
        if hour < 24 and minute < 60:
            return Schedule(clean, at=dt_time(hour, minute))
    if (m := EVERY.fullmatch(clean)) and int(m[1]) > 0:
        return Schedule(clean, every=timedelta(minutes=int(m[1]) * (60 if m[2] == "h" else 1)))
    raise ValueError(f"{text!r} is not a schedule: use 'daily HH:MM', 'every N m', 'every N h' or 'off'")


class JobRunRow(SQLModel, table=True):
    """One run of a scheduled duty in one period: claimed by inserting it, so a period runs once."""

    __tablename__ = "node_job_run"
    job: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=32)
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str = Field(default="running", max_length=16)  # running | ok | failed
    detail: str = Field(default="", max_length=500)


class JobRuns:
    """The runs of scheduled duties, kept in the node's database so that restarts and several
    processes agree on what has run."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, job: str, period: str, now: datetime, lease: timedelta) -> bool:
        """Take ``job``'s run for ``period``: True for exactly one caller per period.

        A run claimed by a process that died before finishing is taken over once ``lease`` has passed.
        """
        t = JobRunRow.__table__
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t).values(job=job, period=period, started_at=now, outcome="running", detail=""))
            return True
        except IntegrityError:
            pass
        stale = (t.c.job == job) & (t.c.period == period) & t.c.finished_at.is_(None) & (t.c.started_at < now - lease)
        with self.engine.begin() as conn:
            return conn.execute(update(t).where(stale).values(started_at=now)).rowcount == 1

    def finish(self, job: str, period: str, claimed_at: datetime, now: datetime, ok: bool, detail: str) -> bool:
        """Record how the run claimed at ``claimed_at`` ended; False if another process took it over meanwhile
        (its lease ran out), whose record then stands."""
        t = JobRunRow.__table__
        mine = (t.c.job == job) & (t.c.period == period) & (t.c.started_at == claimed_at)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t).where(mine).values(finished_at=now, outcome="ok" if ok else "failed", detail=detail[:500])
            )
        return done.rowcount == 1

    def runs(self, job: str | None = None) -> list[JobRunRow]:
        """Every recorded run (of ``job``), newest first."""
        t = JobRunRow.__table__
        query = select(t).order_by(t.c.started_at.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query if job is None else query.where(t.c.job == job)).all()
        return [JobRunRow(**r._mapping) for r in rows]

    def counts(self) -> list[tuple[str, str, int, datetime | None]]:
        """(job, outcome, runs, newest finish) for every job and outcome recorded."""
        t = JobRunRow.__table__
        query = select(t.c.job, t.c.outcome, func.count(), func.max(t.c.finished_at)).group_by(t.c.job, t.c.outcome)
        with self.engine.connect() as conn:
            return [(j, o, n, at) for j, o, n, at in conn.execute(query)]
