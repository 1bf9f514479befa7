"""The label holder's side of a vertical run: its top model, and the run over every partner's ClientApp.

Per round and partner, two messages (few and large: on the Deployment Engine each message starts a
process), the second sent only once the first is answered:

- ``train.apply``: the aligned training members' ids and the label holder's log-loss gradients
  (from its labels, released once by randomized response); the partner trains its bottom model on
  them with DP-SGD (:mod:`federation.vertical_client`);
- ``query.embed``: every aligned member's id (training and held out); the partner answers their
  scores, released by randomized response.

Members travel as per-run alignment ids (:mod:`federation.psi`), never as identifiers. The split
into training, validation and held-out members is keyed by a secret of the label holder's, since
a split stratified by label that a partner could recompute would tell it labels. The served top
model uses the partners' scores only if they lower the loss on the label holder's own validation
rows. What is released and what it costs: :mod:`federation.vertical`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from flwr.serverapp import Grid

from federation.manifest import manifest
from federation.metrics import auc
from federation.privacy import BudgetExceeded, Step, epsilon_of
from federation.site import Audit, PrivacyBook, RunPrivacy, Weights, _no_audit
from federation.stopping import MIN_DELTA, fit
from federation.training import initial_weights, log_loss, predict
from federation.vertical import LabelPlan, log_odds_gradient


@dataclass(frozen=True)
class VerticalSettings:
    """One vertical run as the label holder configures it: its own privacy (epsilon, delta, DP on) and
    the run's terms, which partners receive (each partner applies its own privacy settings)."""

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
        """What a partner needs to know of the run: its terms. Never privacy settings: each partner
        keeps its own (DP on or off, delta, epsilon per run, the most rounds)."""
        return ConfigRecord(
            {
                "run": self.run,
                "round": round_no,
                "rounds": self.rounds,
                "epochs": self.epochs,
                "batch-size": self.batch_size,
                "lr": self.lr,
                "clip": self.clip,
                "seed": self.seed,
            }
        )


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
    #: orders members into the split; secret, or partners could recompute a split stratified by label
    split_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def ids_for(self, partner: str, members: Sequence[str]) -> list[str]:
        """``members`` as ``partner`` knows them."""
        alias = self.aliases.get(partner)
        return list(members) if alias is None else [alias[m] for m in members]

    def split(self) -> tuple[list[str], list[str], list[str]]:
        """Training, validation and held-out ids, stratified, fixed by the label holder's secret key."""
        parts: tuple[list[str], list[str], list[str]] = ([], [], [])
        for label in (0, 1):
            ids = sorted((i for i, v in self.y.items() if v == label), key=lambda i: _rank(self.split_key, i))
            cut_test = round(len(ids) * self.test_fraction)
            rest = ids[cut_test:]
            cut_val = round(len(rest) * self.val_fraction)
            parts[2].extend(ids[:cut_test])
            parts[1].extend(rest[:cut_val])
            parts[0].extend(rest[cut_val:])
        return tuple(sorted(p) for p in parts)  # type: ignore[return-value]


def _rank(key: str, member: str) -> str:
    return hashlib.sha256(f"{key}:{member}".encode()).hexdigest()


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
    #: the partners whose scores the served top model uses (none: the partners' released scores did not
    #: lower the label holder's validation loss, so it serves its model alone)
    used: list[str] = field(default_factory=list)
    #: every aligned member's churn risk from the served top model, by the label holder's member key
    scores: dict[str, float] = field(default_factory=dict)


def run_vertical(
    grid: Grid,
    settings: VerticalSettings,
    label: LabelSite,
    on_round: Callable[[VerticalRound], None] | None = None,
) -> VerticalReport:
    """The label holder's run over every partner node of ``grid`` (its ServerApp's ``main`` calls this)."""
    train_ids, val_ids, test_ids = label.split()
    # one order for every message, not part by part: the parts' sizes would hint at the labels' balance
    fit_ids = sorted(train_ids + val_ids)
    everyone = sorted(fit_ids + test_ids)
    fitting = np.isin(np.asarray(everyone), np.asarray(fit_ids))
    nodes = list(grid.get_node_ids())
    names = _names(grid, nodes)
    y = label.y
    top = own = _fit_top(label, {}, train_ids, val_ids, settings)
    alone = _auc(top, label, {}, test_ids)
    released: dict[str, dict[str, float]] = {}  # partner -> id -> standardised score
    rounds: list[VerticalRound] = []
    rng = np.random.default_rng()
    labels = np.asarray([y[i] for i in fit_ids], dtype=np.float64)
    epsilon_label: float | None = None
    if settings.dp:
        # the labels cross once: each training member's label is one randomized response, and every
        # gradient of every round is computed from that release and from models fitted on it alone
        # (post-processing), so a run costs the label holder the same whatever its rounds
        plan = LabelPlan(settings.epsilon)
        epsilon_label = _record(label, settings.run, 1, 0.0, plan.step(), settings.delta, fit_ids)
        labels = plan.release(labels, rng)
        label.audit("vertical.labels", {"run": settings.run, "members": len(fit_ids), "epsilon": epsilon_label})
    for round_no in range(1, settings.rounds + 1):
        if settings.dp:
            p = _shadow(label, released, fit_ids, labels, settings)
        else:
            p = np.asarray(predict(top, [_row(label, released, i) for i in fit_ids]))
        gradients = log_odds_gradient(p, labels)  # type: ignore[arg-type]
        epsilon: dict[str, float] = {} if epsilon_label is None else {label.name: epsilon_label}
        refused: dict[str, str] = {}
        group = f"{settings.run}:{round_no}"
        ask = [
            grid.create_message(
                _content(settings, round_no, label.ids_for(names[n], fit_ids), gradients), "train.apply", n, group
            )
            for n in nodes
        ]
        digest = hashlib.sha256(np.asarray(gradients, dtype=np.float64).tobytes()).hexdigest()
        for n in nodes:  # the gradients leave about these members: the label holder's record of provision
            label.audit("vertical.gradients", {"run": settings.run, "round": round_no, "partner": names[n],
                                               "subjects": list(fit_ids), "digest": digest})
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
            mean, sd = values[fitting].mean(), values[fitting].std() + 1e-12  # post-processing: free
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
    # an improvement smaller than one member's share of the loss is within what a useless column buys by chance
    needed = max(MIN_DELTA, 1 / max(1, len(val_ids)))
    if released and _val_loss(top, label, released, val_ids) > _val_loss(own, label, {}, val_ids) - needed:
        # the label holder's own validation rows decide, as a brand's served blend does: released scores
        # that do not help it are not used (they never cost it accuracy beyond the choice's own noise)
        top, released, together = own, {}, alone
    members = {"training": len(train_ids), "validation": len(val_ids), "held_out": len(test_ids)}
    served = predict(top, [_row(label, released, i) for i in everyone])  # post-processing of the releases
    scores = {i: float(p) for i, p in zip(everyone, served, strict=True)}
    return VerticalReport(settings, members, alone, together, rounds, contributions, top, sorted(released), scores)


def _shadow(label: LabelSite, released: Mapping[str, Mapping[str, float]], ids: Sequence[str], noisy: np.ndarray,
            settings: VerticalSettings) -> np.ndarray:
    """Probabilities from a linear model fitted to the released labels (never to the labels themselves):
    the gradients computed from them are post-processing of the one label release."""
    x = np.asarray([_row(label, released, i) for i in ids], dtype=np.float64)
    design = np.column_stack([x, np.ones(len(x))])
    ridge = 1.0 * np.eye(design.shape[1])  # keeps the fit stable when a column carries nothing
    coef = np.linalg.solve(design.T @ design + ridge, design.T @ noisy)
    return np.clip(design @ coef, 0.01, 0.99)


def _record(label: LabelSite, run: str, round_no: int, noise: float, step: Step, delta: float,
            members: Sequence[str]) -> float:
    """Charge one release of the members' gradients to the label holder's book, refusing past its budget."""
    state = label.privacy.run(run)
    history = [*(state.history if state else ()), step]
    before = label.privacy.spent_before(run)
    spent = epsilon_of([*before, *(state.history if state else ())], delta)
    after = epsilon_of([*before, *history], delta)
    if after > label.privacy.budget() + 1e-9:
        raise BudgetExceeded(spent, after, label.privacy.budget())
    label.privacy.record_round(run, round_no, RunPrivacy(noise, tuple(history)), after, delta, manifest(members))
    return epsilon_of(history, delta)  # the run's: the book keeps the brand's cumulative one


def _val_loss(top: Weights, label: LabelSite, released: Mapping[str, Mapping[str, float]], ids: Sequence[str]) -> float:
    return log_loss(top, [_row(label, released, i) for i in ids], [label.y[i] for i in ids])


def judge_top(label: LabelSite, settings: VerticalSettings) -> float:
    """The held-out AUC of a top model over the label holder's rows alone (pooling, in a simulation)."""
    train_ids, val_ids, test_ids = label.split()
    return _auc(_fit_top(label, {}, train_ids, val_ids, settings), label, {}, test_ids)


def _names(grid: Grid, nodes: Sequence[int]) -> dict[int, str]:
    """Each partner node's brand name; a name two nodes claim is refused (its scores would mix)."""
    replies = grid.send_and_receive([grid.create_message(RecordDict(), "query", n, "describe") for n in nodes])
    names = {n: str(n) for n in nodes}
    for reply in replies:
        if not reply.has_error():
            names[reply.metadata.src_node_id] = str(reply.content["brand"]["name"])
    if len(set(names.values())) != len(names):
        raise ValueError(f"two partner nodes claim the same brand name: {sorted(names.values())}")
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
