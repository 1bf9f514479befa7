"""The node's own metrics, read at scrape time: a Prometheus collector over its tables and services.

Every value comes from one cheap query (or an in-process counter), never from scanning or decoding a
log. States with no rows are reported as 0 so that a dashboard's series do not vanish. Counts that
can fall (consent records purged with an erased member) are gauges; the denial counts kept by
:class:`node.core.audit.NodeAudit` since this process started are counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Connection

from compliance.rights import DEADLINE_WORKING_DAYS, RequestKind, working_days_after
from compliance.store import ConsentRow, RightsRequestRow, RightsStepRow
from ledger.storage import CheckpointRecord, CosignatureRecord, LogRecord
from node.exchange.protocol import DestinationState, SourceState
from node.exchange.store import ExchangeInRow, ExchangeOutRow
from node.learning.store import DEFAULT_BUDGET, PURPOSE, PrivacyBudgetRow, PrivacyRoundRow, PrivacyRunRow
from node.runtime import Node

PREFIX = "alliance"
#: ``{log name: size on the chain}``, or None when this node does not anchor.
AnchorState = Callable[[], dict[str, int] | None]


class NodeCollector(Collector):
    """Collects the node's state on each scrape."""

    def __init__(self, node: Node, anchored: AnchorState | None = None, jobs: Callable[[], list[Metric]] | None = None):
        self.node = node
        self.anchored = anchored or (lambda: None)
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        """Every metric of the node, read now."""
        with self.node.store.engine.connect() as conn:
            yield from exchanges(conn)
            yield from consent_changes(conn)
            sizes = yield from logs(conn, self.node, self.anchored())
            # only the peers `witness request` asks: a peer without a URL is never asked to cosign
            yield from cosignatures(conn, sizes, [p.node_id for p in self.node.settings.peers if p.url])
            yield from privacy_budget(conn)
            yield from rights_requests(conn)
        yield from denials(self.node)
        yield from audit_outbox(self.node)
        if self.jobs is not None:
            yield from self.jobs()


def gauge(name: str, doc: str, labels: list[str] | None = None, value: float | None = None) -> GaugeMetricFamily:
    """A gauge family named under the project's prefix (with its one ``value`` when it has no labels)."""
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels, value=value)


def exchanges(conn: Connection) -> Iterator[Metric]:
    """Exchanges by direction and state, and the recovery backlog."""
    o, i = ExchangeOutRow.__table__, ExchangeInRow.__table__
    by_state = gauge(
        "exchanges",
        "Exchanges recorded, by direction (out: this node is the source) and state.",
        ["direction", "state"],
    )
    out = dict(conn.execute(select(o.c.state, func.count()).group_by(o.c.state)).all())
    inc = dict(conn.execute(select(i.c.state, func.count()).group_by(i.c.state)).all())
    for direction, states, counts in (("out", SourceState, out), ("in", DestinationState, inc)):
        for state in states:
            by_state.add_metric([direction, state.value], counts.get(state.value, 0))
    yield by_state
    busy = o.c.state.in_([SourceState.HELD.value, SourceState.CANCELLING.value])
    n, oldest = conn.execute(select(func.count(), func.min(o.c.created_at)).where(busy)).one()
    yield gauge("exchange_recovery_backlog", "Exchanges held or cancelling: what recovery resumes.", value=n)
    yield gauge(
        "exchange_recovery_oldest_seconds", "Age of the oldest unfinished exchange (0: none).", value=_age(oldest)
    )


def consent_changes(conn: Connection) -> Iterator[Metric]:
    """Consent records by purpose and action (grant, withdraw, renew)."""
    t = ConsentRow.__table__
    family = gauge(
        "consent_records",
        "Consent records kept, by purpose family (points_exchange:, not each brand) and action.",
        ["purpose", "action"],
    )
    counts: dict[tuple[str, str], int] = {}
    for purpose, action, n in conn.execute(
        select(t.c.purpose_code, t.c.action, func.count()).group_by(t.c.purpose_code, t.c.action)
    ):
        key = (purpose_family(purpose), action)
        counts[key] = counts.get(key, 0) + n
    for labels, n in sorted(counts.items()):
        family.add_metric(list(labels), n)
    yield family


def denials(node: Node) -> Iterator[Metric]:
    """Denied uses of personal information audited since this process started, by action, purpose and reason."""
    family = CounterMetricFamily(
        f"{PREFIX}_gate_denials",
        "Audited denials (consent gate, egress, feature switches) since the process started.",
        labels=["action", "purpose", "reason"],
    )
    with node.audit.denials_lock:
        counted = list(node.audit.denials.items())
    by_family: dict[tuple[str, str, str], int] = {}
    for (action, purpose, reason), n in counted:
        key = (action, purpose_family(purpose), reason)
        by_family[key] = by_family.get(key, 0) + n
    for labels, n in sorted(by_family.items()):
        family.add_metric(list(labels), n)
    yield family


def audit_outbox(node: Node) -> Iterator[Metric]:
    """Audit events staged with their change and not yet in the audit log."""
    n, oldest = node.consent.store.outbox_pending()
    yield gauge("audit_outbox_depth", "Staged audit events not yet appended to the audit log.", value=n)
    yield gauge(
        "audit_outbox_oldest_seconds", "Age of the oldest staged event not yet appended (0: none).", value=_age(oldest)
    )


def logs(conn: Connection, node: Node, anchored: dict[str, int] | None) -> Iterator[Metric]:
    """Each log's size, its newest checkpoint's size and age, and how far the chain's anchor lags.

    Returns the sizes by log name (for the witness lag), as the generator's return value.
    """
    lg, cp, cp2 = LogRecord.__table__, CheckpointRecord.__table__, CheckpointRecord.__table__.alias()
    newest = select(func.max(cp2.c.size)).where(cp2.c.log_id == lg.c.id).scalar_subquery()
    joined = lg.outerjoin(cp, and_(cp.c.log_id == lg.c.id, cp.c.size == newest))
    rows = conn.execute(select(lg.c.name, lg.c.size, cp.c.size, cp.c.created_at).select_from(joined)).all()
    size = gauge("log_size", "Entries in each log.", ["log"])
    unsigned = gauge("log_entries_since_checkpoint", "Entries appended since the newest signed checkpoint.", ["log"])
    age = gauge("log_checkpoint_age_seconds", "Age of each log's newest signed checkpoint (-1: none yet).", ["log"])
    lag = gauge(
        "anchor_lag_entries", "Entries of each log not yet anchored on the chain (only when anchoring).", ["log"]
    )
    sizes: dict[str, int] = {}
    for name, n, signed, at in rows:
        sizes[name] = n
        size.add_metric([name], n)
        unsigned.add_metric([name], n - (signed or 0))
        age.add_metric([name], _age(at) if at is not None else -1)
        if anchored is not None and name in anchored:  # a log the anchoring loop has not looked at yet: unknown
            lag.add_metric([name], max(0, n - anchored[name]))
    yield from (size, unsigned, age, lag)
    return sizes


def cosignatures(conn: Connection, sizes: dict[str, int], witnesses: list[str]) -> Iterator[Metric]:
    """Entries of each log beyond what each peer witness has cosigned."""
    lg, cs = LogRecord.__table__, CosignatureRecord.__table__
    query = select(lg.c.name, cs.c.witness, func.max(cs.c.size)).join(cs, cs.c.log_id == lg.c.id)
    got = {(n, w): s for n, w, s in conn.execute(query.group_by(lg.c.name, cs.c.witness))}
    family = gauge("witness_lag_entries", "Entries of each log not yet cosigned by each witness.", ["log", "witness"])
    for name, n in sizes.items():
        for witness in witnesses:
            family.add_metric([name, witness], max(0, n - got.get((name, witness), 0)))
    yield family


def privacy_budget(conn: Connection) -> Iterator[Metric]:
    """The differential-privacy budget left for joint modelling (epsilon).

    Every round records the spend of all runs so far, so the newest round's epsilon is what is spent:
    the same figure as the privacy book's accountant, without loading it.
    """
    run, rnd, budget = PrivacyRunRow.__table__, PrivacyRoundRow.__table__, PrivacyBudgetRow.__table__
    newest = select(rnd.c.epsilon).join(run, run.c.run == rnd.c.run).where(run.c.purpose == PURPOSE)
    spent = conn.execute(newest.order_by(rnd.c.at.desc()).limit(1)).scalar() or 0.0
    cap = conn.execute(select(budget.c.epsilon).where(budget.c.purpose == PURPOSE)).scalar() or DEFAULT_BUDGET
    left = gauge("dp_budget_left_epsilon", "Epsilon left in each purpose's privacy budget.", ["purpose"])
    left.add_metric([PURPOSE], max(0.0, cap - spent))
    yield left
    total = gauge("dp_budget_epsilon", "Each purpose's privacy budget (epsilon).", ["purpose"])
    total.add_metric([PURPOSE], cap)
    yield total


def rights_requests(conn: Connection) -> Iterator[Metric]:
    """Open rights requests by kind, and how many of them are past their deadline."""
    rq, st = RightsRequestRow.__table__, RightsStepRow.__table__
    done = exists().where(st.c.dsr_id == rq.c.dsr_id, st.c.step.in_(["completed", "refused"]))
    rows = conn.execute(select(rq.c.kind, rq.c.received_at).where(~done)).all()
    today = datetime.now(UTC).date()
    open_ = gauge("rights_requests_open", "Rights requests not yet completed or refused, by kind.", ["kind"])
    late = gauge(
        "rights_requests_overdue", "Open rights requests past their 15-working-day deadline, by kind.", ["kind"]
    )
    for kind in RequestKind:
        mine = [r for r in rows if r.kind == kind.value]
        open_.add_metric([kind.value], len(mine))
        late.add_metric(
            [kind.value], sum(today > working_days_after(r.received_at.date(), DEADLINE_WORKING_DAYS) for r in mine)
        )
    yield from (open_, late)


def purpose_family(code: str) -> str:
    """A purpose code as a label: its family (``points_exchange:``), never a parameter a caller chose."""
    return code.split(":", 1)[0] + ":" if ":" in code else code


def _age(at: datetime | None) -> float:
    if at is None:
        return 0.0
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - at).total_seconds())
