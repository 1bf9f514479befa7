"""A partner brand's side of a vertical run: its ClientApp, which answers ``train.apply`` and ``query.embed``.

The label holder asks; the partner decides what it costs. Everything that bears on the partner's
privacy is the partner's own setting, never the message's: whether DP is on, delta, the epsilon a
run may spend, the most rounds a run may have. A run's terms (rounds, epochs, batch, learning rate,
clipping) are fixed by its first message and its DP plan with them; a later message that
changes them, skips or repeats a round, repeats a member or names one the partner does not hold is
refused with a reason, before anything is trained or released. DP-SGD's sampling and noise come from
the operating system's entropy, so the label holder cannot predict them from the seed it sends
(the seed only sets the bottom model's starting weights).

What is released and what it costs: :mod:`federation.vertical`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federation.client_app import BUDGET_REFUSED, GATE_CLOSED, NO_MEMBERS
from federation.manifest import manifest
from federation.privacy import BudgetExceeded, Step, epsilon_of
from federation.site import Audit, PrivacyBook, RoundRefused, RunPrivacy, Weights, _no_audit, _open_gate
from federation.training import initial_weights, train
from federation.vertical import PartnerPlan, scores

#: Error codes of refused messages (beside the horizontal apps' budget, gate and no-member codes).
UNKNOWN_MEMBERS = 4042
BAD_REQUEST = 4001
#: The terms a run's first message fixes.
TERMS = ("rounds", "epochs", "batch-size", "lr", "clip")


class Refusal(Exception):
    """A message the partner will not act on; ``code`` goes into the error reply."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class PartnerRun:
    """What the partner keeps of one run between messages (a node keeps it in its database)."""

    terms: dict[str, float]
    plan: PartnerPlan | None
    trained: int = 0  # the last round trained
    embedded: int = 0  # the last round whose scores were released
    bottom: Weights | None = None
    rows: int = 0  # the members of the first message: the plan's sample size


@dataclass
class PartnerSite:
    """A partner brand as its ClientApp sees it: its features of the run's aligned members and its own
    privacy settings."""

    name: str
    rows: Callable[[str], Mapping[str, Sequence[float]]]  # run -> alignment id -> feature row
    privacy: PrivacyBook
    epsilon: float = 3.0  # the most one run may spend (the book's budget caps all runs together)
    delta: float = 1e-5
    dp: bool = True  # False only in simulations that show what DP costs
    max_rounds: int = 5
    runs: dict[str, PartnerRun] = field(default_factory=dict)
    audit: Audit = _no_audit
    gate: Callable[[], None] = _open_gate


def make_partner_app(site_of: Callable[[Context], PartnerSite]) -> ClientApp:
    """The partner's ClientApp: ``train.apply`` and ``query.embed`` (and ``query`` for its name)."""
    app = ClientApp()

    @app.query()
    def describe(msg: Message, context: Context) -> Message:
        site = site_of(context)
        return Message(RecordDict({"brand": ConfigRecord({"name": site.name})}), reply_to=msg)

    @app.train("apply")
    def apply(msg: Message, context: Context) -> Message:
        return _answer(site_of(context), msg, _apply, context)

    @app.query("embed")
    def embed(msg: Message, context: Context) -> Message:
        return _answer(site_of(context), msg, _embed, context)

    return app


def _answer(
    site: PartnerSite, msg: Message, handle: Callable[[PartnerSite, Message], RecordDict], context: Context
) -> Message:
    """Run ``handle``; a refusal, a closed gate, a spent budget or a malformed message is an error reply.

    The run's record travels in ``context.state`` too: on the Deployment Engine every message is a
    fresh process, and the SuperNode keeps the state between a run's messages.
    """
    try:
        site.gate()
        run = str(msg.content["config"]["run"])
        _restore(site, context, run)
        reply = Message(handle(site, msg), reply_to=msg)
        _save(site, context, run)
        return reply
    except RoundRefused as exc:
        return Message(error=Error(GATE_CLOSED, f"{site.name}: {exc}"), reply_to=msg)
    except BudgetExceeded as exc:
        site.audit("vertical.refused", {"reason": str(exc)})
        return Message(error=Error(BUDGET_REFUSED, f"{site.name}: {exc}"), reply_to=msg)
    except Refusal as exc:
        site.audit("vertical.refused", {"reason": str(exc)})
        return Message(error=Error(exc.code, f"{site.name}: {exc}"), reply_to=msg)
    except (KeyError, TypeError, ValueError) as exc:  # a message without the records and values it needs
        return Message(error=Error(BAD_REQUEST, f"{site.name}: malformed message ({exc!r})"), reply_to=msg)


def _state_key(run: str) -> str:
    return f"vertical-run:{hashlib.sha256(run.encode()).hexdigest()[:16]}"


def _save(site: PartnerSite, context: Context, run: str) -> None:
    """Keep the run's record (terms, rows, rounds trained and released, the bottom model) in the context."""
    state = site.runs.get(run)
    if state is None:
        return
    key = _state_key(run)
    context.state[f"{key}:record"] = ConfigRecord(
        {"run": run, "rows": state.rows, "trained": state.trained, "embedded": state.embedded,
         **{f"term:{k}": v for k, v in state.terms.items()}}
    )
    if state.bottom is not None:
        context.state[f"{key}:bottom"] = ArrayRecord({k: Array(np.asarray(v)) for k, v in state.bottom.items()})


def _restore(site: PartnerSite, context: Context, run: str) -> None:
    """The run's record from the context when this process has not seen the run (the plan is recomputed
    from the terms and the partner's own settings, as its first message fixed them)."""
    key = _state_key(run)
    if run in site.runs or f"{key}:record" not in context.state:
        return
    record = context.state[f"{key}:record"]
    terms = {k: float(record[f"term:{k}"]) for k in TERMS}  # type: ignore[arg-type]
    rows = int(record["rows"])  # type: ignore[arg-type]
    state = PartnerRun(terms, _plan(site, terms, rows), int(record["trained"]), int(record["embedded"]),  # type: ignore[arg-type]
                       rows=rows)
    if f"{key}:bottom" in context.state:
        state.bottom = {k: v.numpy() for k, v in context.state[f"{key}:bottom"].items()}  # type: ignore[union-attr]
    site.runs[run] = state


def _plan(site: PartnerSite, terms: Mapping[str, float], rows: int) -> PartnerPlan | None:
    if not site.dp:
        return None
    return PartnerPlan.for_run(site.epsilon, site.delta, rows, int(terms["rounds"]), int(terms["batch-size"]),
                               int(terms["epochs"]), terms["clip"])


def _members(site: PartnerSite, msg: Message, run: str) -> tuple[list[str], Mapping[str, Sequence[float]]]:
    ids = [str(i) for i in msg.content["members"]["ids"]]  # type: ignore[union-attr]
    if not ids:
        raise Refusal(NO_MEMBERS, "no members named")
    if len(set(ids)) != len(ids):  # a member named twice would be released twice under one accounting
        raise Refusal(BAD_REQUEST, "a member is named more than once")
    known = site.rows(run)
    missing = sum(1 for i in ids if i not in known)
    if missing:
        raise Refusal(UNKNOWN_MEMBERS, f"{missing} members not aligned in {run}")
    return ids, known


def _run(site: PartnerSite, cfg: ConfigRecord, rows: int) -> PartnerRun:
    """The run's record: made (terms and noise fixed) by its first message, then checked against."""
    run = str(cfg["run"])
    terms = {k: float(cfg[k]) for k in TERMS}  # type: ignore[arg-type]
    known = site.runs.get(run)
    if known is not None:
        if terms != known.terms:
            raise Refusal(BAD_REQUEST, f"the terms of {run} were fixed by its first message and cannot change")
        return known
    state = site.privacy.run(run)
    if state is not None and state.history:
        # a run this partner already spent on, yet unknown to this process and its context: a new Flower run
        # reusing the name would start the rounds again; a run's name is used once
        raise Refusal(BAD_REQUEST, f"{run} was already run here: a run's name is used once")
    rounds = int(terms["rounds"])
    if not 1 <= rounds <= site.max_rounds:
        raise Refusal(BAD_REQUEST, f"a run has 1 to {site.max_rounds} rounds here, not {rounds}")
    if min(terms["epochs"], terms["batch-size"], terms["lr"], terms["clip"]) <= 0:
        raise Refusal(BAD_REQUEST, "epochs, batch size, learning rate and clipping norm are positive")
    site.runs[run] = PartnerRun(terms, _plan(site, terms, rows), rows=rows)
    return site.runs[run]


def _charge(site: PartnerSite, run: str, round_no: int, plan: PartnerPlan, history: Sequence[Step],
            members: Sequence[str]) -> float:
    """Record ``history`` as the run's whole history (checked by :func:`_check` first); the run's
    epsilon so far (what the label holder is told; the book keeps the brand's cumulative one)."""
    after = epsilon_of([*site.privacy.spent_before(run), *history], site.delta)
    site.privacy.record_round(run, round_no, RunPrivacy(plan.sgd.noise_multiplier, tuple(history)), after, site.delta,
                              manifest(members))
    return epsilon_of(history, site.delta)


def _apply(site: PartnerSite, msg: Message) -> RecordDict:
    cfg = msg.content["config"]
    run, round_no = str(cfg["run"]), int(cfg["round"])  # type: ignore[arg-type]
    ids, known = _members(site, msg, run)
    state = _run(site, cfg, len(ids))
    if len(ids) != state.rows:  # the plan's sampling rate was fixed for that many members
        raise Refusal(BAD_REQUEST, f"every round of {run} trains on its first round's {state.rows} members")
    if round_no != state.trained + 1 or round_no > int(state.terms["rounds"]):
        raise Refusal(BAD_REQUEST, f"round {round_no} of {run} is not the next one (trained so far: {state.trained})")
    gradients = np.asarray(msg.content["gradients"]["g"].numpy(), dtype=np.float64).reshape(-1)  # type: ignore[union-attr]
    if len(gradients) != len(ids) or not np.isfinite(gradients).all():
        raise Refusal(BAD_REQUEST, "one finite gradient per member is expected")
    x = [list(known[i]) for i in ids]
    history = list(site.privacy.run(run).history) if site.privacy.run(run) else []  # type: ignore[union-attr]
    plan = state.plan
    if plan is not None:  # refuse before training if this round (training, then its release) would pass a limit
        _check(site, run, [*history, *plan.round_steps()])
    start = state.bottom or initial_weights(len(x[0]), int(cfg.get("seed", 0)))  # type: ignore[arg-type]
    trained = train(
        start,
        x,
        (-gradients).tolist(),  # the bottom model raises the log-odds where the label holder's loss falls
        epochs=int(state.terms["epochs"]),
        batch_size=int(state.terms["batch-size"]),
        lr=state.terms["lr"],
        plan=plan.sgd if plan else None,
        history=history,
        # with DP, sampling and noise the label holder cannot reproduce; without (a simulation), repeatable
        seed=secrets.randbits(31) if plan else int(cfg.get("seed", 0)) * 1000 + round_no,  # type: ignore[arg-type]
        regression=True,
    )
    state.bottom, state.trained = trained.weights, round_no
    epsilon = _charge(site, run, round_no, plan, trained.history, ids) if plan else 0.0
    site.audit("vertical.train", {"run": run, "round": round_no, "members": len(ids), "epsilon": epsilon})
    return RecordDict({"metrics": MetricRecord({"num-examples": len(ids), "epsilon": epsilon, "steps": trained.steps})})


def _embed(site: PartnerSite, msg: Message) -> RecordDict:
    cfg = msg.content["config"]
    run, round_no = str(cfg["run"]), int(cfg["round"])  # type: ignore[arg-type]
    ids, known = _members(site, msg, run)
    state = _run(site, cfg, len(ids))
    if state.bottom is None:
        raise Refusal(UNKNOWN_MEMBERS, f"no bottom model for {run}: train.apply comes first")
    if round_no != state.trained or state.embedded >= round_no:
        raise Refusal(BAD_REQUEST, f"the scores of round {round_no} of {run} cannot be released now "
                                   f"(trained: {state.trained}, released: {state.embedded})")
    raw = scores(state.bottom, np.asarray([known[i] for i in ids], dtype=np.float64))
    plan = state.plan
    epsilon = 0.0
    if plan is not None:
        history = [*site.privacy.run(run).history, plan.round_steps()[1]]  # type: ignore[union-attr]
        _check(site, run, history)
        epsilon = _charge(site, run, round_no, plan, history, ids)  # recorded before anything leaves
    state.embedded = round_no
    rng = np.random.default_rng()  # fresh OS entropy: the responses must not be reproducible by anyone
    released = (plan.release(raw, rng) if plan else np.asarray(raw, dtype=np.float64).reshape(-1)).reshape(-1, 1)
    site.audit("vertical.embed", {"run": run, "round": round_no, "members": len(ids), "epsilon": epsilon,
                                  "last": round_no == int(state.terms["rounds"]), "ids": list(ids),
                                  "digest": hashlib.sha256(released.astype(np.float32).tobytes()).hexdigest()})
    return RecordDict(
        {
            "embedding": ArrayRecord({"scores": Array(released.astype(np.float32))}),
            "metrics": MetricRecord({"num-examples": len(ids), "epsilon": epsilon}),
        }
    )


def _check(site: PartnerSite, run: str, history: Sequence[Step]) -> None:
    """:class:`BudgetExceeded` if ``history`` would pass the run's epsilon or the brand's budget."""
    before = site.privacy.spent_before(run)
    state = site.privacy.run(run)
    spent = epsilon_of([*before, *(state.history if state else ())], site.delta)
    after = epsilon_of([*before, *history], site.delta)
    run_epsilon = epsilon_of(history, site.delta)
    if run_epsilon > site.epsilon + 1e-6:
        raise Refusal(BUDGET_REFUSED, f"this would bring {run} to epsilon {run_epsilon:.3f}, over the "
                                      f"{site.epsilon:g} one run may spend here")
    if after > site.privacy.budget() + 1e-9:
        raise BudgetExceeded(spent, after, site.privacy.budget())
