"""`alliance-node chain verify` refuses bad input clearly (the chain itself is tested in test_contracts)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from node.cli.main import app
from node.core.datadir import init_node

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


def test_chain_verify_passes_then_reports_a_gap_over_json_rpc(tmp_path: Path) -> None:
    import pytest

    from contracts.client import Alliance
    from contracts.devchain import INSTALL_HINT, anvil
    from node.runtime import Node

    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    node.store.log("audit").append([b"one", b"two", b"three"])
    log = node.store.log("audit")
    with anvil() as chain:
        if chain is None:
            node.dispose()
            pytest.skip(f"{INSTALL_HINT}: chain verify over JSON-RPC is tested on anvil only")
        owner, account = chain.accounts[:2]
        alliance = Alliance.deploy(chain, owner)
        alliance.add_brand(account, "n.example", owner)
        alliance.post_anchor(log.origin, 3, log.root_at(3), account)
        node.dispose()
        args = [
            "chain",
            "verify",
            "--data-dir",
            str(tmp_path / "n"),
            "--rpc",
            chain.w3.provider.endpoint_uri,
            "--anchor",
            alliance.anchor.address,
        ]
        ok = CliRunner().invoke(app, args)
        assert ok.exit_code == 0, ok.output
        assert "n.example/audit anchored size 3 ok" in " ".join(ok.output.split())
        alliance.post_anchor(log.origin, 9, b"\x01" * 32, account)  # more than the node holds
        gap = CliRunner().invoke(app, args)
        assert gap.exit_code == 1
        assert "anchored size 9 GAP" in " ".join(gap.output.split())


def test_deploy_then_register_a_brand_over_json_rpc(tmp_path: Path) -> None:
    import pytest

    from contracts.devchain import INSTALL_HINT, anvil

    with anvil() as chain:
        if chain is None:
            pytest.skip(f"{INSTALL_HINT}: deploy and register are tested on anvil only")
        owner, brand = chain.accounts[:2]
        url = chain.w3.provider.endpoint_uri
        deployed = CliRunner().invoke(app, ["chain", "deploy", "--rpc", url, "--from", owner])
        assert deployed.exit_code == 0, deployed.output
        addresses = dict(line.split() for line in deployed.output.strip().splitlines())
        assert set(addresses) == {"registry", "anchor", "settlement"}
        args = [
            "chain",
            "register",
            "--rpc",
            url,
            "--registry",
            addresses["registry"],
            "--brand",
            brand,
            "--node-id",
            "n.example",
        ]
        ok = CliRunner().invoke(app, [*args, "--from", owner])
        assert ok.exit_code == 0, ok.output
        refused = CliRunner().invoke(app, [*args, "--from", brand])
        assert refused.exit_code == 1
        assert "only the owner" in refused.output
