"""Refusals: what a service or store raises when it will not do what was asked, and why.

A refusal carries a machine-readable ``reason`` (``insufficient_points``, ``not_linked``…) and a
message for people; never an HTTP status. The API turns reasons into statuses in one table
(:data:`node.api.problems.STATUS`), the CLI prints the message, and a peer call carries the
reason back to the node that asked. Each wing names its own kinds (``WalletError``,
``QuoteError``, ``LinkError``…) as subclasses, so a caller can catch exactly the kind it handles.

``compliance`` and ``contracts`` cannot import ``node`` (see docs/architecture.md), so their
refusals keep their own classes and carry a ``reason`` in the same way: the same table maps
compliance's (``ConsentDenied``, ``PiaRefused``, ``RequestRefused``); ``contracts``' ``ChainRefused``
only reaches the CLI, which prints any refusal's message and reason alike.
"""

from __future__ import annotations


class Refused(Exception):
    """A request this node will not carry out: ``reason`` for machines, the message for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
