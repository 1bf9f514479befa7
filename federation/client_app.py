"""The brand's side of a federated run, on Flower's Message API.

- ``query``: the brand's name and row counts, so the server reports brands by name;
- ``train``: one round of local training from the global model, with Opacus DP-SGD whose noise
  is fixed at the run's first round and whose accountant history is kept in the brand's
  :class:`~federation.site.PrivacyBook`, so the epsilon reported is cumulative; a round that would
  pass the brand's budget is refused (an error reply, audited) before any row is read;
- ``evaluate``: the AUC on the brand's held-out rows of the global model and of every
  leave-one-brand-out model the server sends (for contributions), and, where the brand set rows
  aside for it, the validation loss the server's stopping rule watches; the global model is stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federation.metrics import auc
from federation.privacy import BudgetExceeded, PrivacyPlan, Step, check_budget, epsilon_of
from federation.site import RoundRefused, RunPrivacy, Site, Weights
from federation.training import log_loss, predict, train

#: Error codes of refused rounds (Flower reserves small codes for its own errors).
BUDGET_REFUSED = 4031
NO_MEMBERS = 4041
GATE_CLOSED = 4032
#: Prefix of the leave-one-out ArrayRecords in an evaluate message: ``without:<node id>``.
WITHOUT = "without:"


def to_record(weights: Mapping[str, np.ndarray]) -> ArrayRecord:
    """Weights as an ArrayRecord, keys kept."""
    return ArrayRecord(array_dict={k: Array(np.asarray(v, dtype=np.float32)) for k, v in weights.items()})


def from_record(record: ArrayRecord) -> Weights:
    """An ArrayRecord back as named numpy arrays."""
    return {k: np.array(v.numpy(), copy=True) for k, v in record.items()}


def make_client_app(site_of: Callable[[Context], Site]) -> ClientApp:
    """A ClientApp whose brand is ``site_of(context)`` (the node's config says which)."""
    app = ClientApp()

    @app.query()
    def describe(msg: Message, context: Context) -> Message:
        site = site_of(context)
        width = site.width
        if width is None:  # a simulation's rows are in memory; a node states its width and reads nothing here
            data = site.data()
            width = len((data.x_train or data.x_test or [[]])[0])
        facts = MetricRecord({"features": width})
        return Message(RecordDict({"brand": ConfigRecord({"name": site.name}), "rows": facts}), reply_to=msg)

    @app.train()
    def train_round(msg: Message, context: Context) -> Message:
        return _train(site_of(context), msg)

    @app.evaluate()
    def evaluate_round(msg: Message, context: Context) -> Message:
        return _evaluate(site_of(context), msg)

    return app


def _train(site: Site, msg: Message) -> Message:
    cfg = msg.content["config"]
    run, round_no = str(cfg["run"]), int(cfg["server-round"])
    dp = bool(cfg.get("dp", True))
    delta = float(cfg.get("delta", 1e-5))
    epochs, batch = int(cfg.get("epochs", 1)), int(cfg.get("batch-size", 256))
    try:
        site.gate()  # the feature switch (an approved impact assessment) before any row is read
    except RoundRefused as exc:
        return Message(error=Error(GATE_CLOSED, f"{site.name}: {exc}"), reply_to=msg)
    state = site.privacy.run(run)
    data = site.data()
    if not data.x_train:
        site.audit("federation.round_refused", {"run": run, "round": round_no, "reason": "no consented members"})
        return Message(error=Error(NO_MEMBERS, f"{site.name}: no consented members to train on"), reply_to=msg)
    history: list[Step] = list(state.history) if state else []
    earlier = site.privacy.spent_before(run)
    plan = None
    if dp:
        plan = _plan(cfg, len(data.x_train), state)
        try:
            check_budget([*earlier, *history], plan, site.privacy.budget())
        except BudgetExceeded as exc:
            site.audit(
                "federation.round_refused",
                {
                    "run": run,
                    "round": round_no,
                    "reason": "privacy budget",
                    "epsilon_spent": round(exc.spent, 6),
                    "epsilon_after": round(exc.next_total, 6),
                    "epsilon_budget": exc.budget,
                },
            )
            return Message(error=Error(BUDGET_REFUSED, f"{site.name}: {exc}"), reply_to=msg)
    trained = train(
        from_record(msg.content["arrays"]),
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=batch,
        lr=float(cfg.get("lr", 0.5)),
        plan=plan,
        history=history,
        seed=int(cfg.get("seed", 0)) * 1000 + round_no
        if site.repeatable_noise or plan is None
        else secrets.randbits(31),
    )
    run_epsilon = epsilon_of(trained.history, delta) if dp else -1.0
    epsilon = (epsilon_of([*earlier, *trained.history], delta) if earlier else run_epsilon) if dp else -1.0
    members = data.manifest()
    if plan is not None:
        site.privacy.record_round(
            run, round_no, RunPrivacy(plan.noise_multiplier, tuple(trained.history)), epsilon, delta, members
        )
    site.audit(
        "federation.round_trained",
        {
            "run": run,
            "round": round_no,
            "dp": dp,
            "epsilon": round(epsilon, 6) if dp else None,
            "delta": delta,
            **members.to_json(),
        },
    )
    metrics = MetricRecord(
        {
            "num-examples": trained.examples,
            "loss": float(trained.loss),
            "steps": trained.steps,
            "epsilon": epsilon,  # -1: trained without DP
            "epsilon-run": run_epsilon,
            "epsilon-budget": site.privacy.budget(),
        }
    )
    return Message(RecordDict({"arrays": to_record(trained.weights), "metrics": metrics}), reply_to=msg)


def _plan(cfg: Mapping[str, object], rows: int, state: RunPrivacy | None) -> PrivacyPlan:
    """The run's DP plan; after round one the noise stored then is kept and only the sample rate follows the rows."""
    return PrivacyPlan.for_run(
        float(cfg["epsilon"]),
        float(cfg.get("delta", 1e-5)),
        rows,
        int(cfg.get("batch-size", 256)),
        int(cfg.get("epochs", 1)),
        int(cfg["rounds"]),
        max_grad_norm=float(cfg.get("clip", 1.0)),  # a server that predates the setting clipped at 1
        noise_multiplier=state.noise_multiplier if state else None,
    )


def _evaluate(site: Site, msg: Message) -> Message:
    cfg = msg.content["config"]
    run, round_no = str(cfg.get("run", "")), int(cfg["server-round"])
    try:
        site.gate()
    except RoundRefused as exc:
        return Message(error=Error(GATE_CLOSED, f"{site.name}: {exc}"), reply_to=msg)
    data = site.data()  # read once: held-out rows judge, validation rows (a simulation's) decide when to stop
    x, y, x_val, y_val = data.x_test, data.y_test, data.x_val, data.y_val
    global_weights = from_record(msg.content["arrays"])
    site.shelf.store(run, round_no, global_weights)
    values: dict[str, float | int] = {"num-examples": len(y), "auc": _auc(global_weights, x, y)}
    if len(y_val):  # only the mean loss leaves the brand, for the server's stopping rule
        values["val-loss"], values["val-examples"] = log_loss(global_weights, x_val, y_val), len(y_val)
    for key, record in msg.content.array_records.items():
        if key.startswith(WITHOUT):
            values[f"auc-{key}"] = _auc(from_record(record), x, y)
    return Message(RecordDict({"metrics": MetricRecord(values)}), reply_to=msg)


def _auc(weights: Weights, x: Sequence[Sequence[float]], y: Sequence[int]) -> float:
    rows, labels = list(x), list(y)
    if not rows or len(set(labels)) < 2:
        return float("nan")
    return auc(labels, predict(weights, rows))
