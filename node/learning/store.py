"""The node's records of federated learning: the privacy budget, each run's spend, the global models.

The budget is the brand's own: a total epsilon for ``joint_modeling`` across every run, kept in
its database and changed only by an audited command. Each run keeps the noise multiplier fixed at
its first round and the accountant's history, so the next round's cost is computed on what was
really spent, also after a restart.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, LargeBinary, select
from sqlmodel import Field, SQLModel

from federation.manifest import Manifest
from federation.site import RunPrivacy, Weights

if TYPE_CHECKING:
    import numpy as np

    from federation.privacy import Step

PURPOSE = "joint_modeling"
DEFAULT_BUDGET = 10.0


class PrivacyBudgetRow(SQLModel, table=True):
    """The total epsilon a purpose may spend at this brand."""

    __tablename__ = "privacy_budget"
    purpose: str = Field(primary_key=True, max_length=64)
    epsilon: float
    set_at: datetime


class PrivacyRunRow(SQLModel, table=True):
    """One federated run's DP state: the noise fixed at its start and the accountant history."""

    __tablename__ = "privacy_run"
    run: str = Field(primary_key=True, max_length=100)
    purpose: str = Field(max_length=64, index=True)
    noise_multiplier: float
    history_json: str
    updated_at: datetime


class PrivacyRoundRow(SQLModel, table=True):
    """What one trained round cost and on whom (a count and a commitment, never the list)."""

    __tablename__ = "privacy_round"
    run: str = Field(primary_key=True, max_length=100)
    round: int = Field(primary_key=True)
    epsilon: float
    delta: float
    members: int
    members_sha256: str = Field(max_length=64)
    at: datetime


class GlobalModelRow(SQLModel, table=True):
    """A global model received from the alliance, by run and round."""

    __tablename__ = "global_model"
    run: str = Field(primary_key=True, max_length=100)
    round: int = Field(primary_key=True)
    weights: bytes = Field(sa_type=LargeBinary)
    sha256: str = Field(max_length=64)
    at: datetime


class ServedModelRow(SQLModel, table=True):
    """The model the brand scores with after a run: the run's joint model (of ``round``) blended with
    a model of its own members, the joint model's share chosen on its own validation rows."""

    __tablename__ = "served_model"
    run: str = Field(primary_key=True, max_length=100)
    round: int
    joint_share: float
    own_rows: int
    weights: bytes = Field(sa_type=LargeBinary)
    sha256: str = Field(max_length=64)
    at: datetime


class RunOutcomeRow(SQLModel, table=True):
    """How a finished run did for this brand on its own held-out members: alone, together, served."""

    __tablename__ = "run_outcome"
    run: str = Field(primary_key=True, max_length=100)
    auc_alone: float | None = None
    auc_together: float | None = None
    auc_served: float | None = None
    epsilon_spent: float | None = None
    epsilon_budget: float
    test_rows: int
    at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


class RunOutcomes:
    """Each finished run's outcome at this brand, what the operator's dashboard shows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, run: str, **outcome: float | int | None) -> None:
        """Keep ``run``'s outcome (a run named again replaces it)."""
        t = RunOutcomeRow.__table__
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.run == run))
            conn.execute(t.insert().values(run=run, at=_now(), **outcome))

    def all(self) -> list[dict[str, object]]:
        """Every recorded outcome, oldest first."""
        t = RunOutcomeRow.__table__
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(t).order_by(t.c.at)).mappings()]


class NodePrivacyBook:
    """:class:`federation.site.PrivacyBook` on the node's database."""

    def __init__(self, engine: Engine, purpose: str = PURPOSE, default_budget: float = DEFAULT_BUDGET) -> None:
        self.engine, self.purpose, self.default_budget = engine, purpose, default_budget

    def budget(self) -> float:
        """The recorded budget, or the default until one is set."""
        with self.engine.connect() as conn:
            t = PrivacyBudgetRow.__table__
            value = conn.execute(select(t.c.epsilon).where(t.c.purpose == self.purpose)).scalar()
        return float(value) if value is not None else self.default_budget

    def set_budget(self, epsilon: float) -> None:
        """Record a new total budget (the caller audits the change)."""
        if not epsilon > 0 or epsilon != epsilon or epsilon == float("inf"):
            raise ValueError("a privacy budget is a positive, finite epsilon")
        t = PrivacyBudgetRow.__table__
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            conn.execute(t.delete().where(t.c.purpose == self.purpose))
            conn.execute(t.insert().values(purpose=self.purpose, epsilon=float(epsilon), set_at=_now()))

    def spent(self) -> float:
        """Epsilon spent so far on the purpose, every run composed (at the delta of the latest round)."""
        from federation.privacy import epsilon_of  # Opacus' accountant: imported only when asked

        rounds = self.rounds()
        delta = float(rounds[-1]["delta"]) if rounds else 1e-5
        return epsilon_of(self.spent_before(""), delta)

    def spent_before(self, run: str) -> list[Step]:
        """Accountant history of the purpose's other runs."""
        t = PrivacyRunRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.history_json).where(t.c.purpose == self.purpose, t.c.run != run)).scalars()
            return [tuple(s) for h in rows for s in json.loads(h)]  # type: ignore[misc]

    def run(self, run: str) -> RunPrivacy | None:
        """This run's state."""
        t = PrivacyRunRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.run == run)).first()
        if row is None:
            return None
        return RunPrivacy(row.noise_multiplier, tuple(tuple(s) for s in json.loads(row.history_json)))  # type: ignore[misc]

    def record_round(
        self, run: str, round_no: int, state: RunPrivacy, epsilon: float, delta: float, manifest: Manifest
    ) -> None:
        """The run's new state and the round's cost, in one transaction (a crash keeps both or neither)."""
        rt, rr = PrivacyRunRow.__table__, PrivacyRoundRow.__table__
        now = _now()
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            conn.execute(rt.delete().where(rt.c.run == run))
            conn.execute(
                rt.insert().values(
                    run=run,
                    purpose=self.purpose,
                    noise_multiplier=state.noise_multiplier,
                    history_json=json.dumps([list(s) for s in state.history]),
                    updated_at=now,
                )
            )
            conn.execute(rr.delete().where(rr.c.run == run, rr.c.round == round_no))
            conn.execute(
                rr.insert().values(
                    run=run,
                    round=round_no,
                    epsilon=epsilon,
                    delta=delta,
                    members=manifest.count,
                    members_sha256=manifest.sha256,
                    at=now,
                )
            )

    def rounds(self) -> list[dict[str, object]]:
        """Every trained round, oldest first."""
        t = PrivacyRoundRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.at, t.c.run, t.c.round)).mappings().all()
        return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows]


def pack(weights: Mapping[str, np.ndarray]) -> bytes:
    """Weights as a NumPy ``.npz`` archive (no pickle)."""
    import numpy as np  # the [learning] extra's: only a node that trains or serves models packs weights

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in weights.items()})
    return buf.getvalue()


def unpack(data: bytes) -> Weights:
    """The weights of a :func:`pack` archive."""
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class NodeModelShelf:
    """:class:`federation.site.ModelShelf` on the node's database: every global model, versioned."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def store(self, run: str, round_no: int, weights: Mapping[str, np.ndarray]) -> None:
        """Keep the model of ``round_no`` (a repeated delivery replaces it)."""
        data = pack(weights)
        t = GlobalModelRow.__table__
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            conn.execute(t.delete().where(t.c.run == run, t.c.round == round_no))
            conn.execute(
                t.insert().values(
                    run=run, round=round_no, weights=data, sha256=hashlib.sha256(data).hexdigest(), at=_now()
                )
            )

    def latest(self) -> tuple[str, int, Weights] | None:
        """The newest global model stored: its run, round and weights."""
        t = GlobalModelRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).order_by(t.c.at.desc(), t.c.round.desc()).limit(1)).first()
        return None if row is None else (row.run, row.round, unpack(row.weights))

    def serve(
        self, run: str, round_no: int, joint_share: float, own_rows: int, weights: Mapping[str, np.ndarray]
    ) -> None:
        """Keep the brand's blend for ``run`` (a second blend of the same run replaces the first)."""
        data = pack(weights)
        t = ServedModelRow.__table__
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            conn.execute(t.delete().where(t.c.run == run))
            conn.execute(
                t.insert().values(
                    run=run,
                    round=round_no,
                    joint_share=joint_share,
                    own_rows=own_rows,
                    weights=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                    at=_now(),
                )
            )

    def scoring(self) -> tuple[dict[str, object], Weights] | None:
        """The model scores come from, and what it is: the brand's blend of the newest run when it has
        one, else the newest global model (a run whose blend is not made yet is served as received)."""
        latest = self.latest()
        if latest is None:
            return None
        run, round_no, weights = latest
        t = ServedModelRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.run == run)).first()
        if row is None or row.round != round_no:
            return {"run": run, "round": round_no, "joint_share": 1.0}, weights
        return {"run": run, "round": round_no, "joint_share": row.joint_share}, unpack(row.weights)

    def served(self) -> list[dict[str, object]]:
        """Every blend kept: run, joint model's round and share, own rows, digest and time, oldest first."""
        t = ServedModelRow.__table__
        cols = (t.c.run, t.c.round, t.c.joint_share, t.c.own_rows, t.c.sha256, t.c.at)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).order_by(t.c.at)).all()
        return [{**r._asdict(), "at": r.at.isoformat()} for r in rows]

    def versions(self) -> list[dict[str, object]]:
        """Every stored model's run, round, digest and time, oldest first."""
        t = GlobalModelRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.run, t.c.round, t.c.sha256, t.c.at).order_by(t.c.at, t.c.round)).all()
        return [{"run": r.run, "round": r.round, "sha256": r.sha256, "at": r.at.isoformat()} for r in rows]
