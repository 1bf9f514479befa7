"""The HTTP API: the FastAPI app, typed dependencies, routers, and errors as RFC 9457 problems.

Routers are thin: they parse, call one service of the runtime, and shape the answer. Refusals
raised below carry reason codes; ``problems`` alone turns them into HTTP statuses. ``bodies``
guards every request before a route sees it (a body cap per route family, credentials and peer
signatures checked before a body is read or parsed), ``ratelimits`` keeps the budgets of members'
audited actions and of failed sign-ins, and ``openapi`` declares each operation's problems in the
OpenAPI document.
"""
