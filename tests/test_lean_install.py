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


def test_the_core_install_verifies_a_nodes_exports(lean: Path, tmp_path: Path) -> None:
    node = tmp_path / "n"
    assert _run(lean, "init", "--node-id", "lean.example", "--data-dir", str(node)).returncode == 0
    export, bundle = tmp_path / "audit.jsonl", tmp_path / "audit.bundle"
    assert (
        _run(lean, "ledger", "export", "--log", "audit", "--out", str(export), "--data-dir", str(node)).returncode == 0
    )
    verified = _run(lean, "ledger", "verify", str(export), "--vkey", str(node / "node.vkey"))
    assert verified.stdout.startswith("OK "), verified.stderr
    assert _run(lean, "audit", "export", "--out", str(bundle), "--data-dir", str(node)).returncode == 0
    checked = _run(lean, "audit", "verify", str(bundle), "--vkey", str(node / "node.vkey"))
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
