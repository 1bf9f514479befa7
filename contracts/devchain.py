"""A local anvil node for tests and benchmarks: started on 127.0.0.1, stopped afterwards.

anvil comes from the npm package ``@foundry-rs/anvil`` (``.ci/run`` installs it); where it is not
installed, :func:`anvil` yields None and callers skip, saying so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from contracts.client import Chain

INSTALL_HINT = "anvil is not installed (npm install -g @foundry-rs/anvil)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def anvil(timeout: float = 20.0) -> Iterator[Chain | None]:
    """An anvil chain on a free 127.0.0.1 port (instant mining, ten funded unlocked accounts), or None."""
    exe = shutil.which("anvil")
    if exe is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        chain = None
        while chain is None:
            if proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {proc.returncode}")
            try:
                chain = Chain.connect(f"http://127.0.0.1:{port}", timeout=2)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield chain
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
