"""Named crash points for the fault-injection tests, inert unless a test switches them on.

With ``ALLIANCE_FAULT_FILE`` set when the process starts, :func:`point` reads that file each time
it is reached; if the file names this point (names separated by whitespace), the name is removed
from the file and the process kills itself with SIGKILL: no cleanup, no flush, like a power cut.
A file may name several points, so one run can crash a process twice at different steps. Without the
variable (always, outside the tests) a point is one comparison.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_FILE = os.environ.get("ALLIANCE_FAULT_FILE")


def point(name: str) -> None:
    """Die here if the fault file names this point."""
    if _FILE is None:
        return
    path = Path(_FILE)
    try:
        wanted = path.read_text().split()
    except FileNotFoundError:
        return
    if name in wanted:
        wanted.remove(name)  # once: the restarted process runs on to the next point named
        if wanted:
            path.write_text(" ".join(wanted))
        else:
            path.unlink(missing_ok=True)
        os.kill(os.getpid(), signal.SIGKILL)
