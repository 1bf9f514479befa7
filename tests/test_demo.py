"""The README's first command: the demo runs end to end on the real CDNOW data."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from node.demo.main import DemoError, run_demo


def test_demo_appends_every_cdnow_purchase_and_verifies_every_log(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "alliance", Console(quiet=True), exchanges=300, chain=True)
    assert result.ok
    money = result.exchange
    assert money is not None
    assert money.links > 0
    assert money.outcomes["confirmed"] > 0
    assert sum(money.outcomes.values()) == 300
    assert sum(money.positions.values()) == 0
    assert not money.disputes
    assert all(money.reconciled.values())
    assert sum(result.customers.values()) - result.shared_customers == 23_570  # shared ones are at two brands
    assert sum(size for (_, log), (size, _) in result.verified.items() if log == "purchases") == 69_659
    assert len(result.verified) == 9  # three brands x audit, exchange, purchases
    assert all(n == 2 for (_, log), n in result.cosignatures.items() if log == "purchases")
    assert result.refused_forks == ["same size, other root", "larger size, rewritten past"]
    anchored = result.chain
    assert anchored is not None
    assert len(anchored.anchored) == 9  # every log of every brand
    assert anchored.window_closed
    assert anchored.pairs_confirmed == 3
    assert all(f.ok for f in anchored.verified)
    assert [f.kind for f in anchored.rewritten] == ["diverged"]
    fl = result.federation
    assert fl is not None
    assert [b.brand.split(".")[0] for b in sorted(fl.brands, key=lambda b: -b.train_rows)] == [
        "airline", "supermarket", "coffee"]
    assert all(b.refused is None and b.epsilon_spent is not None and 0 < b.epsilon_spent <= 3.0 for b in fl.brands)
    assert all(b.auc_together is not None and b.auc_together > 0.65 for b in fl.brands)
    cross = result.vertical  # the supermarket's cross-brand model with the airline's side of shared customers
    assert cross is not None
    assert result.shared_customers > 1000
    assert 100 <= cross.aligned["airline.alliance.example"] < result.shared_customers
    assert all(e is not None and 0 < e <= 3.0 + 1e-6 for e in cross.epsilon.values())
    assert cross.auc_alone > 0.6
    assert cross.scored > 0
    assert result.joint_withdrawal is True  # a linked customer's withdrawal at one brand recorded at the other
    for brand in ("airline", "supermarket", "coffee"):
        report = (tmp_path / "alliance" / brand / "pia-report.md").read_text()
        assert "| points_exchange | 开启 | pia-" in report
        assert "| cross_border | 关闭 |" in report


def test_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(DemoError):
        run_demo(tmp_path, Console(quiet=True))
