"""A vertical run on Flower's Message API: partners' ClientApp and the label holder's ServerApp body.

Per round and partner, two messages (few and large: on the Deployment Engine each message starts
a process), the second sent only once the first is answered:

- ``train.apply``: the aligned training members' ids and the label holder's noised log-loss
  gradients; the partner trains its bottom model on them with DP-SGD and keeps it;
- ``query.embed``: every aligned member's id (training and held-out); the partner answers their
  noised scores.

Members travel as per-run alignment ids (:mod:`federation.psi`), never as identifiers. Each side's
spend is recorded in its :class:`~federation.site.PrivacyBook` (the same records as horizontal runs)
before anything is released, and a release that would pass the brand's budget is refused. What is
released and why its noise is what it is: :mod:`federation.vertical`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

from federation.client_app import BUDGET_REFUSED, GATE_CLOSED, NO_MEMBERS
from federation.manifest import manifest
from federation.metrics import auc
from federation.privacy import BudgetExceeded, Step, epsilon_of
from federation.site import Audit, PrivacyBook, RoundRefused, RunPrivacy, Weights, _no_audit, _open_gate
from federation.stopping import MIN_DELTA, fit
from federation.training import initial_weights, log_loss, predict, train
from federation.vertical import LabelPlan, PartnerPlan, gaussian_release, log_odds_gradient, scores

#: Error code of a partner asked about members it does not hold for the run.
UNKNOWN_MEMBERS = 4042


@dataclass(frozen=True)
class VerticalSettings:
    """One vertical run, as the label holder configures it (partners take it from the messages)."""

    run: str
    rounds: int = 1
    epsilon: float = 3.0
    delta: float = 1e-5
    dp: bool = True
    #: the partners' bottom models: DP-SGD epochs per round, batch, learning rate and clipping norm
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.01
    clip: float = 1.0
    #: the label holder's top model: the stopping rule of :mod:`federation.stopping`
    top_epochs: int = 30
    patience: int = 3
    top_lr: float = 0.5
    seed: int = 0

    def config(self, round_no: int) -> ConfigRecord:
        """What a partner needs to know of the run."""
        return ConfigRecord(
            {
                "run": self.run,
                "round": round_no,
                "rounds": self.rounds,
                "epsilon": self.epsilon,
                "delta": self.delta,
                "dp": self.dp,
                "epochs": self.epochs,
                "batch-size": self.batch_size,
                "lr": self.lr,
                "clip": self.clip,
                "seed": self.seed,
            }
        )


class BottomShelf(dict[str, Weights]):
    """A partner's bottom model per run, kept between messages (a node keeps it in its database)."""


@dataclass
class PartnerSite:
    """A partner brand as its ClientApp sees it: its features of the run's aligned members."""

    name: str
    rows: Callable[[str], Mapping[str, Sequence[float]]]  # run -> alignment id -> feature row
    privacy: PrivacyBook
    bottoms: BottomShelf = field(default_factory=BottomShelf)
    audit: Audit = _no_audit
    gate: Callable[[], None] = _open_gate


@dataclass
class LabelSite:
    """The label holder: its own features and labels of the aligned members, and where each member
    goes (training, validation for the stopping rule, held out for judging)."""

    name: str
    x: Mapping[str, Sequence[float]]  # alignment id -> the label holder's feature row
    y: Mapping[str, int]
    privacy: PrivacyBook
    #: partner -> the label holder's member key -> that partner's alignment id (each pair ran its own
    #: PSI, with its own salt); a partner missing here shares the label holder's keys
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    test_fraction: float = 0.25
    val_fraction: float = 0.2
    audit: Audit = _no_audit

    def ids_for(self, partner: str, members: Sequence[str]) -> list[str]:
        """``members`` as ``partner`` knows them."""
        alias = self.aliases.get(partner)
        return list(members) if alias is None else [alias[m] for m in members]

    def split(self, seed: int) -> tuple[list[str], list[str], list[str]]:
        """Training, validation and held-out ids, stratified, fixed by the seed and the ids alone."""
        parts: tuple[list[str], list[str], list[str]] = ([], [], [])
        for label in (0, 1):
            ids = sorted((i for i, v in self.y.items() if v == label), key=lambda i: _rank(seed, i))
            cut_test = round(len(ids) * self.test_fraction)
            rest = ids[cut_test:]
            cut_val = round(len(rest) * self.val_fraction)
            parts[2].extend(ids[:cut_test])
            parts[1].extend(rest[:cut_val])
            parts[0].extend(rest[cut_val:])
        return tuple(sorted(p) for p in parts)  # type: ignore[return-value]


def _rank(seed: int, member: str) -> str:
    return hashlib.sha256(f"{seed}:{member}".encode()).hexdigest()


# --- the partner's ClientApp -----------------------------------------------------------------


def make_partner_app(site_of: Callable[[Context], PartnerSite]) -> ClientApp:
    """The partner's ClientApp: ``train.apply`` and ``query.embed`` (and ``query`` for its name)."""
    app = ClientApp()

    @app.query()
    def describe(msg: Message, context: Context) -> Message:
        site = site_of(context)
        return Message(RecordDict({"brand": ConfigRecord({"name": site.name})}), reply_to=msg)

    @app.train("apply")
    def apply(msg: Message, context: Context) -> Message:
        return _apply(site_of(context), msg)

    @app.query("embed")
    def embed(msg: Message, context: Context) -> Message:
        return _embed(site_of(context), msg)

    return app


def _partner_plan(site: PartnerSite, cfg: ConfigRecord, rows: int) -> PartnerPlan | None:
    if not bool(cfg["dp"]):
        return None
    run = str(cfg["run"])
    state = site.privacy.run(run)
    plan = PartnerPlan.for_run(
        float(cfg["epsilon"]),
        float(cfg["delta"]),
        rows,
        int(cfg["rounds"]),
        int(cfg["batch-size"]),
        int(cfg["epochs"]),
        float(cfg["clip"]),
    )
    if state is not None and state.noise_multiplier != plan.noise:
        # the release noise is fixed at the run's first round; later rounds keep it
        plan = PartnerPlan(plan.epsilon, plan.delta, plan.rounds, plan.sgd, state.noise_multiplier, plan.clip)
    return plan


def _record(site: PartnerSite | LabelSite, run: str, round_no: int, noise: float, steps: Sequence[Step],
            delta: float, budget_check: bool, members: Sequence[str]) -> float:
    """Add ``steps`` to the run's history, refusing (before anything is released) past the budget."""
    state = site.privacy.run(run)
    history = [*(state.history if state else ()), *steps]
    before = site.privacy.spent_before(run)
    spent = epsilon_of([*before, *(state.history if state else ())], delta)
    after = epsilon_of([*before, *history], delta)
    if budget_check and after > site.privacy.budget() + 1e-9:
        raise BudgetExceeded(spent, after, site.privacy.budget())
    site.privacy.record_round(run, round_no, RunPrivacy(noise, tuple(history)), after, delta, manifest(members))
    return after


def _apply(site: PartnerSite, msg: Message) -> Message:
    cfg = msg.content["config"]
    run, round_no = str(cfg["run"]), int(cfg["round"])
    try:
        site.gate()
    except RoundRefused as exc:
        return Message(error=Error(GATE_CLOSED, f"{site.name}: {exc}"), reply_to=msg)
    ids = [str(i) for i in msg.content["members"]["ids"]]  # type: ignore[union-attr]
    known = site.rows(run)
    missing = [i for i in ids if i not in known]
    if missing:
        return Message(error=Error(UNKNOWN_MEMBERS, f"{site.name}: {len(missing)} members not aligned in {run}"),
                       reply_to=msg)
    if not ids:
        return Message(error=Error(NO_MEMBERS, f"{site.name}: no members to train on"), reply_to=msg)
    gradients = msg.content["gradients"]["g"].numpy().astype(np.float64)  # type: ignore[union-attr]
    plan = _partner_plan(site, cfg, len(ids))
    x = [list(known[i]) for i in ids]
    start = site.bottoms.get(run) or initial_weights(len(x[0]), int(cfg["seed"]))
    state = site.privacy.run(run)
    history = list(state.history) if state else []
    try:
        if plan is not None:  # refuse before training if this round's training and release would pass the budget
            full = [*site.privacy.spent_before(run), *history, *plan.round_steps()]
            if epsilon_of(full, plan.delta) > site.privacy.budget() + 1e-9:
                spent = epsilon_of([*site.privacy.spent_before(run), *history], plan.delta)
                raise BudgetExceeded(spent, epsilon_of(full, plan.delta), site.privacy.budget())
        trained = train(
            start,
            x,
            (-gradients).tolist(),  # the bottom model raises the log-odds where the label holder's loss falls
            epochs=int(cfg["epochs"]),
            batch_size=int(cfg["batch-size"]),
            lr=float(cfg["lr"]),
            plan=plan.sgd if plan else None,
            history=history,
            seed=int(cfg["seed"]) * 1000 + round_no,
            regression=True,
        )
        site.bottoms[run] = trained.weights
        epsilon = 0.0
        if plan is not None:
            new = trained.history[len(history) :]
            epsilon = _record(site, run, round_no, plan.noise, new, plan.delta, True, ids)
    except BudgetExceeded as exc:
        site.audit("vertical.refused", {"run": run, "round": round_no, "reason": str(exc)})
        return Message(error=Error(BUDGET_REFUSED, f"{site.name}: {exc}"), reply_to=msg)
    site.audit("vertical.train", {"run": run, "round": round_no, "members": len(ids), "epsilon": epsilon})
    return Message(
        RecordDict({"metrics": MetricRecord({"num-examples": len(ids), "epsilon": epsilon, "steps": trained.steps})}),
        reply_to=msg,
    )


def _embed(site: PartnerSite, msg: Message) -> Message:
    cfg = msg.content["config"]
    run, round_no = str(cfg["run"]), int(cfg["round"])
    try:
        site.gate()
    except RoundRefused as exc:
        return Message(error=Error(GATE_CLOSED, f"{site.name}: {exc}"), reply_to=msg)
    ids = [str(i) for i in msg.content["members"]["ids"]]  # type: ignore[union-attr]
    known = site.rows(run)
    bottom = site.bottoms.get(run)
    if bottom is None or any(i not in known for i in ids):
        return Message(error=Error(UNKNOWN_MEMBERS, f"{site.name}: no bottom model or unknown members in {run}"),
                       reply_to=msg)
    plan = _partner_plan(site, cfg, max(1, len(ids)))
    raw = scores(bottom, np.asarray([known[i] for i in ids], dtype=np.float64))
    epsilon = 0.0
    if plan is not None:
        try:
            epsilon = _record(site, run, round_no, plan.noise, [(plan.noise, 1.0, 1)], plan.delta, True, ids)
        except BudgetExceeded as exc:
            site.audit("vertical.refused", {"run": run, "round": round_no, "reason": str(exc)})
            return Message(error=Error(BUDGET_REFUSED, f"{site.name}: {exc}"), reply_to=msg)
    rng = np.random.default_rng()  # fresh OS entropy: the noise must not be reproducible by anyone
    released = gaussian_release(raw, plan.clip if plan else np.inf, plan.noise if plan else 0.0, rng)
    site.audit("vertical.embed", {"run": run, "round": round_no, "members": len(ids), "epsilon": epsilon})
    return Message(
        RecordDict(
            {
                "embedding": ArrayRecord({"scores": Array(released.astype(np.float32))}),
                "metrics": MetricRecord({"num-examples": len(ids), "epsilon": epsilon}),
            }
        ),
        reply_to=msg,
    )


# --- the label holder's side (the ServerApp's body) -----------------------------------------------


@dataclass
class VerticalRound:
    """One round as the label holder saw it."""

    round: int
    auc: float
    epsilon: dict[str, float]  # brand -> cumulative epsilon of the run so far
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class VerticalReport:
    """A vertical run: the rounds, the label holder alone and with the partners, each partner's
    contribution (held-out AUC lost without its scores), and the final top model."""

    settings: VerticalSettings
    members: dict[str, int]  # training, validation, held-out
    auc_alone: float
    auc_vertical: float
    rounds: list[VerticalRound]
    contributions: dict[str, float]
    top: Weights | None = None
    #: the partners whose scores the served top model uses (none: the partners' noised scores did not
    #: lower the label holder's validation loss, so it serves its model alone)
    used: list[str] = field(default_factory=list)


def run_vertical(
    grid: Grid,
    settings: VerticalSettings,
    label: LabelSite,
    on_round: Callable[[VerticalRound], None] | None = None,
) -> VerticalReport:
    """The label holder's run over every partner node of ``grid`` (its ServerApp's ``main`` calls this)."""
    train_ids, val_ids, test_ids = label.split(settings.seed)
    fit_ids = train_ids + val_ids
    everyone = fit_ids + test_ids
    nodes = list(grid.get_node_ids())
    names = _names(grid, nodes)
    y = label.y
    top = own = _fit_top(label, {}, train_ids, val_ids, settings)
    alone = _auc(top, label, {}, test_ids)
    # each run is calibrated for its own epsilon; the budget check counts every earlier run
    plan = LabelPlan.for_run(settings.epsilon, settings.delta, settings.rounds) if settings.dp else None
    released: dict[str, dict[str, float]] = {}  # partner -> id -> standardised score
    rounds: list[VerticalRound] = []
    rng = np.random.default_rng()
    for round_no in range(1, settings.rounds + 1):
        p = predict(top, [_row(label, released, i) for i in fit_ids])
        g = log_odds_gradient(p, [y[i] for i in fit_ids])
        epsilon: dict[str, float] = {}
        if plan is not None:
            epsilon[label.name] = _record(label, settings.run, round_no, plan.noise, [plan.round_step()],
                                          settings.delta, True, fit_ids)
        noisy = gaussian_release(g[:, None], plan.clip if plan else np.inf, plan.noise if plan else 0.0, rng)[:, 0]
        label.audit("vertical.gradients", {"run": settings.run, "round": round_no, "members": len(fit_ids),
                                           "epsilon": epsilon.get(label.name, 0.0)})
        refused: dict[str, str] = {}
        group = f"{settings.run}:{round_no}"
        ask = [
            grid.create_message(
                _content(settings, round_no, label.ids_for(names[n], fit_ids), noisy), "train.apply", n, group
            )
            for n in nodes
        ]
        trained = []
        for reply in grid.send_and_receive(ask):  # every update lands before the next query
            node = names[reply.metadata.src_node_id]
            if reply.has_error():
                refused[node] = reply.error.reason
            else:
                trained.append(reply.metadata.src_node_id)
        query = [
            grid.create_message(
                _content(settings, round_no, label.ids_for(names[n], everyone), None), "query.embed", n, group
            )
            for n in trained
        ]
        for reply in grid.send_and_receive(query):
            node = names[reply.metadata.src_node_id]
            if reply.has_error():
                refused[node] = reply.error.reason
                continue
            values = reply.content["embedding"]["scores"].numpy()[:, 0].astype(np.float64)
            fit_mask = np.arange(len(fit_ids))
            mean, sd = values[fit_mask].mean(), values[fit_mask].std() + 1e-12  # post-processing: free
            released[node] = {i: float((v - mean) / sd) for i, v in zip(everyone, values, strict=True)}
            epsilon[node] = float(reply.content["metrics"]["epsilon"])
        top = _fit_top(label, released, train_ids, val_ids, settings)
        report = VerticalRound(round_no, _auc(top, label, released, test_ids), epsilon, refused)
        rounds.append(report)
        if on_round is not None:
            on_round(report)
    together = _auc(top, label, released, test_ids)
    contributions = {}
    for partner in released:
        others = {k: v for k, v in released.items() if k != partner}
        contributions[partner] = together - _auc(_fit_top(label, others, train_ids, val_ids, settings), label, others,
                                                 test_ids)
    if released and _val_loss(top, label, released, val_ids) > _val_loss(own, label, {}, val_ids) - MIN_DELTA:
        # the label holder's own validation rows decide, as a brand's served blend does: noised scores
        # that do not help it are not used (they never cost it accuracy beyond the choice's own noise)
        top, released, together = own, {}, alone
    members = {"training": len(train_ids), "validation": len(val_ids), "held_out": len(test_ids)}
    return VerticalReport(settings, members, alone, together, rounds, contributions, top, sorted(released))


def _val_loss(top: Weights, label: LabelSite, released: Mapping[str, Mapping[str, float]], ids: Sequence[str]) -> float:
    return log_loss(top, [_row(label, released, i) for i in ids], [label.y[i] for i in ids])


def _names(grid: Grid, nodes: Sequence[int]) -> dict[int, str]:
    replies = grid.send_and_receive([grid.create_message(RecordDict(), "query", n, "describe") for n in nodes])
    names = {n: str(n) for n in nodes}
    for reply in replies:
        if not reply.has_error():
            names[reply.metadata.src_node_id] = str(reply.content["brand"]["name"])
    return names


def _content(settings: VerticalSettings, round_no: int, ids: Sequence[str], gradients: np.ndarray | None) -> RecordDict:
    content = RecordDict({"config": settings.config(round_no), "members": ConfigRecord({"ids": list(ids)})})
    if gradients is not None:
        content["gradients"] = ArrayRecord({"g": Array(gradients.astype(np.float32))})
    return content


def _row(label: LabelSite, released: Mapping[str, Mapping[str, float]], member: str) -> list[float]:
    return [*label.x[member], *(released[p][member] for p in sorted(released))]


def _fit_top(label: LabelSite, released: Mapping[str, Mapping[str, float]], train_ids: Sequence[str],
             val_ids: Sequence[str], settings: VerticalSettings) -> Weights:
    x = [_row(label, released, i) for i in train_ids]
    xv = [_row(label, released, i) for i in val_ids]
    return fit(initial_weights(len(x[0]), settings.seed), x, [label.y[i] for i in train_ids], xv,
               [label.y[i] for i in val_ids], max_epochs=settings.top_epochs, patience=settings.patience,
               batch_size=settings.batch_size, lr=settings.top_lr, seed=settings.seed).weights


def _auc(top: Weights, label: LabelSite, released: Mapping[str, Mapping[str, float]], ids: Sequence[str]) -> float:
    labels = [label.y[i] for i in ids]
    if len(set(labels)) < 2:
        return float("nan")
    return auc(labels, predict(top, [_row(label, released, i) for i in ids]))
