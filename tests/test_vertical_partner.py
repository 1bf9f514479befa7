"""A partner's ClientApp against a label holder that asks for more than it should: the partner keeps its
own privacy terms and refuses, with a reason, before anything is trained or released."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from federation.client_app import BUDGET_REFUSED
from federation.inprocess import InProcessGrid
from federation.privacy import epsilon_of
from federation.site import MemoryPrivacyBook
from federation.vertical_client import BAD_REQUEST, PartnerSite, make_partner_app

IDS = [f"a{i:04d}" for i in range(300)]
TERMS = {"rounds": 2, "epochs": 1, "batch-size": 64, "lr": 0.05, "clip": 1.0, "seed": 0}


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


def partner(epsilon: float = 3.0, budget: float = 10.0) -> tuple[PartnerSite, InProcessGrid]:
    rng = random.Random(1)
    rows = {i: [rng.gauss(0, 1), rng.gauss(0, 1)] for i in IDS}
    site = PartnerSite("bank", lambda _run: rows, MemoryPrivacyBook(budget), epsilon=epsilon)
    return site, InProcessGrid(make_partner_app(lambda _ctx: site), [{"brand": "bank"}])


def send(grid: InProcessGrid, kind: str, round_no: int, ids: list[str], **terms: float) -> Message:
    cfg = ConfigRecord({"run": "r1", "round": round_no, **TERMS, **terms})
    content = RecordDict({"config": cfg, "members": ConfigRecord({"ids": ids})})
    if kind == "train.apply":
        content["gradients"] = ArrayRecord({"g": Array(np.full(len(ids), 0.3, dtype=np.float32))})
    (node,) = grid.get_node_ids()
    (reply,) = grid.send_and_receive([grid.create_message(content, kind, node, "g")])
    return reply


def test_an_honest_round_trains_then_releases_once() -> None:
    _, grid = partner()
    assert not send(grid, "train.apply", 1, IDS).has_error()
    reply = send(grid, "query.embed", 1, IDS)
    assert not reply.has_error()
    assert reply.content["embedding"]["scores"].numpy().shape == (len(IDS), 1)


def test_a_member_named_twice_is_refused_and_nothing_is_recorded() -> None:
    site, grid = partner()
    reply = send(grid, "train.apply", 1, [*IDS, IDS[0]])
    assert reply.error.code == BAD_REQUEST
    assert "more than once" in reply.error.reason
    assert site.privacy.rounds == []


def test_scores_are_released_once_per_round() -> None:
    site, grid = partner()
    send(grid, "train.apply", 1, IDS)
    assert not send(grid, "query.embed", 1, IDS).has_error()
    again = send(grid, "query.embed", 1, IDS)
    assert again.error.code == BAD_REQUEST
    assert len(site.privacy.rounds) == 2


def test_a_round_is_trained_once_and_in_order() -> None:
    _, grid = partner()
    assert send(grid, "train.apply", 2, IDS).error.code == BAD_REQUEST  # round 1 first
    assert not send(grid, "train.apply", 1, IDS).has_error()
    assert "not the next one" in send(grid, "train.apply", 1, IDS).error.reason


def test_no_round_beyond_what_the_first_message_announced() -> None:
    _, grid = partner()
    for r in (1, 2):
        send(grid, "train.apply", r, IDS)
        send(grid, "query.embed", r, IDS)
    assert send(grid, "train.apply", 3, IDS).error.code == BAD_REQUEST


def test_the_terms_of_a_run_cannot_change_after_its_first_message() -> None:
    _, grid = partner()
    send(grid, "train.apply", 1, IDS)
    reply = send(grid, "query.embed", 1, IDS, epochs=50)
    assert "cannot change" in reply.error.reason


def test_the_partner_allows_no_more_rounds_than_its_own_limit() -> None:
    _, grid = partner()
    assert "1 to 5 rounds" in send(grid, "train.apply", 1, IDS, rounds=400).error.reason


def test_a_run_spends_no_more_than_the_partners_own_epsilon_per_run() -> None:
    site, grid = partner(epsilon=3.0, budget=100.0)
    for r in (1, 2):
        send(grid, "train.apply", r, IDS)
        send(grid, "query.embed", r, IDS)
    state = site.privacy.run("r1")
    assert state is not None
    assert epsilon_of(state.history, site.delta) == pytest.approx(3.0, abs=0.01)


def test_the_budget_across_runs_is_enforced_before_training() -> None:
    site, grid = partner(epsilon=3.0, budget=1.0)  # a round (training, then its release) costs about 1.5
    reply = send(grid, "train.apply", 1, IDS)
    assert reply.error.code == BUDGET_REFUSED
    assert site.runs["r1"].bottom is None
    assert site.privacy.rounds == []


def test_the_seed_the_label_holder_sends_does_not_make_the_dp_noise_repeatable() -> None:
    first, grid_a = partner()
    second, grid_b = partner()
    send(grid_a, "train.apply", 1, IDS)
    send(grid_b, "train.apply", 1, IDS)
    a, b = first.runs["r1"].bottom, second.runs["r1"].bottom
    assert a is not None
    assert b is not None
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_a_message_without_its_records_is_a_clear_refusal() -> None:
    _, grid = partner()
    (node,) = grid.get_node_ids()
    content = RecordDict({"config": ConfigRecord({"run": "r1", "round": 1})})
    (reply,) = grid.send_and_receive([grid.create_message(content, "train.apply", node, "g")])
    assert reply.error.code == BAD_REQUEST
    assert "malformed" in reply.error.reason


def test_gradients_must_be_one_finite_value_per_member() -> None:
    _, grid = partner()
    (node,) = grid.get_node_ids()
    cfg = ConfigRecord({"run": "r1", "round": 1, **TERMS})
    bad = np.array([np.nan] * len(IDS), dtype=np.float32)
    content = RecordDict({"config": cfg, "members": ConfigRecord({"ids": IDS}),
                          "gradients": ArrayRecord({"g": Array(bad)})})
    (reply,) = grid.send_and_receive([grid.create_message(content, "train.apply", node, "g")])
    assert "finite gradient" in reply.error.reason


def test_a_run_continues_when_every_message_is_a_fresh_process() -> None:
    # the Deployment Engine starts a process per message: the run's record must come back from context.state
    site, grid = partner()
    assert not send(grid, "train.apply", 1, IDS).has_error()
    site.runs.clear()  # what a new process knows of the run
    reply = send(grid, "query.embed", 1, IDS)
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    site.runs.clear()
    assert send(grid, "query.embed", 1, IDS).error.code == BAD_REQUEST  # released once, even across processes
    site.runs.clear()
    assert "not the next one" in send(grid, "train.apply", 1, IDS).error.reason
