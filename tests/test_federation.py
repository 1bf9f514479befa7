"""Federated runs through the in-process Grid: the Flower apps as the alliance runs them."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.server_app import FederationError, FederationReport, RunSettings, run_federation
from federation.site import BrandData, MemoryPrivacyBook, MemoryShelf, Site


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


def synthetic(n: int, shift: float, seed: int, width: int = 4) -> BrandData:
    """Rows whose label follows the first two columns, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, width)) + shift
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=n) > shift).astype(int)
    k = int(n * 0.75)
    return BrandData(
        x[:k].tolist(), y[:k].tolist(), x[k:].tolist(), y[k:].tolist(), tuple(f"m{seed}-{i}" for i in range(k))
    )


def fixed(data: BrandData):
    return lambda: data


def federate(sites: dict[str, Site], **settings: object) -> FederationReport:
    app = make_client_app(lambda ctx: sites[str(ctx.node_config["brand"])])
    grid = InProcessGrid(app, [{"brand": name} for name in sites])
    args = {"run": "run-1", "rounds": 2, "epsilon": 3.0, "batch_size": 32, **settings}
    return run_federation(grid, RunSettings(**args), len(sites))  # type: ignore[arg-type]


def three_brands(budget: float = 10.0) -> dict[str, Site]:
    return {
        name: Site(name, fixed(synthetic(n, shift, seed)), MemoryPrivacyBook(budget))
        for name, n, shift, seed in (("air", 600, 0.0, 1), ("shop", 300, 0.3, 2), ("cafe", 120, -0.3, 3))
    }


def test_each_brand_reports_its_own_cumulative_epsilon_within_the_run_target() -> None:
    report = federate(three_brands())
    per_round = [{b.brand: b.epsilon for b in r.brands} for r in report.rounds]
    for brand in ("air", "shop", "cafe"):
        first, second = per_round[0][brand], per_round[1][brand]
        assert first is not None
        assert second is not None
        assert 0 < first < second <= 3.0 + 1e-6
    assert len({round(v, 6) for v in per_round[1].values()}) == 3  # not one averaged value


def test_accountant_history_is_kept_in_the_brands_privacy_book() -> None:
    sites = three_brands()
    federate(sites)
    book = sites["shop"].privacy
    assert isinstance(book, MemoryPrivacyBook)
    assert [r["round"] for r in book.rounds] == [1, 2]
    assert book.rounds[-1]["count"] == 225
    state = book.run("run-1")
    assert state is not None
    assert sum(steps for _, _, steps in state.history) > 0


def test_a_brand_over_its_budget_refuses_and_is_audited_while_the_others_train() -> None:
    sites = three_brands()
    audit: list[tuple[str, dict[str, object]]] = []
    cafe = sites["cafe"]
    sites["cafe"] = Site("cafe", cafe.data, MemoryPrivacyBook(0.5), audit=lambda e, d: audit.append((e, dict(d))))
    report = federate(sites)
    cafe_round = next(b for b in report.rounds[0].brands if b.brand == "cafe")
    assert not cafe_round.trained
    assert "over the budget of 0.500" in (cafe_round.refused or "")
    assert audit[0][0] == "federation.round_refused"
    assert audit[0][1]["reason"] == "privacy budget"
    assert all(b.trained for b in report.rounds[0].brands if b.brand != "cafe")
    assert sites["cafe"].privacy.run("run-1") is None  # nothing spent


def test_a_second_run_is_refused_once_earlier_runs_used_the_budget() -> None:
    sites = three_brands(budget=3.2)
    federate(sites, run="run-1")
    report = federate(sites, run="run-2")
    assert sorted(b.brand for b in report.rounds[0].brands) == ["air", "cafe", "shop"]
    assert all(not b.trained and "over the budget" in (b.refused or "") for b in report.rounds[0].brands)


def test_a_member_who_leaves_is_not_in_the_next_round() -> None:
    rows = synthetic(300, 0.0, 5)
    smaller = BrandData(rows.x_train[:-10], rows.y_train[:-10], rows.x_test, rows.y_test, rows.members[:-10])
    calls = iter([rows, rows, smaller, smaller, smaller])  # describe, round 1 train, evaluate, round 2 ...
    book = MemoryPrivacyBook(10.0)
    sites = three_brands()
    sites["shop"] = Site("shop", lambda: next(calls), book)
    federate(sites)
    assert [r["count"] for r in book.rounds] == [225, 215]
    assert book.rounds[0]["members_sha256"] != book.rounds[1]["members_sha256"]


def test_contributions_are_measured_for_every_brand_that_trained() -> None:
    report = federate(three_brands())
    assert len(report.rounds) == 2
    for r in report.rounds:
        assert sorted(b.brand for b in r.brands if b.trained) == ["air", "cafe", "shop"]
        assert all(b.contribution is not None for b in r.brands)
        assert all(b.auc is not None and 0.5 < b.auc <= 1.0 for b in r.brands)


def test_every_brand_stores_each_rounds_global_model() -> None:
    sites = three_brands()
    for name, site in sites.items():
        sites[name] = Site(name, site.data, site.privacy, MemoryShelf())
    report = federate(sites)
    shelves = [s.shelf for s in sites.values()]
    assert all(isinstance(s, MemoryShelf) and sorted(s.models) == [("run-1", 1), ("run-1", 2)] for s in shelves)
    final = shelves[0].models[("run-1", 2)]  # type: ignore[union-attr]
    assert report.weights is not None
    assert all(np.allclose(final[k], report.weights[k]) for k in final)


def test_without_dp_no_epsilon_is_reported_and_no_budget_is_spent() -> None:
    sites = three_brands()
    report = federate(sites, dp=False)
    assert [sorted(b.brand for b in r.brands if b.trained) for r in report.rounds] == [["air", "cafe", "shop"]] * 2
    assert all(b.epsilon is None for r in report.rounds for b in r.brands)
    assert all(s.privacy.run("run-1") is None for s in sites.values())


def test_a_crashing_brand_is_reported_and_the_round_goes_on() -> None:
    sites = three_brands()

    def broken() -> BrandData:
        raise RuntimeError("disk on fire")

    good = sites["cafe"].data
    calls = iter([good()])  # describe works, then training crashes
    sites["cafe"] = Site("cafe", lambda: next(calls, None) or broken(), MemoryPrivacyBook(10.0))
    report = federate(sites, rounds=1)
    cafe = next(b for b in report.rounds[0].brands if b.brand == "cafe")
    assert not cafe.trained
    assert "disk on fire" in (cafe.refused or "")
    assert report.weights is not None


def test_brands_that_disagree_on_the_features_cannot_start() -> None:
    sites = three_brands()
    sites["cafe"] = Site("cafe", fixed(synthetic(100, 0.0, 9, width=6)), MemoryPrivacyBook(10.0))
    with pytest.raises(FederationError, match="disagree on the number of features"):
        federate(sites)


@pytest.mark.parametrize("server", ["fedavgm", "fedadam", "fedyogi"])
def test_each_server_optimiser_runs_with_the_alliances_reports(server: str) -> None:
    report = federate(three_brands(), rounds=2, server=server)
    assert report.weights is not None
    assert [len(r.brands) for r in report.rounds] == [3, 3]
    assert all(b.contribution is not None and b.steps for b in report.rounds[-1].brands)


def test_a_server_optimiser_changes_the_model() -> None:
    plain = federate(three_brands(), rounds=2, dp=False)
    adam = federate(three_brands(), rounds=2, dp=False, server="fedadam")
    assert plain.weights is not None
    assert adam.weights is not None
    assert not np.allclose(plain.weights["0.weight"], adam.weights["0.weight"])


def with_validation(data: BrandData) -> BrandData:
    k = len(data.y_train) // 5
    return BrandData(data.x_train[k:], data.y_train[k:], data.x_test, data.y_test, data.members[k:],
                     data.x_train[:k], data.y_train[:k])


def test_a_run_without_dp_stops_when_the_validation_loss_stops_improving() -> None:
    sites = {
        name: Site(name, fixed(with_validation(synthetic(n, 0.0, seed))), MemoryPrivacyBook(10.0))
        for name, n, seed in (("air", 600, 1), ("shop", 300, 2))
    }
    report = federate(sites, rounds=40, dp=False, patience=2, lr=1.0)
    assert len(report.rounds) < 40  # later rounds sent nothing
    assert report.best_round is not None
    assert report.best_round == len(report.rounds) - 2


def test_a_dp_run_may_not_stop_early() -> None:
    with pytest.raises(ValueError, match="runs every round"):
        RunSettings(run="r", dp=True, patience=3)


def test_a_dp_run_serves_the_mean_of_its_last_rounds_models() -> None:
    stores = {name: MemoryShelf() for name in ("air", "shop")}
    sites = {
        name: Site(name, fixed(synthetic(n, 0.0, seed)), MemoryPrivacyBook(10.0), shelf=stores[name])
        for name, n, seed in (("air", 600, 1), ("shop", 300, 2))
    }
    report = federate(sites, rounds=4, tail=0.5)
    served = stores["air"].models
    assert report.weights is not None
    assert np.allclose(report.weights["0.weight"], served[("run-1", 4)]["0.weight"], atol=1e-6)
    # rounds 3 and 4 are averaged: what round 4 served differs from what round 3 served
    assert not np.allclose(served[("run-1", 3)]["0.weight"], served[("run-1", 4)]["0.weight"])


def seeds_used(monkeypatch: pytest.MonkeyPatch, repeatable: bool) -> list[int]:
    """The seeds the ClientApp handed to DP-SGD in a one-round run."""
    import federation.client_app as client_app

    seen: list[int] = []
    real = client_app.train

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(int(kwargs["seed"]))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client_app, "train", spy)
    federate({n: replace(s, repeatable_noise=repeatable) for n, s in three_brands().items()}, rounds=1, seed=7)
    return seen


def test_a_brands_dp_noise_does_not_come_from_the_seed_the_server_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = seeds_used(monkeypatch, False), seeds_used(monkeypatch, False)
    assert 7 * 1000 + 1 not in first
    assert first != second


def test_a_simulation_asks_for_the_runs_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert seeds_used(monkeypatch, True) == [7 * 1000 + 1] * 3
