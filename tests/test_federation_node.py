"""Federated rounds over real nodes: only consented adult members, every round audited, the budget
and the global models kept in each node's own database."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from exchange_fixtures import specs

from compliance.consent import ConsentAction
from compliance.service import ConsentChange
from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.server_app import FederationReport, RunSettings, run_federation
from node.demo.alliance import create_alliance, enable_exchange
from node.learning.rows import ChurnWindow
from node.learning.site import ConsentGatedLoader
from node.learning.store import NodeModelShelf, NodePrivacyBook
from node.runtime import Node
from node.wallet.bulk import import_earns

TODAY = datetime.now(UTC).date()
WINDOW = ChurnWindow(TODAY - timedelta(days=180), TODAY)
ADULT, CHILD = date(1990, 1, 1), date(TODAY.year - 10, 1, 1)
PURPOSE = "joint_modeling"


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


def onboard(node: Node, refs: list[str], seed: int) -> None:
    """Members with purchases before the cutoff; about half buy again after it (not churned)."""
    rng = random.Random(seed)
    node.consent.register_members([(r, ADULT, None) for r in refs])
    pseudonyms = node.keyring.pseudonyms(refs)
    rows = []
    for r in refs:
        loyal = rng.random() < 0.5
        days = [
            WINDOW.cutoff - timedelta(days=rng.randint(1, 300 if not loyal else 60)) for _ in range(rng.randint(1, 6))
        ]
        if loyal:
            days.append(WINDOW.cutoff + timedelta(days=rng.randint(1, 150)))
        for i, d in enumerate(days):
            rows.append((pseudonyms[r], rng.randint(20, 900), "purchase", d, d + timedelta(days=730), f"p:{r}:{i}"))
    import_earns(node.wallets, rows)


def grant(node: Node, refs: list[str], actor: str = "self") -> None:
    node.consent.change_many(
        [ConsentChange(r, (PURPOSE,), ConsentAction.GRANT, collection_method="test", actor=actor) for r in refs]
    )


@pytest.fixture
def nodes(tmp_path: Path):  # type: ignore[no-untyped-def]
    air, shop = specs()
    create_alliance(tmp_path, [air, shop])
    opened = {s.key: Node.open(tmp_path / s.key) for s in (air, shop)}
    for node, other in ((opened["airline"], shop), (opened["shop"], air)):
        enable_exchange(node, [other.node_id])  # publishes the brand's notice, joint_modeling included
    for i, (key, node) in enumerate(opened.items()):
        refs = [f"{key}-{n}" for n in range(160)]
        onboard(node, refs, seed=i)
        grant(node, refs[:120])  # 40 never consented
    yield opened
    for node in opened.values():
        node.dispose()


def federate(
    nodes: dict[str, Node], run: str = "run-1", rounds: int = 2, between: dict[int, object] | None = None
) -> tuple[FederationReport, dict[str, ConsentGatedLoader]]:
    sites, loaders = {}, {}
    for key, node in nodes.items():
        sites[key], loaders[key] = node.learning_site(WINDOW)
    app = make_client_app(lambda ctx: sites[str(ctx.node_config["brand"])])
    grid = InProcessGrid(app, [{"brand": k} for k in sites])

    def on_round(r):  # type: ignore[no-untyped-def]
        hook = (between or {}).get(r.round)
        if hook:
            hook()  # type: ignore[operator]

    settings = RunSettings(run=run, rounds=rounds, epsilon=3.0, batch_size=32)
    return run_federation(grid, settings, len(sites), on_round), loaders


def audit_events(node: Node, action: str) -> list[dict]:  # type: ignore[type-arg]
    log = node.store.log("audit")
    events = [json.loads(e.data) for e in log.entries()]
    return [e for e in events if e["action"] == action]


def test_only_consented_members_journals_are_read(nodes: dict[str, Node]) -> None:
    _, loaders = federate(nodes, rounds=1)
    node = nodes["airline"]
    consented = {node.consent.member_pseudonym(f"airline-{n}") for n in range(120)}
    assert loaders["airline"].reads
    assert all(read <= consented for read in loaders["airline"].reads)


def test_minors_and_erased_members_are_never_trained_on(nodes: dict[str, Node]) -> None:
    node = nodes["airline"]
    node.consent.register_members([("child-1", CHILD, "G-1")])
    grant(node, ["child-1"], actor="guardian:G-1")
    child = node.consent.member_pseudonym("child-1")
    erased = node.consent.member_pseudonym("airline-0")
    node.consent.store.delete_member("airline-0")
    node.consent.keyring.shred("airline-0")
    _, loaders = federate(nodes, rounds=1)
    assert loaders["airline"].reads
    assert all(child not in read and erased not in read for read in loaders["airline"].reads)


def test_a_member_who_withdraws_is_out_of_the_next_round(nodes: dict[str, Node]) -> None:
    node = nodes["shop"]
    leaver = "shop-3"
    pseudonym = node.consent.member_pseudonym(leaver)

    def withdraw() -> None:
        node.consent.change(leaver, [PURPOSE], ConsentAction.WITHDRAW)

    _, loaders = federate(nodes, rounds=2, between={1: withdraw})
    reads = loaders["shop"].reads
    first_train, second_train = reads[1], reads[-1]  # describe, train 1, evaluate 1, train 2, evaluate 2
    assert pseudonym in first_train
    assert pseudonym not in second_train
    counts = [r["members"] for r in NodePrivacyBook(node.store.engine).rounds()]
    assert counts[1] <= counts[0]


def test_each_round_is_audited_with_its_manifest_and_epsilon(nodes: dict[str, Node]) -> None:
    report, _ = federate(nodes, rounds=2)
    node = nodes["airline"]
    contributed = audit_events(node, "fl.round.contribute")
    spent = audit_events(node, "dp.budget_spend")
    assert [e["details"]["round"] for e in contributed] == [1, 2]
    assert all(e["purpose_code"] == PURPOSE and e["subject_count"] > 0 for e in contributed)
    assert all(len(e["details"]["members_sha256"]) == 64 for e in contributed)
    assert "subject_pseudo_ids" not in contributed[0] or not contributed[0]["subject_pseudo_ids"]
    reported = [b.epsilon for r in report.rounds for b in r.brands if b.brand == node.settings.node_id]
    assert [e["details"]["epsilon"] for e in spent] == pytest.approx(reported, abs=1e-5)
    assert spent[0]["details"]["delta"] == 1e-5


def test_the_budget_lives_in_the_nodes_database_and_refusal_is_audited(nodes: dict[str, Node]) -> None:
    shop = nodes["shop"]
    NodePrivacyBook(shop.store.engine).set_budget(0.2)
    report, _ = federate(nodes, rounds=1)
    refused = next(b for b in report.rounds[0].brands if b.brand == shop.settings.node_id)
    assert not refused.trained
    assert "over the budget of 0.200" in (refused.refused or "")
    denied = audit_events(shop, "dp.budget_spend")
    assert denied[-1]["outcome"] == "denied"
    assert denied[-1]["reason_code"] == "privacy_budget"
    assert NodePrivacyBook(shop.store.engine).rounds() == []


def test_spend_accumulates_across_runs_and_survives_a_restart(nodes: dict[str, Node], tmp_path: Path) -> None:
    federate(nodes, run="run-1", rounds=1)
    node = nodes["airline"]
    book = NodePrivacyBook(node.store.engine)  # a fresh reader: what a restarted node sees
    state = book.run("run-1")
    assert state is not None
    assert state.noise_multiplier > 0
    report, _ = federate(nodes, run="run-2", rounds=1)
    second = next(b for b in report.rounds[0].brands if b.brand == node.settings.node_id)
    first_eps = book.rounds()[0]["epsilon"]
    assert second.epsilon is not None
    assert second.epsilon > first_eps  # cumulative over both runs


def test_every_node_stores_each_rounds_global_model(nodes: dict[str, Node]) -> None:
    report, _ = federate(nodes, rounds=2)
    for node in nodes.values():
        shelf = NodeModelShelf(node.store.engine)
        assert [(v["run"], v["round"]) for v in shelf.versions()] == [("run-1", 1), ("run-1", 2)]
        latest = shelf.latest()
        assert latest is not None
        assert report.weights is not None
        assert all((latest[2][k] == report.weights[k].astype("float32")).all() for k in report.weights)


def test_after_a_run_each_node_serves_its_blend_of_the_joint_model_and_its_own(nodes: dict[str, Node]) -> None:
    from node.learning.run import federate_nodes

    result = federate_nodes(nodes, WINDOW, RunSettings(run="blend-1", rounds=2, epsilon=3.0, batch_size=32))
    for outcome, node in zip(result.brands, nodes.values(), strict=True):
        shelf = NodeModelShelf(node.store.engine)
        (served,) = shelf.served()
        assert (served["run"], served["round"]) == ("blend-1", 2)
        assert served["joint_share"] == outcome.joint_share
        assert 0.0 <= served["joint_share"] <= 1.0
        assert 0 < served["own_rows"] < outcome.train_rows  # a validation fifth chose the share
        assert outcome.auc_served is not None
        assert 0.0 <= outcome.auc_served <= 1.0
        scoring = shelf.scoring()
        assert scoring is not None
        assert scoring[0] == {"run": "blend-1", "round": 2, "joint_share": served["joint_share"]}


def test_after_a_run_each_node_keeps_its_own_outcome_for_the_dashboard(nodes: dict[str, Node]) -> None:
    from node.learning.run import federate_nodes
    from node.learning.store import RunOutcomes

    result = federate_nodes(nodes, WINDOW, RunSettings(run="kept-1", rounds=1, epsilon=3.0, batch_size=32))
    for outcome, node in zip(result.brands, nodes.values(), strict=True):
        (kept,) = RunOutcomes(node.store.engine).all()
        assert kept["run"] == "kept-1"
        assert kept["auc_alone"] == outcome.auc_alone
        assert kept["auc_together"] == outcome.auc_together
        assert kept["epsilon_spent"] == outcome.epsilon_spent
        assert kept["test_rows"] == outcome.test_rows


def test_a_newer_joint_model_is_served_as_received_until_the_brand_blends_it(nodes: dict[str, Node]) -> None:
    from node.learning.run import federate_nodes

    federate_nodes(nodes, WINDOW, RunSettings(run="blend-1", rounds=1, epsilon=3.0, batch_size=32))
    federate(nodes, run="run-2", rounds=1)  # the joint model alone, no blend made at the nodes
    for node in nodes.values():
        scoring = NodeModelShelf(node.store.engine).scoring()
        assert scoring is not None
        assert scoring[0] == {"run": "run-2", "round": 1, "joint_share": 1.0}


def test_the_budget_command_sets_shows_and_audits_the_budget(nodes: dict[str, Node]) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app

    node = nodes["airline"]
    data_dir = str(node.settings.data_dir)
    r = CliRunner().invoke(app, ["federate", "budget", "--data-dir", data_dir, "--epsilon", "4.5"])
    assert r.exit_code == 0, r.output
    assert "epsilon 4.5; spent 0.000; remaining 4.500" in r.output
    assert NodePrivacyBook(node.store.engine).budget() == 4.5
    change = audit_events(node, "config.change")[-1]
    assert change["details"]["setting"] == "privacy_budget_epsilon"
    assert change["details"]["new"] == 4.5
    bad = CliRunner().invoke(app, ["federate", "budget", "--data-dir", data_dir, "--epsilon", "-1"])
    assert bad.exit_code == 1
    assert "positive, finite epsilon" in bad.output


def test_federate_run_over_node_directories_then_status_lists_the_rounds(nodes: dict[str, Node]) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app

    dirs = [str(n.settings.data_dir) for n in nodes.values()]
    r = CliRunner().invoke(
        app,
        [
            "federate",
            "run",
            "--node",
            dirs[0],
            "--node",
            dirs[1],
            "--run",
            "cli-1",
            "--rounds",
            "1",
            "--cutoff",
            str(WINDOW.cutoff),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["brands"]) == 2
    assert all(0 < b["epsilon_spent"] <= 3.0 for b in data["brands"])
    assert all(0.0 <= b["joint_share"] <= 1.0 for b in data["brands"])
    status = CliRunner().invoke(app, ["federate", "status", "--data-dir", dirs[0]])
    assert status.exit_code == 0, status.output
    assert "cli-1" in status.output
    assert "Served models" in status.output


def test_with_joint_modeling_switched_off_a_brand_reads_nothing_and_refuses(nodes: dict[str, Node]) -> None:
    from compliance.pia import Feature

    shop = nodes["shop"]
    shop.pia.disable(Feature.JOINT_MODELING, "olga")
    report, loaders = federate(nodes, rounds=1)
    refused = next(b for b in report.rounds[0].brands if b.brand == shop.settings.node_id)
    assert not refused.trained
    assert "joint_modeling is off" in (refused.refused or "")
    assert loaders["shop"].reads == []
    denied = audit_events(shop, "gate.denied")
    assert denied[-1]["details"]["feature"] == "joint_modeling"
    assert all(b.trained for b in report.rounds[0].brands if b.brand != shop.settings.node_id)


def test_with_joint_modeling_switched_off_after_a_run_a_brand_keeps_no_blend_and_reads_nothing(
    nodes: dict[str, Node],
) -> None:
    from compliance.pia import Feature
    from node.learning.run import federate_nodes

    shop = nodes["shop"]
    shop.pia.disable(Feature.JOINT_MODELING, "olga")
    result = federate_nodes(nodes, WINDOW, RunSettings(run="off-1", rounds=1, epsilon=3.0, batch_size=32))
    outcome = next(b for b in result.brands if b.brand == shop.settings.node_id)
    assert outcome.train_rows == 0
    assert outcome.auc_served is None
    assert NodeModelShelf(shop.store.engine).served() == []
