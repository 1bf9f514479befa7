"""Vertical runs on Flower's Message API: partners' scores help the label holder, every release is
paid for in each brand's budget, and members travel only as per-run alignment ids."""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from federation.inprocess import InProcessGrid
from federation.privacy import PURE
from federation.simulate_vertical import VerticalBrand, simulate_vertical
from federation.site import MemoryPrivacyBook
from federation.vertical_client import PartnerSite, make_partner_app
from federation.vertical_server import LabelSite, VerticalReport, VerticalSettings, run_vertical
from node.cli.main import app

N = 1600


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


def members(seed: int = 0) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, int]]:
    """The label holder sees one cause of churn, the partner a stronger one."""
    rng = random.Random(seed)
    own, theirs, labels = {}, {}, {}
    for i in range(N):
        a, b = [rng.gauss(0, 1) for _ in range(2)], [rng.gauss(0, 1) for _ in range(2)]
        logit = 0.8 * a[0] + 2.0 * b[0]
        key = f"m{i:05d}"
        own[key], theirs[key], labels[key] = a, b, int(rng.random() < 1 / (1 + math.exp(-logit)))
    return own, theirs, labels


def run(dp: bool = True, budget: float = 10.0, rounds: int = 1) -> tuple[VerticalReport, PartnerSite, LabelSite]:
    own, theirs, labels = members()
    partner = PartnerSite("bank", lambda _run: theirs, MemoryPrivacyBook(budget), epsilon=3.0, dp=dp)
    label = LabelSite("airline", own, labels, MemoryPrivacyBook(10.0))
    grid = InProcessGrid(make_partner_app(lambda _ctx: partner), [{"brand": "bank"}])
    settings = VerticalSettings(run="v1", rounds=rounds, epsilon=3.0, dp=dp, epochs=10)
    return run_vertical(grid, settings, label), partner, label


def test_without_dp_the_partners_scores_lift_the_label_holder_well_above_alone() -> None:
    report, _, _ = run(dp=False)
    assert report.auc_vertical > report.auc_alone + 0.05


def test_with_dp_each_brand_spends_its_epsilon_and_no_more() -> None:
    report, partner, label = run(dp=True, rounds=2)
    last = report.rounds[-1].epsilon
    assert last["airline"] == pytest.approx(3.0, abs=0.01)
    assert last["bank"] == pytest.approx(3.0, abs=0.01)
    assert all(v <= 3.0 + 1e-6 for r in report.rounds for v in r.epsilon.values())
    assert [r["round"] for r in partner.privacy.rounds] == [1, 1, 2, 2]  # training, then the release, each round
    assert len(label.privacy.rounds) == 1  # the labels cross once; every gradient is computed from that release
    state = partner.privacy.run("v1")
    assert state is not None
    steps: dict[tuple[float, float], int] = {}
    for noise, rate, n in state.history:
        steps[(noise, rate)] = steps.get((noise, rate), 0) + n
    plan = partner.runs["v1"].plan
    assert plan is not None
    assert steps[(PURE, plan.release_epsilon)] == 2  # both rounds' releases (randomized response)
    assert steps[(plan.sgd.noise_multiplier, plan.sgd.sample_rate)] == 2 * plan.sgd.steps_per_round  # both trainings


def test_scores_that_help_are_used_by_the_served_top_model() -> None:
    report, _, _ = run(dp=False)
    assert report.used == ["bank"]


def test_scores_that_do_not_lower_the_validation_loss_are_not_used() -> None:
    own, _, labels = members()
    rng = random.Random(7)
    noise = {k: [rng.gauss(0, 1), rng.gauss(0, 1)] for k in own}  # a partner that knows nothing useful
    partner = PartnerSite("bank", lambda _run: noise, MemoryPrivacyBook(3.0), dp=False)
    grid = InProcessGrid(make_partner_app(lambda _ctx: partner), [{"brand": "bank"}])
    label = LabelSite("airline", own, labels, MemoryPrivacyBook(3.0), split_key="fixed")
    report = run_vertical(grid, VerticalSettings(run="v1", epochs=5, dp=False), label)  # no noise: deterministic
    assert report.used == []
    assert report.auc_vertical == report.auc_alone


def test_the_partner_is_asked_only_by_alignment_ids_it_holds() -> None:
    report, _, _ = run(dp=True)
    assert report.rounds[0].refused == {}


def test_a_partner_without_budget_refuses_and_the_label_holder_goes_on_alone() -> None:
    report, partner, _ = run(dp=True, budget=1.0)  # the run would spend 3
    assert "bank" in report.rounds[0].refused
    assert "budget" in report.rounds[0].refused["bank"]
    assert report.contributions == {}
    assert report.auc_vertical == pytest.approx(report.auc_alone)
    assert partner.privacy.rounds == []  # nothing was released, nothing recorded


def test_members_unknown_to_the_partner_are_refused_with_a_reason() -> None:
    own, theirs, labels = members()
    partial = dict(list(theirs.items())[: N // 2])
    partner = PartnerSite("bank", lambda _run: partial, MemoryPrivacyBook(3.0))
    grid = InProcessGrid(make_partner_app(lambda _ctx: partner), [{"brand": "bank"}])
    report = run_vertical(grid, VerticalSettings(run="v1", epochs=2), LabelSite("airline", own, labels,
                                                                                MemoryPrivacyBook(3.0)))
    assert "not aligned" in report.rounds[0].refused["bank"]
    assert partner.privacy.rounds == []


def test_a_partners_contribution_is_the_held_out_auc_lost_without_its_scores() -> None:
    report, _, _ = run(dp=False)
    assert report.contributions["bank"] == pytest.approx(report.auc_vertical - report.auc_alone, abs=0.02)
    assert report.contributions["bank"] > 0.05


def test_the_split_is_stratified_and_keyed_by_a_secret_of_the_label_holder() -> None:
    own, _, labels = members()
    site = LabelSite("airline", own, labels, MemoryPrivacyBook(3.0))
    train, val, test = site.split()
    assert site.split() == (train, val, test)
    assert LabelSite("airline", own, labels, MemoryPrivacyBook(3.0)).split() != (train, val, test)
    assert len(test) == pytest.approx(N * 0.25, abs=2)
    rate = sum(labels.values()) / N
    assert sum(labels[m] for m in test) / len(test) == pytest.approx(rate, abs=0.01)
    assert not set(train) & set(val) | set(train) & set(test) | set(val) & set(test)


def brands(extra: int = 300) -> list[VerticalBrand]:
    own, theirs, labels = members()
    keys = sorted(own)
    shared = [f"+86138{int(k[1:]):08d}" for k in keys]
    only_partner = [f"+86139{i:08d}" for i in range(extra)]
    holder = VerticalBrand("airline", shared, [own[k] for k in keys], [labels[k] for k in keys])
    partner_ids = shared[::-1] + only_partner
    partner_x = [theirs[k] for k in keys[::-1]] + [[0.0, 0.0]] * extra
    return [holder, VerticalBrand("bank", partner_ids, partner_x)]


def test_simulation_aligns_by_psi_and_judges_four_models_on_the_same_members() -> None:
    result = simulate_vertical(brands(), VerticalSettings(run="sim", epochs=10)).to_json()
    assert result["mode"] == "vertical"
    assert result["intersection"] == N
    assert result["auc_vertical_nodp"] > result["auc_alone"] + 0.05
    assert result["auc_centralized"] > result["auc_alone"] + 0.05
    assert [b["name"] for b in result["brands"]] == ["airline", "bank"]
    assert all(0 < b["epsilon"] <= 3.0 for b in result["brands"])


def test_simulation_needs_exactly_one_label_holder() -> None:
    holder, partner = brands()
    with pytest.raises(ValueError, match="exactly one file holds the label; 2 do"):
        simulate_vertical([holder, VerticalBrand("bank", partner.ids, partner.x, [0] * len(partner.ids))],
                          VerticalSettings(run="sim"))


def test_simulation_refuses_an_intersection_below_the_minimum() -> None:
    holder, partner = brands()
    small = VerticalBrand("bank", partner.ids[:50], partner.x[:50])
    with pytest.raises(ValueError, match="fewer than the minimum of 100"):
        simulate_vertical([holder, small], VerticalSettings(run="sim"))


def write_csvs(tmp_path: Path) -> tuple[Path, Path]:
    holder, partner = brands()
    assert holder.y is not None
    a, b = tmp_path / "airline.csv", tmp_path / "bank.csv"
    with a.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phone", "miles", "flights", "churned"])
        w.writerows([i, *x, y] for i, x, y in zip(holder.ids, holder.x, holder.y, strict=True))
    with b.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phone", "balance", "segment"])
        w.writerows([i, x[0], "gold" if x[1] > 0 else "basic"] for i, x in zip(partner.ids, partner.x, strict=True))
    return a, b


def test_the_command_prints_the_documented_json(tmp_path: Path) -> None:
    a, b = write_csvs(tmp_path)
    args = ["federate", "simulate", "--vertical", "--csv", str(a), "--csv", str(b), "--id", "phone",
            "--label", "churned", "--epsilon", "3", "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {"mode", "intersection", "brands", "auc_alone", "auc_vertical", "auc_vertical_nodp",
            "auc_centralized"} <= set(data)
    assert data["intersection"] == N
    assert [{"name", "rows", "epsilon"} <= set(b) for b in data["brands"]] == [True, True]


def test_the_command_says_when_the_label_is_in_more_than_one_file(tmp_path: Path) -> None:
    a, _ = write_csvs(tmp_path)
    r = CliRunner().invoke(app, ["federate", "simulate", "--vertical", "--csv", str(a), "--csv", str(a), "--name",
                                 "x", "--name", "y", "--id", "phone", "--label", "churned"])
    assert r.exit_code == 2
    assert "must be in exactly one file" in r.output


def test_the_command_needs_the_id_column(tmp_path: Path) -> None:
    a, b = write_csvs(tmp_path)
    r = CliRunner().invoke(app, ["federate", "simulate", "--vertical", "--csv", str(a), "--csv", str(b),
                                 "--label", "churned"])
    assert r.exit_code == 2
    assert "--id" in r.output
    r = CliRunner().invoke(app, ["federate", "simulate", "--vertical", "--csv", str(a), "--csv", str(b),
                                 "--id", "email", "--label", "churned"])
    assert r.exit_code == 2
    assert "no id column 'email'" in r.output
