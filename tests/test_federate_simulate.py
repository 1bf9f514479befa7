"""`alliance-node federate simulate`: any brands' CSV exports, the documented JSON out."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.cli.main import app

runner = CliRunner()


def brand_csv(path: Path, rows: int, seed: int) -> Path:
    """Churn that depends on recency and channel, so a model has something to learn."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["member", "recency_days", "spend", "channel", "churned"])
        for i in range(rows):
            recency = rng.expovariate(1 / 60)
            channel = rng.choice(["web", "store"])
            p = 0.15 + 0.6 * (recency > 60) + 0.15 * (channel == "web")
            w.writerow([f"{path.stem}-{i}", round(recency, 1), rng.randint(1, 500), channel, int(rng.random() < p)])
    return path


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("sim")
    files = [brand_csv(d / "big.csv", 600, 1), brand_csv(d / "small.csv", 160, 2)]
    args = ["federate", "simulate", "--label", "churned", "--ignore", "member", "--epsilon", "3", "--rounds", "2",
            "--json"]
    for f in files:
        args += ["--csv", str(f)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_the_json_has_the_documented_keys(result: dict) -> None:  # type: ignore[type-arg]
    assert {"brands", "auc_federated_mean", "auc_federated_nodp_mean", "auc_centralized"} <= set(result)
    for b in result["brands"]:
        assert {"name", "rows", "auc_local", "auc_federated", "epsilon"} <= set(b)
    assert [(b["name"], b["rows"]) for b in result["brands"]] == [("big", 600), ("small", 160)]


def test_each_brand_reports_its_own_epsilon_within_the_target(result: dict) -> None:  # type: ignore[type-arg]
    eps = {b["name"]: b["epsilon"] for b in result["brands"]}
    assert sorted(eps) == ["big", "small"]
    assert all(0 < e <= 3.0 for e in eps.values())


def test_the_models_learn_something(result: dict) -> None:  # type: ignore[type-arg]
    assert result["auc_centralized"] > 0.6
    assert result["auc_federated_nodp_mean"] > 0.6


def test_the_json_has_each_brands_served_blend_and_the_joint_share(result: dict) -> None:  # type: ignore[type-arg]
    for b in result["brands"]:
        assert 0.0 <= b["joint_share"] <= 1.0
        assert 0.0 <= b["auc_served"] <= 1.0
    assert result["auc_served_mean"] == pytest.approx(
        sum(b["auc_served"] for b in result["brands"]) / len(result["brands"]), abs=1e-3
    )


def test_one_file_is_not_a_federation(tmp_path: Path) -> None:
    f = brand_csv(tmp_path / "a.csv", 20, 1)
    r = runner.invoke(app, ["federate", "simulate", "--csv", str(f), "--label", "churned"])
    assert r.exit_code == 2
    assert "at least twice" in r.output


def test_a_missing_label_column_is_a_clear_error(tmp_path: Path) -> None:
    a, b = brand_csv(tmp_path / "a.csv", 20, 1), brand_csv(tmp_path / "b.csv", 20, 2)
    r = runner.invoke(app, ["federate", "simulate", "--csv", str(a), "--csv", str(b), "--label", "left"])
    assert r.exit_code == 2
    assert "no label column 'left'" in r.output
    assert "Traceback" not in r.output


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    a = brand_csv(tmp_path / "a.csv", 20, 1)
    r = runner.invoke(app, ["federate", "simulate", "--csv", str(a), "--csv", str(tmp_path / "no.csv"), "--label", "x"])
    assert r.exit_code == 2
    assert "no.csv: cannot read" in " ".join(r.output.split())


def test_the_json_says_how_many_steps_each_model_made(result: dict) -> None:  # type: ignore[type-arg]
    for b in result["brands"]:
        assert b["steps_local"] > 0
        assert b["steps_federated"] > 0
        assert b["steps_federated_nodp"] > 0
    assert result["steps_centralized"] > 0
    assert result["rounds_federated"] == 2  # a DP run runs every round it was calibrated for
    assert 1 <= result["rounds_federated_nodp"] <= 2
    assert result["stopping_rule"] == {"patience": 3, "max_checks": 2, "dp_models_run_to_the_cap": True}


def test_an_unknown_server_optimiser_is_a_clear_error(tmp_path: Path) -> None:
    files = [brand_csv(tmp_path / "a.csv", 50, 1), brand_csv(tmp_path / "b.csv", 50, 2)]
    r = runner.invoke(app, ["federate", "simulate", "--label", "churned", "--server-optimizer", "sgd",
                            "--csv", str(files[0]), "--csv", str(files[1])])
    assert r.exit_code == 2
    assert "--server-optimizer is one of fedavg, fedavgm, fedadam, fedyogi" in r.output
