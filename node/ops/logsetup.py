"""One logging setup for ``serve`` and the command line: the node's own loggers at INFO, plain text or
JSON lines, and the current request's id on every line.

The id lives in a context variable set by :class:`node.ops.access.RequestContext`; FastAPI copies the
context into the threads that run the routes, so a line logged deep in the exchange path still names
the request it serves. Lines logged outside a request (recovery, scheduled jobs) carry ``-``.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
#: The loggers of this project (every module logs under one of these names).
OWN_LOGGERS = ("alliance", "node", "ledger", "compliance", "federation")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
NO_REQUEST = "-"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

request_id: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (``-`` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``record.request_id`` and let the record through."""
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter for ``fmt``: a readable line, or one JSON object per line with any ``extra`` fields."""
    if fmt == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp=False)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(fmt: LogFormat = "text", level: str = "INFO", stream: object = None) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) in ``fmt``; the project's loggers at ``level``.

    Replaces handlers installed by an earlier call, so calling it twice (the CLI, then ``serve``)
    leaves one handler. uvicorn's own loggers propagate here too: ``serve`` passes uvicorn no logging
    configuration of its own and writes the access log itself.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_alliance", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler._alliance = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)  # other libraries: warnings and errors only
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(logging.INFO)
    return handler


def from_environment() -> tuple[LogFormat, str]:
    """The format and level the command line logs at: ``ALLIANCE_LOG_FORMAT`` and ``ALLIANCE_LOG_LEVEL``."""
    fmt = os.environ.get("ALLIANCE_LOG_FORMAT", "text").strip().lower()
    level = os.environ.get("ALLIANCE_LOG_LEVEL", "INFO").strip().upper()
    level = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)  # as node.toml's log_level reads them
    return ("json" if fmt == "json" else "text"), (level if level in LEVELS else "INFO")
