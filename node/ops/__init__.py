"""Running a node as a service: logging with request ids, Prometheus metrics, readiness checks and
the scheduled daily duties that ``serve`` runs."""
