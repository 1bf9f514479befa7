"""``/metrics`` in the Prometheus exposition format (``prometheus_client``): HTTP traffic by route,
and the node's own state read at scrape time (:mod:`node.ops.node_metrics`).

Each app has a registry of its own, not the library's global one: tests build many apps in one
process, and a node's numbers must never mix with another's. No metric carries a member, a token or
any other personal datum; labels are routes, methods, statuses, states, purposes and log names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from node.chain.anchoring import Anchorer
from node.core.periodic import JobRuns
from node.ops.jobs import job_metrics
from node.ops.node_metrics import NodeCollector
from node.runtime import Node

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

#: Latency buckets (seconds): a peer exchange takes tens of milliseconds, a settlement call seconds.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One node's metrics: the HTTP counters the access middleware feeds, and the node's collector."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "alliance_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "alliance_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        #: the anchoring loop's anchorer while ``serve`` anchors (set by the app's lifespan)
        self.anchorer: Anchorer | None = None
        runs = JobRuns(node.store.engine)
        self.registry.register(
            NodeCollector(
                node,
                lambda: self.anchorer.seen if self.anchorer is not None else None,
                lambda: list(job_metrics(runs)),
            )
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (called by :class:`node.ops.access.RequestContext`)."""
        method = method if method in METHODS else "other"  # a client's made-up method is not a new series
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """Every metric, in the text format Prometheus scrapes."""
        return generate_latest(self.registry)
