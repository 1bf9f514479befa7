"""Counts of the exchanges a node holds, by direction, partner brand and state (for the dashboard)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from node.exchange.store import ExchangeInRow, ExchangeOutRow


def tally(engine: Engine) -> list[tuple[str, str, str, int]]:
    """How many exchanges this node holds by direction (``out``/``in``), partner brand and state."""
    out, inc = ExchangeOutRow.__table__, ExchangeInRow.__table__
    with engine.connect() as conn:
        rows = [
            ("out", *r)
            for r in conn.execute(
                select(out.c.destination, out.c.state, func.count()).group_by(out.c.destination, out.c.state)
            )
        ]
        rows += [
            ("in", *r)
            for r in conn.execute(select(inc.c.source, inc.c.state, func.count()).group_by(inc.c.source, inc.c.state))
        ]
    return sorted((d, p, s, int(n)) for d, p, s, n in rows)
