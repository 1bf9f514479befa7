"""Two rounds on Flower's Deployment Engine: a SuperLink and three SuperNodes on 127.0.0.1, with TLS
and SuperNode authentication, driven by `alliance-node federation run` (slow: about a minute)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compliance.consent import ConsentAction
from compliance.service import ConsentChange
from node.cli.main import app
from node.core.processes import free_port
from node.demo.alliance import BrandSpec, create_alliance, enable_exchange
from node.learning.deploy import LocalFederation, make_supernode_key
from node.learning.store import NodeModelShelf, NodePrivacyBook
from node.runtime import Node
from node.wallet.bulk import import_earns

pytestmark = pytest.mark.slow
TODAY = datetime.now(UTC).date()
CUTOFF = TODAY - timedelta(days=180)


def brands() -> list[BrandSpec]:
    return [
        BrandSpec(key, key.title(), Decimal(v), Decimal("0.02"), free_port())
        for key, v in (("airline", "4.5"), ("shop", "1"), ("cafe", "2.5"))
    ]


@pytest.fixture(scope="module")
def alliance(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("deploy")
    specs = brands()
    create_alliance(base, specs)
    for i, spec in enumerate(specs):
        node = Node.open(base / spec.key)
        enable_exchange(node, [s.node_id for s in specs if s is not spec])
        refs = [f"{spec.key}-{k}" for k in (range(200) if i == 0 else range(90))]
        node.consent.register_members([(r, date(1990, 1, 1), None) for r in refs])
        pseudonyms = node.keyring.pseudonyms(refs)
        rng, rows = random.Random(i), []
        for r in refs:
            loyal = rng.random() < 0.5
            days = [CUTOFF - timedelta(days=rng.randint(1, 60 if loyal else 300)) for _ in range(rng.randint(1, 5))]
            days += [CUTOFF + timedelta(days=rng.randint(1, 150))] if loyal else []
            rows += [
                (pseudonyms[r], rng.randint(20, 900), "purchase", d, d + timedelta(days=730), f"p:{r}:{j}")
                for j, d in enumerate(days)
            ]
        import_earns(node.wallets, rows)
        node.consent.change_many(
            [ConsentChange(r, ("joint_modeling",), ConsentAction.GRANT, collection_method="test") for r in refs]
        )
        node.dispose()
    return [base / s.key for s in specs]


def flower_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if ("flower-super" in line or "flwr-" in line) and not line.startswith("Z")]


def test_two_rounds_with_tls_and_node_authentication_on_the_deployment_engine(
    alliance: list[Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    args = [
        "federation",
        "run",
        "--run",
        "deploy-1",
        "--rounds",
        "2",
        "--epsilon",
        "3",
        "--cutoff",
        str(CUTOFF),
        "--work-dir",
        str(work),
        "--json",
    ]
    for d in alliance:
        args += ["--node", str(d)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rounds = data["report"]["rounds"]
    assert [x["round"] for x in rounds] == [1, 2]
    assert all(b["trained"] for x in rounds for b in x["brands"])
    assert len(rounds[-1]["brands"]) == 3
    assert all(0 < b["epsilon_spent"] <= 3.0 for b in data["brands"])
    commands = (work / "commands.log").read_text()
    assert "--disable-runtime-dependency-installation" in commands
    assert "--enable-supernode-auth" in commands
    assert "--ssl-certfile" in commands
    assert "flwr supernode register" in commands
    assert "--auth-supernode-private-key" in commands
    assert "--insecure" not in commands
    for d in alliance:
        node = Node.open(d)
        try:
            assert [x["round"] for x in NodePrivacyBook(node.store.engine).rounds()] == [1, 2]
            assert [(v["run"], v["round"]) for v in NodeModelShelf(node.store.engine).versions()] == [
                ("deploy-1", 1),
                ("deploy-1", 2),
            ]
        finally:
            node.dispose()
    assert flower_processes() == []  # everything stopped


def test_a_supernode_whose_key_was_not_registered_is_refused(alliance: list[Path], tmp_path: Path) -> None:
    with LocalFederation(tmp_path / "work", alliance[:2], secure=True) as fed:
        fed.start()
        stranger, _ = make_supernode_key(tmp_path / "other-keys", "stranger")
        proc = fed.start_supernode("stranger", alliance[2], key=stranger)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.returncode not in (None, 0)
        log = (tmp_path / "work" / "logs" / "stranger.log").read_text()
        assert "Activated" not in log
    assert flower_processes() == []
