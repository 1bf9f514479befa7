"""A background pass run at start and then every few seconds, in a daemon thread (serve's loops)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    """Runs ``step`` now and then every ``interval`` seconds until stopped; a failing pass is logged
    and the next one still runs (a database, peer or chain hiccup must not end the loop)."""

    def __init__(self, name: str, interval: float, step: Callable[[], None], log: logging.Logger) -> None:
        self.name, self.interval, self.step, self.log = name, interval, step, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def stop(self) -> None:
        """Stop it and wait for the pass in progress."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                self.log.exception("%s pass failed", self.name)
            self._stop.wait(self.interval)
