"""`pip install .` without extras is a working node for operators and auditors: the verification
commands and `serve` run, and nothing of torch, Flower, Opacus, web3 or Vyper is installed.

Slow (a fresh virtual environment, installed from the package index): run with ``-m slow``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from node.core.processes import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "flwr", "opacus", "web3", "vyper", "lifetimes", "numpy")


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding alliance-node and its core dependencies only; its bin directory."""
    venv = tmp_path_factory.mktemp("lean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    constraints = ROOT / ".ci" / "constraints.txt"
    pins = ["-c", str(constraints)] if constraints.exists() else []
    done = subprocess.run([*pip, *pins, str(ROOT)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin"


def _run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "alliance-node"), *args], capture_output=True, text=True, timeout=120)


def test_the_core_install_holds_none_of_the_heavy_packages(lean: Path) -> None:
    code = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"
    found = subprocess.run([str(lean / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo run by the full install (this test's own environment): its nodes and exports."""
    base = tmp_path_factory.mktemp("demo")
    cmd = [sys.executable, "-m", "node", "demo", "--exchanges", "30", "--no-federation", "--data-dir", str(base)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return base


def test_the_core_install_weighs_under_200_mb(lean: Path) -> None:
    [site] = (lean.parent / "lib").glob("python3*/site-packages")
    own = ("pip", "setuptools", "_distutils_hack")  # every venv's, not ours
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and f.relative_to(site).parts[0] not in own)
    assert size < 200 * 1024 * 1024, f"the core install weighs {size / 2**20:.0f} MB"


def test_the_core_install_verifies_a_demos_exports(lean: Path, demo: Path) -> None:
    exports = sorted((demo / "exports").glob("*.jsonl"))
    assert len(exports) >= 6  # each brand's audit and exchange logs
    for export in exports:
        brand = export.name.split("-", 1)[0]
        verified = _run(lean, "ledger", "verify", str(export), "--vkey", str(demo / brand / "node.vkey"))
        assert verified.stdout.startswith("OK "), (export.name, verified.stderr)
        if export.name.endswith("-audit.jsonl"):
            assert int(verified.stdout.split()[1]) > 1000  # the demo's members and consents, all audited


def test_the_core_install_verifies_a_demos_audit_bundle(lean: Path, demo: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "consent.bundle"
    export = [sys.executable, "-m", "node", "audit", "export", "--action", "consent.", "--out", str(bundle)]
    exported = subprocess.run([*export, "--data-dir", str(demo / "airline")], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    checked = _run(lean, "audit", "verify", str(bundle), "--vkey", str(demo / "airline" / "node.vkey"))
    assert checked.stdout.startswith("OK "), checked.stderr


def test_the_core_install_serves(lean: Path, tmp_path: Path) -> None:
    node = tmp_path / "s"
    assert _run(lean, "init", "--node-id", "serve.example", "--data-dir", str(node)).returncode == 0
    port = free_port()
    cmd = [str(lean / "alliance-node"), "serve", "--data-dir", str(node), "--port", str(port), "--no-jobs"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not answer in time"
                time.sleep(0.3)
        assert r.json()["status"] == "ready"
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_command_of_an_extra_says_which_extra_to_install(lean: Path, tmp_path: Path) -> None:
    node = tmp_path / "x"
    assert _run(lean, "init", "--node-id", "extra.example", "--data-dir", str(node)).returncode == 0
    status = _run(lean, "federate", "status", "--data-dir", str(node))
    assert status.returncode == 1
    assert "pip install 'alliance-node[learning]'" in status.stderr + status.stdout
    demo = _run(lean, "demo", "--exchanges", "0")
    assert "pip install 'alliance-node[demo]'" in demo.stderr + demo.stdout
