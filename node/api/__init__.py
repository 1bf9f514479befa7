"""The HTTP API: the FastAPI app, typed dependencies, routers, and errors as RFC 9457 problems.

Routers are thin: they parse, call one service of the runtime, and shape the answer. Refusals
raised below carry reason codes; ``problems`` alone turns them into HTTP statuses.
"""
