"""The ``alliance-node`` command line: init, export/verify, serve, and clear failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from node.cli.main import app
from node.core.settings import CONFIG_FILE, KEY_FILE, VKEY_FILE, WITNESS_VKEY_FILE
from node.runtime import Node

runner = CliRunner()


def _init(tmp_path: Path, name: str = "a.example") -> Path:
    d = tmp_path / "node"
    r = runner.invoke(app, ["init", "--node-id", name, "--data-dir", str(d)])
    assert r.exit_code == 0, r.output
    return d


def _fill(d: Path, n: int = 25) -> None:
    node = Node.open(d)
    node.store.log("audit").append([f"event {i}".encode() for i in range(n)])
    node.dispose()


def test_init_creates_key_vkeys_config_and_database(tmp_path: Path) -> None:
    d = _init(tmp_path)
    for f in (KEY_FILE, VKEY_FILE, WITNESS_VKEY_FILE, CONFIG_FILE, "node.db"):
        assert (d / f).exists(), f
    assert (d / KEY_FILE).stat().st_mode & 0o077 == 0
    assert (d / VKEY_FILE).read_text().startswith("a.example+")


def test_init_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    d = _init(tmp_path)
    key = (d / KEY_FILE).read_text()
    r = runner.invoke(app, ["init", "--node-id", "a.example", "--data-dir", str(d)])
    assert r.exit_code != 0
    assert "refusing to overwrite" in r.output
    assert (d / KEY_FILE).read_text() == key


def test_export_then_verify_prints_ok_size_root(tmp_path: Path) -> None:
    d = _init(tmp_path)
    _fill(d)
    out = tmp_path / "audit.jsonl"
    exported = runner.invoke(app, ["ledger", "export", "--log", "audit", "--out", str(out), "--data-dir", str(d)])
    assert exported.exit_code == 0
    r = runner.invoke(app, ["ledger", "verify", str(out), "--vkey", str(d / VKEY_FILE)])
    assert r.exit_code == 0, r.output
    node = Node.open(d)
    assert r.output.strip() == f"OK 25 {node.store.log('audit').head().root_hash.hex()}"
    node.dispose()


def test_verify_names_the_first_bad_index(tmp_path: Path) -> None:
    d = _init(tmp_path)
    _fill(d)
    out = tmp_path / "audit.jsonl"
    runner.invoke(app, ["ledger", "export", "--log", "audit", "--out", str(out), "--data-dir", str(d)])
    lines = out.read_bytes().splitlines(keepends=True)
    lines[8] = lines[8].replace(b'"leaf_hash":"', b'"leaf_hash":"0', 1)[:-3] + b'"}\n'
    out.write_bytes(b"".join(lines))
    r = runner.invoke(app, ["ledger", "verify", str(out), "--vkey", (d / VKEY_FILE).read_text().strip()])
    assert r.exit_code == 1
    assert "entry 7" in r.output


def test_verify_rejects_another_nodes_key(tmp_path: Path) -> None:
    d = _init(tmp_path)
    other = tmp_path / "other"
    runner.invoke(app, ["init", "--node-id", "a.example", "--data-dir", str(other)])
    out = tmp_path / "audit.jsonl"
    runner.invoke(app, ["ledger", "export", "--log", "audit", "--out", str(out), "--data-dir", str(d)])
    r = runner.invoke(app, ["ledger", "verify", str(out), "--vkey", str(other / VKEY_FILE)])
    assert r.exit_code == 1
    assert "checkpoint" in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["ledger", "list", "--data-dir", "{missing}"],
        ["ledger", "export", "--log", "nope", "--out", "{tmp}/x.jsonl", "--data-dir", "{node}"],
        ["ledger", "verify", "{tmp}/absent.jsonl", "--vkey", "a.example+00000000+AA=="],
        ["peers", "add", "--node-id", "b.example", "--vkey", "garbage", "--data-dir", "{node}"],
    ],
)
def test_bad_input_gives_one_clear_line_not_a_traceback(tmp_path: Path, args: list[str]) -> None:
    d = _init(tmp_path)
    filled = [a.format(missing=tmp_path / "missing", tmp=tmp_path, node=d) for a in args]
    r = runner.invoke(app, filled)
    assert r.exit_code != 0
    assert "error:" in r.output
    assert "Traceback" not in r.output


def test_ledger_check_rehashes_the_whole_log(tmp_path: Path) -> None:
    d = _init(tmp_path)
    _fill(d, 9)
    r = runner.invoke(app, ["ledger", "check", "--log", "audit", "--data-dir", str(d)])
    assert r.exit_code == 0
    assert r.output.startswith("OK 9 ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_health_and_checkpoints_on_loopback(tmp_path: Path) -> None:
    d = _init(tmp_path)
    port = _free_port()
    cmd = [sys.executable, "-m", "node", "serve", "--data-dir", str(d), "--port", str(port), "--no-jobs"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert r.json()["node_id"] == "a.example"
        cp = httpx.get(f"http://127.0.0.1:{port}/v1/logs/audit/checkpoint", timeout=5).text
        assert cp.startswith("a.example/audit\n0\n")
    finally:
        proc.terminate()
        proc.wait(15)


def test_init_and_serve_refuse_a_region_outside_mainland_china(tmp_path: Path) -> None:
    r = runner.invoke(app, ["init", "--node-id", "x.example", "--region", "SG", "--data-dir", str(tmp_path / "x")])
    assert r.exit_code == 1
    assert "PIPL Art. 40" in r.output
    d = _init(tmp_path)
    r = runner.invoke(app, ["serve", "--data-dir", str(d)], env={"ALLIANCE_REGION": "HK"})
    assert r.exit_code == 1
    assert "outside mainland China" in r.output


def test_init_warns_on_stderr_when_the_data_directory_is_open_to_others(tmp_path: Path) -> None:
    d = tmp_path / "node"
    d.mkdir()
    d.chmod(0o755)
    r = runner.invoke(app, ["init", "--node-id", "a.example", "--data-dir", str(d)])
    assert r.exit_code == 0, r.output
    warning = r.stderr.strip()
    assert warning.startswith("warning:")
    assert "\n" not in warning  # one line
    assert f"chmod 700 {d}" in warning


def test_init_in_a_new_directory_prints_no_warning(tmp_path: Path) -> None:
    r = runner.invoke(app, ["init", "--node-id", "a.example", "--data-dir", str(tmp_path / "node")])
    assert r.exit_code == 0, r.output
    assert r.stderr == ""


def test_serve_warns_on_stderr_about_a_database_others_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _init(tmp_path)
    (d / "node.db").chmod(0o644)
    monkeypatch.setattr("uvicorn.Server.run", lambda *_args, **_kwargs: None)  # the check, not the server
    r = runner.invoke(app, ["serve", "--data-dir", str(d)])
    assert r.exit_code == 0, r.output
    warning = r.stderr.strip()
    assert warning.startswith("warning:")
    assert "\n" not in warning  # one line
    assert f"{d / 'node.db'} 0644" in warning
    assert f"chmod 600 {d / 'node.db'}" in warning
