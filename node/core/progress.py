"""One look for every progress bar the node's commands show."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(console: Console, *, transient: bool = False, remaining: bool = False) -> Progress:
    """A bar with description, count and elapsed time (and the time left, if ``remaining``); silent
    when ``console`` is not a terminal and ``transient`` (so piped output stays clean)."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, transient=transient, disable=transient and not console.is_terminal)
