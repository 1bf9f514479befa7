"""Nodes served as separate processes on 127.0.0.1: for the demo, the benchmarks and the crash tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stop ``proc``: SIGTERM (uvicorn shuts down cleanly), then SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


@dataclass
class ServerProcess:
    """``alliance-node serve`` for one data directory, in its own process on 127.0.0.1."""

    data_dir: Path
    port: int
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    jobs: bool = False  # the daily duties: off for the demo's and the tests' short-lived servers
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where it answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, **env: str) -> ServerProcess:
        """Start the server (extra environment for this run only) and wait until /health answers."""
        cmd = [sys.executable, "-m", "node", "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port)] + ([] if self.jobs else ["--no-jobs"])
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env, **env},
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Block until /health answers, or raise with the end of the server's log."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on /health after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def wait_dead(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; return whether it did."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """Stop it cleanly (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            stop_process(self.proc)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's output, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
