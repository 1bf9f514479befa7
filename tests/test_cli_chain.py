"""`alliance-node chain verify` refuses bad input clearly (the chain itself is tested in test_contracts)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from node.cli import app
from node.identity import init_node

ANCHOR = "0x" + "11" * 20


def test_an_address_that_is_not_one_is_refused(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    r = CliRunner().invoke(
        app, ["chain", "verify", "--data-dir", str(tmp_path / "n"), "--rpc", "http://127.0.0.1:1", "--anchor", "0x1234"]
    )
    assert r.exit_code == 2
    assert "is not an address" in r.output


def test_a_chain_that_does_not_answer_is_a_clear_error(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    r = CliRunner().invoke(
        app, ["chain", "verify", "--data-dir", str(tmp_path / "n"), "--rpc", "http://127.0.0.1:1", "--anchor", ANCHOR]
    )
    assert r.exit_code == 2
    assert "no EVM node answers at http://127.0.0.1:1" in r.output
