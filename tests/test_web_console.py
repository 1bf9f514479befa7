"""The compliance console and the operator's dashboard: the same services and role rules as the API."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from compliance_fixtures import PIA
from web_fixtures import Site, csrf_of, open_site

from compliance.audit import AuditFilter
from compliance.audit_bundle import verify_bundle
from compliance.consent import ConsentAction
from compliance.pia import Feature


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = open_site(tmp_path)
    s.node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    yield s
    s.node.dispose()


def test_signing_in_with_a_staff_key_opens_a_strict_httponly_session(site: Site) -> None:
    r = site.client().post("/console/sign-in", data={"key": site.officer})
    cookie = r.headers["set-cookie"]
    assert r.status_code == 303
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie


def test_a_wrong_key_is_refused_politely(site: Site) -> None:
    r = site.client().post("/console/sign-in", data={"key": "ank_wrong"})
    assert r.status_code == 401
    assert "not a valid staff key" in r.text


def test_a_member_token_does_not_open_the_console(site: Site) -> None:
    token = site.node.member_tokens.issue("M-1")
    assert site.client().post("/console/sign-in", data={"key": token}).status_code == 401


def test_without_a_session_the_console_sends_to_sign_in(site: Site) -> None:
    r = site.client().get("/console/audit")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/sign-in?next=/console/audit"


def test_sign_in_goes_on_only_to_a_console_page(site: Site) -> None:
    r = site.client().post("/console/sign-in", data={"key": site.officer, "next": "https://evil.example/"})
    assert r.headers["location"] == "/console"


def test_the_audit_search_shows_what_the_filter_selects(site: Site) -> None:
    page = site.staff(site.officer).get("/console/audit?action=consent.grant").text
    assert "consent.grant" in page
    assert "1 event(s)" in page


def test_a_bad_filter_is_explained(site: Site) -> None:
    page = site.staff(site.officer).get("/console/audit?action=nonsense.").text
    assert "bad filter" in page


def test_the_downloaded_bundle_verifies_offline_and_its_export_is_audited(site: Site) -> None:
    c = site.staff(site.officer)
    r = c.get("/console/audit/bundle.jsonl?action=consent.")
    assert r.status_code == 200
    report = verify_bundle(io.BytesIO(r.content), site.node.signer.verifier())
    assert report.count >= 1
    assert "audit.export" in c.get("/console/audit?action=audit.export").text


def test_the_csv_holds_one_row_per_event_for_spreadsheets(site: Site) -> None:
    r = site.staff(site.officer).get("/console/audit/events.csv?action=consent.grant")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["action"] for row in rows] == ["consent.grant"]
    assert rows[0]["purpose"] == "marketing"


def test_the_rights_queue_lists_open_requests_with_deadlines(site: Site) -> None:
    page = site.staff(site.officer).get("/console/requests").text
    assert "0 open" in page


def test_the_author_of_an_assessment_cannot_approve_it_and_a_second_officer_can(site: Site) -> None:
    author = site.staff(site.officer)
    text = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in PIA.items())
    author.post(
        "/console/pia", data={"csrf": csrf_of(author.get("/console/pia").text), "assessment": text, "id": "pia-x"}
    )
    author.post("/console/pia/pia-x/approval", data={"csrf": csrf_of(author.get("/console/pia").text)})
    assert "four" in author.get("/console/pia").text.lower()
    assert site.node.pia.all()[0].approver is None
    second = site.staff(site.second_officer)
    second.post("/console/pia/pia-x/approval", data={"csrf": csrf_of(second.get("/console/pia").text)})
    assert site.node.pia.all()[0].approver == "wang"


def test_an_unreadable_assessment_is_explained(site: Site) -> None:
    c = site.staff(site.officer)
    c.post("/console/pia", data={"csrf": csrf_of(c.get("/console/pia").text), "assessment": "title = "})
    assert "could not be read" in c.get("/console/pia").text


def test_an_operator_switches_a_feature_off(site: Site) -> None:
    c = site.staff(site.operator)
    c.post(
        "/console/features/points_exchange", data={"csrf": csrf_of(c.get("/console/features").text), "enabled": "false"}
    )
    assert not site.node.pia.switches()[Feature.POINTS_EXCHANGE][0]


def test_a_legal_hold_is_placed_and_released(site: Site) -> None:
    c = site.staff(site.officer)
    csrf = csrf_of(c.get("/console/retention").text)
    c.post("/console/retention/hold", data={"csrf": csrf, "member": "M-1", "reason": "case 7"})
    assert len(site.node.retention.held()) == 1
    c.post("/console/retention/release", data={"csrf": csrf, "member": "M-1"})
    assert site.node.retention.held() == set()


def test_the_logs_page_shows_each_log_and_its_checkpoint(site: Site) -> None:
    page = site.staff(site.operator).get("/console/logs").text
    assert all(f">{name}</h2>" in page for name in site.node.store.log_names())


def test_the_dashboard_draws_its_charts_on_the_node(site: Site) -> None:
    page = site.staff(site.operator).get("/console/dashboard").text
    assert page.count('<svg class="chart" role="img"') == 5
    assert "marketing: 1" in page  # the consent mix, also in words for screen readers


def test_the_report_page_shows_the_live_report(site: Site) -> None:
    assert "Impact assessment" in site.staff(site.officer).get("/console/pia/report").text


def test_signing_out_ends_the_staff_session(site: Site) -> None:
    c = site.staff(site.officer)
    c.post("/console/sign-out", data={"csrf": csrf_of(c.get("/console").text)})
    assert c.get("/console").status_code == 303


def test_a_sign_in_sent_from_another_site_is_refused(site: Site) -> None:
    r = site.client().post("/console/sign-in", data={"key": site.officer}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_the_logs_page_says_so_when_the_chain_does_not_answer(site: Site) -> None:
    site.node.settings.chain_rpc_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    site.node.settings.chain_anchor_address = "0x" + "11" * 20
    site.node.settings.chain_account = "0x" + "22" * 20
    r = site.staff(site.operator).get("/console/logs")
    assert r.status_code == 200
    assert "the chain did not answer" in r.text


def test_an_assessment_id_the_api_would_refuse_is_refused(site: Site) -> None:
    c = site.staff(site.officer)
    text = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in PIA.items())
    c.post("/console/pia", data={"csrf": csrf_of(c.get("/console/pia").text), "assessment": text, "id": "a/b?c"})
    assert site.node.pia.all() == []
    assert "1 to 80 letters" in c.get("/console/pia").text


def test_an_assessment_nested_too_deep_is_explained_not_a_500(site: Site) -> None:
    c = site.staff(site.officer)
    deep = "[" * 5000 + "]" * 5000
    r = c.post("/console/pia", data={"csrf": csrf_of(c.get("/console/pia").text), "assessment": '{"a": ' + deep + "}"})
    assert r.status_code == 303
    assert "could not be read" in c.get("/console/pia").text


def test_searching_the_trail_on_the_page_is_itself_audited(site: Site) -> None:
    site.staff(site.officer).get("/console/audit?member=M-1")
    (event,) = [e for _, e in site.node.audit.select(AuditFilter(action="audit.export"))]
    assert event.details["format"] == "page"
