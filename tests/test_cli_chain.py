"""`alliance-node chain verify` refuses bad input clearly (the chain itself is tested in test_contracts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.cli.main import app
from node.core.datadir import init_node
from node.core.settings import REGISTRY_FILE
from node.demo.alliance import BrandSpec, create_alliance

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


AIR, SHOP, CAFE = (
    BrandSpec(key, key.title(), Decimal(1), Decimal(0), 18_000 + i) for i, key in enumerate(("air", "shop", "cafe"))
)


@pytest.fixture
def settled_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Three brands on an embedded chain, every pair confirmed for a window in which only air and shop
    exchanged; air's node is configured to act on that chain; the window's report names air and shop."""
    from contracts.client import Alliance, Chain
    from node.chain.settlement import window_id
    from node.settlement.statements import Window

    chain = Chain.embedded()
    owner, *accounts = chain.accounts[:4]
    alliance = Alliance.deploy(chain, owner)
    account = dict(zip((AIR, SHOP, CAFE), accounts, strict=True))
    for spec, acct in account.items():
        alliance.add_brand(acct, spec.node_id, owner)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    window = Window(start, start + timedelta(days=1))
    wid = window_id(window)
    for a, b in ((AIR, SHOP), (AIR, CAFE), (SHOP, CAFE)):
        alliance.post_statement(wid, account[b], b"\x01" * 32, account[a])
        alliance.post_statement(wid, account[a], b"\x01" * 32, account[b])
    settings = {
        "chain_rpc_url": "http://embedded",
        "chain_settlement_address": alliance.settlement.address,
        "chain_account": account[AIR],
    }
    create_alliance(tmp_path / "alliance", [AIR, SHOP, CAFE], **settings)
    report = tmp_path / "report.json"
    body = {
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "positions_fen": {AIR.node_id: -450, SHOP.node_id: 450},  # the cafe made no exchange
    }
    report.write_text(json.dumps(body))
    # the command connects by URL; the embedded chain has none, so it is handed over directly
    monkeypatch.setattr(Chain, "connect", staticmethod(lambda rpc, timeout=10.0: chain))
    return tmp_path / "alliance" / "air", report, alliance, wid, account


def test_chain_close_names_a_brand_without_exchanges_with_position_zero(settled_window) -> None:  # type: ignore[no-untyped-def]
    data_dir, report, alliance, wid, account = settled_window
    r = CliRunner().invoke(app, ["chain", "close", "--data-dir", str(data_dir), "--report", str(report)])
    assert r.exit_code == 0, r.output
    assert f"'{CAFE.node_id}': 0" in " ".join(r.output.split())
    assert alliance.settlement.functions.closed(wid).call()
    assert alliance.position(wid, account[CAFE]) == 0


def test_chain_close_with_a_brand_missing_from_the_registry_file_is_a_clear_error(settled_window) -> None:  # type: ignore[no-untyped-def]
    data_dir, report, *_ = settled_window
    registry = data_dir / REGISTRY_FILE
    registry.write_text(registry.read_text().split("\n[[brands]]")[0] + _brands_of(registry, AIR, SHOP))
    r = CliRunner().invoke(app, ["chain", "close", "--data-dir", str(data_dir), "--report", str(report)])
    assert r.exit_code == 1
    assert "every brand must be named (a brand registered on chain is missing from the registry file)" in " ".join(
        r.output.split()
    )
    assert "Traceback" not in r.output


def _brands_of(registry: Path, *specs: BrandSpec) -> str:
    """The ``[[brands]]`` tables of ``specs`` in a registry file."""
    tables = registry.read_text().split("\n[[joint]]")[0].split("\n[[brands]]")[1:]  # the joint purposes follow
    return "".join(f"\n[[brands]]{t}" for t in tables if any(f'"{s.node_id}"' in t for s in specs))
