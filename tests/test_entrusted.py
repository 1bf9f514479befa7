"""An entrusted host (PIPL-ROLE-02, Art. 21): a party hosting the node for a brand, under a recorded contract.

Its role watches the node and reads no personal information (the API's walk is in tests/test_roles.py, the
pages' in tests/test_web_roles.py; here the console pages' content); its key exists only under a contract in
force; the contract names its purpose, term, method, categories and protections, and no subcontractor without
the brand's consent; the audit trail cites it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from entrustment_fixtures import EXAMPLE, contract
from pydantic import ValidationError
from typer.testing import CliRunner
from web_fixtures import Site, open_site, routes_of

from compliance.audit import AuditTrail
from compliance.entrustment import ENTRUSTMENT_FILE, Entrustment, load_entrustment
from node.cli.main import app
from node.core.auth import Role
from node.core.datadir import init_node
from node.runtime import Node

runner = CliRunner()
TODAY = datetime.now(UTC).date()


def _contract_file(tmp_path: Path, start_days: int = -30, end_days: int = 365) -> Path:
    """The example contract as a TOML file, its term moved to run from ``start_days`` to ``end_days`` from today."""
    text = re.sub(r"(?m)^valid_from = .*$", f"valid_from = {TODAY + timedelta(days=start_days)}", EXAMPLE)
    text = re.sub(r"(?m)^valid_until = .*$", f"valid_until = {TODAY + timedelta(days=end_days)}", text)
    path = tmp_path / "contract.toml"
    path.write_text(text)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A node with a compliance officer "chen" and an operator "olga", closed (the CLI opens it)."""
    d = tmp_path / "node"
    init_node(d, "n.example")
    node = Node.open(d)
    node.staff_keys.issue("chen", Role.COMPLIANCE)
    node.staff_keys.issue("olga", Role.OPERATOR)
    node.dispose()
    return d


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _audit_events(d: Path) -> list[Any]:
    node = Node.open(d, recover=False)
    try:
        return [e for _, e in AuditTrail(node.store.log("audit"), "n.example").events()]
    finally:
        node.dispose()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The web fixtures' node with a member of each kind: a birth date, a guardian, a phone, consent, points."""
    s = open_site(tmp_path)
    s.node.consent.register_member("LEAK-7731", datetime(1990, 2, 3, tzinfo=UTC).date())
    s.node.consent.register_member("KID-5521", datetime(2016, 5, 6, tzinfo=UTC).date(), guardian_ref="GUARD-8842")
    s.node.consent.set_phone("M-1", "13800138000")
    yield s
    s.node.dispose()


def _pages(site: Site) -> list[str]:
    """Every page of the site a GET reaches, parameters filled with plausible values."""
    values = {"pia_id": "pia-1", "feature": "personalization", "n": "1", "request_id": "dsr-1"}
    return sorted(
        re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], route.path)
        for route in routes_of(site.app)
        if not route.include_in_schema and "GET" in route.methods
    )


def test_a_host_sees_no_identifier_or_birth_date_on_any_console_page(site: Site) -> None:
    identifiers = ["M-1", "M-2", "LEAK-7731", "KID-5521", "GUARD-8842", "1990-02-03", "2016-05-06", "13800138000"]
    identifiers += [site.node.keyring.pseudonym(ref, create=False) for ref in ("M-1", "M-2", "LEAK-7731", "KID-5521")]
    browser = site.staff(site.host)
    opened = []
    for path in _pages(site):
        r = browser.get(path)
        if r.status_code == 200:
            opened.append(path)
        assert not [i for i in identifiers if i in r.text and i not in path], (path, r.status_code)
    assert {"/console", "/console/features", "/console/logs"} <= set(opened)  # what a host is for: watching


def test_a_host_watches_health_readiness_metrics_and_switches_through_the_api(site: Site) -> None:
    c, host = site.client(), site.api(site.host)
    for path in ("/health", "/ready", "/metrics", "/v1/features", "/v1/logs"):
        assert c.get(path, headers=host).status_code == 200, path
    assert c.get("/v1/members/M-1/wallet", headers=host).status_code == 403


def test_a_host_key_is_issued_only_under_an_entrustment_contract_in_force(data_dir: Path, tmp_path: Path) -> None:
    d = str(data_dir)
    refused = _cli("staff", "add", "--name", "hugo", "--role", "host", "--data-dir", d)
    assert refused.exit_code == 1
    assert "contract in force" in refused.output
    expired = _contract_file(tmp_path, start_days=-400, end_days=-1)
    assert _cli("entrustment", "set", str(expired), "--as", "chen", "--data-dir", d).exit_code == 0
    assert _cli("staff", "add", "--name", "hugo", "--role", "host", "--data-dir", d).exit_code == 1
    assert _cli("entrustment", "set", str(_contract_file(tmp_path)), "--as", "chen", "--data-dir", d).exit_code == 0
    issued = _cli("staff", "add", "--name", "hugo", "--role", "host", "--data-dir", d)
    assert issued.exit_code == 0, issued.output
    node = Node.open(data_dir)
    try:
        assert node.staff_keys.check(issued.output.strip()).role is Role.HOST
    finally:
        node.dispose()


def test_the_recorded_contract_is_cited_as_the_entrusted_recipient_in_the_audit_trail(
    data_dir: Path, tmp_path: Path
) -> None:
    d = str(data_dir)
    assert _cli("entrustment", "set", str(_contract_file(tmp_path)), "--as", "chen", "--data-dir", d).exit_code == 0
    assert _cli("staff", "add", "--name", "hugo", "--role", "host", "--data-dir", d).exit_code == 0
    cited = [(e.action, e.recipient) for e in _audit_events(data_dir) if e.recipient is not None]
    assert [(a, r.id, r.role, r.contract_id) for a, r in cited] == [
        ("config.change", "Example Cloud Hosting Co., Ltd.", "entrusted", "HOST-2026-001"),
        ("key.create", "Example Cloud Hosting Co., Ltd.", "entrusted", "HOST-2026-001"),
    ]
    assert load_entrustment(data_dir) == Entrustment.model_validate_json((data_dir / ENTRUSTMENT_FILE).read_text())


def test_only_a_compliance_officer_records_the_contract(data_dir: Path, tmp_path: Path) -> None:
    r = _cli("entrustment", "set", str(_contract_file(tmp_path)), "--as", "olga", "--data-dir", str(data_dir))
    assert r.exit_code == 1
    assert "holds no active compliance key" in r.output
    assert not (data_dir / ENTRUSTMENT_FILE).exists()


@pytest.mark.parametrize("term", ["contract_id", "party", "purpose", "method", "pi_categories", "protections"])
def test_a_contract_without_one_of_its_terms_is_refused_naming_it(term: str) -> None:
    terms = contract().model_dump()
    del terms[term]
    with pytest.raises(ValidationError, match=term):
        Entrustment.model_validate(terms)


def test_a_contract_ending_before_it_begins_is_refused() -> None:
    with pytest.raises(ValidationError, match="valid_until is before valid_from"):
        contract(valid_from=TODAY, valid_until=TODAY - timedelta(days=1))


def test_a_contract_naming_an_unknown_pi_category_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown PI categories"):
        contract(pi_categories=["contact.basic", "shoe.size"])


def test_no_subcontractor_is_entrusted_without_the_brands_consent() -> None:
    with pytest.raises(ValidationError, match="brand_consent"):
        contract(subcontractors=[{"name": "Backup Storage Co."}])
    allowed = contract(subcontractors=[{"name": "Backup Storage Co.", "brand_consent": "BRAND-CONSENT-7"}])
    assert allowed.subcontractors[0].brand_consent == "BRAND-CONSENT-7"
