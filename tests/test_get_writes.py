"""GET requests change nothing, except the reads the audit trail must record (the README lists them).

PIPL asks a handler to record automated decisions about a person (Art. 24), refusals to use
their data, and exports of the audit trail itself; those GETs append audit events and nothing
else (an automated decision also keeps its record, so that the member can contest it: a GET of a
churn score with consent, which this world has not given). Every other GET leaves the node's
database exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from api_fixtures import Api, serve
from sqlalchemy import inspect, select, text
from test_roles import ENDPOINTS, MEMBER, OPERATOR, PUBLIC

from compliance.audit import AuditEvent
from node.demo.alliance import BrandSpec, create_alliance
from node.runtime import Node

#: The GETs that append audit events, and the actions they append (as the README says).
AUDITED_GETS: dict[str, set[str]] = {
    "/v1/members/M-1/gate/loyalty.core": set(),  # allowed: nothing to record; a refusal is gate.denied
    "/v1/members/M-1/gate/marketing": {"gate.denied"},
    "/v1/me/churn-risk": {"gate.denied"},  # without consent; with it, adm.decide and the decision's record
    "/v1/members/at-risk": {"gate.denied"},  # switched off; when on, adm.decide
    "/v1/audit/bundle?action=consent.": {"audit.export"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    base = tmp_path_factory.mktemp("gets")
    create_alliance(base, [BrandSpec("air", "Air", Decimal(1), Decimal(0), 9)])
    api = serve(Node.open(base / "air"), ("M-1",))
    yield api
    api.node.dispose()


def _snapshot(node: Node) -> dict[str, list[Any]]:
    """Every row of every table of the node's database, the ledger's included."""
    with node.store.engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        return {t: sorted(map(repr, conn.execute(select(text("*")).select_from(text(t))).all())) for t in tables}


def _headers(world: Api, allowed: set[str]) -> dict[str, str]:
    for role, headers in ((MEMBER, world.members["M-1"]), (OPERATOR, world.operator), (PUBLIC, {})):
        if role in allowed:
            return headers
    return world.officer


GETS = [(path, allowed) for method, path, _, allowed in ENDPOINTS if method == "GET"]


@pytest.mark.parametrize(("path", "allowed"), [*GETS, ("/v1/members/M-1/gate/marketing", {OPERATOR})])
def test_a_get_writes_nothing_but_the_audit_events_it_must(world: Api, path: str, allowed: set[str]) -> None:
    before = _snapshot(world.node)
    audit_before = world.node.store.log("audit").size
    world.client.get(path, headers=_headers(world, allowed))
    after = _snapshot(world.node)
    changed = {t for t in after if after[t] != before[t]}
    appended = [AuditEvent.from_bytes(e.data).action for e in world.node.store.log("audit").entries(audit_before)]
    if path in AUDITED_GETS:
        assert set(appended) == AUDITED_GETS[path], (path, appended)
        # besides the events, only the audit log's own indexes move (derived data, caught up by the query)
        indexes = {"compliance_audit_subject", "compliance_audit_action", "compliance_audit_index_mark"}
        assert changed <= {"ledger_entry", "ledger_log", "ledger_checkpoint", *indexes}, changed
    else:
        assert (changed, appended) == (set(), []), path
