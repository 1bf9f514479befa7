"""What every command shares: ``--data-dir``, the consoles, opening the node, clear failures, progress.

Commands import the node's own modules (SQLAlchemy, the runtime, torch) inside their bodies, not
at the top: ``alliance-node ledger verify`` on an auditor's laptop then starts in a fraction of a
second, and ``--help`` never waits for torch.
"""

from __future__ import annotations

import functools
import json
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ledger import note
from ledger.errors import LedgerError
from node import missing_extra
from node.core.progress import progress_bar

if TYPE_CHECKING:
    from node.core.auth import Role
    from node.learning.rows import ChurnWindow
    from node.runtime import Node

WIDE = 100_000  # the width a pipe or file gets: rows are never wrapped or cut for a program or a grep


def console(stderr: bool = False) -> Console:
    """A console for a command's output: the terminal's width on a terminal, otherwise never wrapping."""
    plain = Console(stderr=stderr)
    return plain if plain.is_terminal else Console(stderr=stderr, width=WIDE, soft_wrap=True)


out = console()
err = console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])
HERE = Path(".")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="ALLIANCE_DATA_DIR", help="The node's directory (config, key, database).")
]
LogName = Annotated[str, typer.Option("--log", help="Log name, e.g. audit or exchange.")]
As = Annotated[str, typer.Option("--as", help="Your staff name (it must hold an active staff key).")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line on stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn expected failures into one clear line and a non-zero exit, never a traceback.

    A refusal (an error carrying a ``reason``: the node's, or compliance's) names its reason too.
    """

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if needed := missing_extra(exc):
                fail(needed)
            reason = getattr(exc, "reason", None)
            if isinstance(reason, str):
                message = plain_message(exc)
                fail(message if reason in message else f"{message} [{reason}]")
            if isinstance(exc, (LedgerError, ValueError, LookupError, OSError)):
                fail(plain_message(exc))
            raise

    return wrapper  # type: ignore[return-value]


class OutputFormat(StrEnum):
    """How a list or status command prints: for people, or for programs."""

    TEXT = "text"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="text (for people) or json (for programs; never wrapped).")
]


def print_json(data: object) -> None:
    """Write ``data`` as JSON on stdout, whole: no wrapping, colours or truncation, whatever the terminal."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def emit_rows(
    rows: list[dict[str, Any]], fmt: OutputFormat, line: Callable[[dict[str, Any]], str], empty: str | None = None
) -> None:
    """What a list command prints: the rows as JSON, or one tab-separated ``line`` each (``empty`` if none)."""
    if fmt is OutputFormat.JSON:
        print_json(rows)
        return
    if not rows and empty:
        out.print(empty, highlight=False)
    for r in rows:
        out.print(line(r).rstrip(), highlight=False)


def plain_message(exc: Exception) -> str:
    """What went wrong, in one line for people: a missing file as ``path: No such file or directory``
    (not the errno), a lookup's message without the quotes ``KeyError`` puts around it."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def open_node(data_dir: Path, recover: bool = False) -> Node:
    """Open the node in ``data_dir``; commands run next to a live server, so only ``serve`` recovers
    the audit outbox."""
    from node.runtime import Node

    return Node.open(data_dir, recover=recover)


def read_vkey(value: str) -> note.Verifier:
    """A verifier key given as its text or as a file holding it."""
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    return note.Verifier.from_vkey(text)


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (quiet when stderr is not a terminal); yields an advance(n) callback."""
    with progress_bar(err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def read_toml(file: Path) -> dict[str, object]:
    """A TOML file's content, or a ValueError naming the file and the problem."""
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{file} is not valid TOML: {exc}") from exc


def acting(node: Node, name: str, *roles: Role) -> None:
    """Act as staff member ``name`` for the audit trail, if they hold one of ``roles`` (else exit 1)."""
    from node.core.auth import Caller, current_caller

    held = node.staff_keys.roles_of(name)
    allowed = [r for r in roles if r in held]
    if not allowed:
        wanted = " or ".join(r.value for r in roles)
        fail(f"{name!r} holds no active {wanted} key: see `alliance-node staff add`")
    current_caller.set(Caller(allowed[0], name))


# --- options the learning commands share ----------------------------------------------------

NodesOpt = Annotated[
    list[Path], typer.Option("--node", help="A node's data directory on this machine; repeat per brand.")
]
RunOpt = Annotated[
    str, typer.Option("--run", help="Run name (the privacy record and model versions are kept under it).")
]
EpsilonOpt = Annotated[float, typer.Option("--epsilon", help="The run's epsilon at each brand (within its budget).")]
RoundsOpt = Annotated[int, typer.Option("--rounds", help="Federated rounds.")]
CutoffOpt = Annotated[str | None, typer.Option("--cutoff", help="Features up to this day (ISO); default 180 days ago.")]
HorizonOpt = Annotated[
    str | None,
    typer.Option("--horizon-end", help="Churned = no purchase after the cutoff up to this day; default today."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def window_option(cutoff: str | None, horizon_end: str | None) -> ChurnWindow:
    """The churn window ``--cutoff``/``--horizon-end`` ask for (ISO days; defaults: 180 days ago, today),
    or a clear failure (exit 2)."""
    from node.learning.rows import churn_window

    try:
        return churn_window(
            date.fromisoformat(cutoff) if cutoff else None,
            date.fromisoformat(horizon_end) if horizon_end else None,
            datetime.now(UTC).date(),
        )
    except ValueError as exc:
        fail(f"--cutoff/--horizon-end: {exc}", 2)
