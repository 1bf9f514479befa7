"""The command line for people and for programs: --version, --format json on list and status commands,
no wrapping into pipes, and messages that name the mistake and the way out."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.cli.main import app
from node.core.datadir import init_node
from node.core.settings import CONFIG_FILE

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    init_node(base / "n", "cli.alliance.example")
    return base / "n"


def run(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


def test_version_prints_the_installed_version() -> None:
    code, output = run("--version")
    assert code == 0
    assert output.startswith("alliance-node ")


@pytest.mark.parametrize(
    "command",
    [
        ["ledger", "list"],
        ["pia", "list"],
        ["feature", "list"],
        ["rights", "queue"],
        ["peers", "list"],
        ["jobs", "list"],
    ],
    ids=lambda c: " ".join(c),
)
def test_list_commands_print_json_for_programs(data_dir: Path, command: list[str]) -> None:
    code, output = run(*command, "--format", "json", "--data-dir", str(data_dir))
    assert code == 0, output
    json.loads(output)


def test_federate_status_prints_whole_hashes_as_json(data_dir: Path) -> None:
    code, output = run("federate", "status", "--format", "json", "--data-dir", str(data_dir))
    assert code == 0, output
    assert set(json.loads(output)) == {"rounds", "models", "served", "budget"}


def test_ledger_list_keeps_each_log_on_one_line_in_a_pipe(data_dir: Path) -> None:
    code, output = run("ledger", "list", "--data-dir", str(data_dir))
    assert code == 0
    lines = output.splitlines()
    assert len(lines) == 2  # audit and exchange, each with its 64-hex root, unwrapped
    assert all(len(line.split()[-1]) == 64 for line in lines)


def test_an_empty_rights_queue_says_so(data_dir: Path) -> None:
    assert run("rights", "queue", "--data-dir", str(data_dir)) == (0, "no open rights requests\n")


def test_an_unknown_log_lists_the_logs_there_are(data_dir: Path, tmp_path: Path) -> None:
    code, output = run("ledger", "export", "--log", "nope", "--out", str(tmp_path / "x"), "--data-dir", str(data_dir))
    assert code == 1
    assert "no log named 'nope' (the logs here: audit, exchange)" in output


def test_a_missing_file_is_named_without_an_errno(tmp_path: Path) -> None:
    missing = tmp_path / "absent.jsonl"
    code, output = run("ledger", "verify", str(missing), "--vkey", "x+00000000+AQ==")
    assert code == 1
    assert "Errno" not in output


def test_a_private_key_given_as_vkey_names_the_mistake_and_is_not_echoed(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    assert run("ledger", "export", "--log", "audit", "--out", str(export), "--data-dir", str(data_dir))[0] == 0
    secret = (data_dir / "node.key").read_text().strip()
    code, output = run("ledger", "verify", str(export), "--vkey", secret)
    assert code == 1
    assert "private signing key" in output
    assert secret.rsplit("+", 1)[-1] not in output


def test_a_checkpoint_from_another_key_says_which_key_signed_it(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_node(other, "other.alliance.example")
    export = tmp_path / "audit.jsonl"
    assert run("ledger", "export", "--log", "audit", "--out", str(export), "--data-dir", str(data_dir))[0] == 0
    code, output = run("ledger", "verify", str(export), "--vkey", str(other / "node.vkey"))
    assert code == 1
    assert "signed by cli.alliance.example" in output
    assert "trusted: other.alliance.example" in output


def test_a_lost_node_toml_is_not_a_dead_end(tmp_path: Path) -> None:
    init_node(tmp_path / "lost", "lost.alliance.example")
    vkey = (tmp_path / "lost" / "node.vkey").read_text()
    (tmp_path / "lost" / CONFIG_FILE).unlink()
    code, output = run("ledger", "list", "--data-dir", str(tmp_path / "lost"))
    assert code == 1
    assert "alliance-node init --node-id" in output
    code, output = run("init", "--node-id", "lost.alliance.example", "--data-dir", str(tmp_path / "lost"))
    assert code == 0, output
    assert "existing key" in output
    assert (tmp_path / "lost" / "node.vkey").read_text() == vkey  # the same key: the node keeps its identity
    assert run("ledger", "list", "--data-dir", str(tmp_path / "lost"))[0] == 0


def test_a_lost_node_toml_is_not_rewritten_for_another_nodes_key(tmp_path: Path) -> None:
    init_node(tmp_path / "lost", "lost.alliance.example")
    (tmp_path / "lost" / CONFIG_FILE).unlink()
    code, output = run("init", "--node-id", "thief.alliance.example", "--data-dir", str(tmp_path / "lost"))
    assert code == 1
    assert "belongs to 'lost.alliance.example'" in output


def test_serve_on_a_port_in_use_says_what_to_do(data_dir: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code, output = run("serve", "--port", str(port), "--data-dir", str(data_dir))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "--port" in output


def test_a_command_whose_extra_is_not_installed_names_the_extra() -> None:
    from node import missing_extra

    assert missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch")) == (
        "this needs torch, part of the [learning] extra: pip install 'alliance-node[learning]'"
    )
    assert missing_extra(ModuleNotFoundError("No module named 'web3.main'", name="web3.main")).endswith(
        "'alliance-node[chain]'"
    )
    assert missing_extra(ModuleNotFoundError("No module named 'left_pad'", name="left_pad")) is None


def test_a_lost_node_toml_is_not_rewritten_over_a_missing_database(tmp_path: Path) -> None:
    init_node(tmp_path / "gone", "gone.alliance.example")
    (tmp_path / "gone" / CONFIG_FILE).unlink()
    (tmp_path / "gone" / "node.db").unlink()  # a fresh database under the old key would fork its logs
    code, output = run("init", "--node-id", "gone.alliance.example", "--data-dir", str(tmp_path / "gone"))
    assert code == 1
    assert "restore them from a backup" in output
