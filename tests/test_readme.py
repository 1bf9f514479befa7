"""The README stays true: its test command is what CI runs, and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from node.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _first_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block, "the README must start with a sh code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    demo, tests = _first_commands()
    assert demo.endswith("alliance-node demo")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    assert _first_commands()[1] in (ROOT / ".ci" / "run").read_text()


def _command_paths(group: object, prefix: str = "") -> list[str]:
    paths = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(cmd, "commands"):
            paths += _command_paths(cmd, f"{prefix}{name} ")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def test_every_cli_command_is_in_the_readme_reference() -> None:
    group = typer.main.get_command(app)
    missing = [p for p in _command_paths(group) if f"`alliance-node {p}" not in README]
    assert not missing
