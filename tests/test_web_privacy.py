"""The member's privacy centre: a link signs in once, every choice is one click each way, receipts,
data, corrections, the phone number and erasure do what the API does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_fixtures import PARTNER, Site, csrf_of, open_site

from compliance.receipts import verify_receipt


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = open_site(tmp_path)
    yield s
    s.node.dispose()


def _consent(c: TestClient, purpose: str, action: str) -> None:
    csrf = csrf_of(c.get("/privacy").text)
    r = c.post("/privacy/consents", data={"csrf": csrf, "purpose": purpose, "action": action})
    assert r.status_code == 303, r.text


def test_a_privacy_link_signs_the_member_in_with_a_strict_httponly_cookie(site: Site) -> None:
    r = site.client().get(site.privacy_link("M-1"))
    cookie = r.headers["set-cookie"]
    assert r.status_code == 200
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/privacy" in cookie


def test_a_privacy_link_works_once(site: Site) -> None:
    link = site.privacy_link("M-1")
    assert site.client().get(link).status_code == 200
    assert site.client().get(link).status_code == 401


def test_a_forged_link_signs_nobody_in(site: Site) -> None:
    assert site.client().get("/privacy/enter?token=not-a-token").status_code == 401


def test_without_a_session_the_centre_asks_for_the_apps_link(site: Site) -> None:
    r = site.client().get("/privacy")
    assert r.status_code == 401
    assert "链接只能使用一次" in r.text


def test_the_centre_speaks_chinese_by_default_and_english_on_request(site: Site) -> None:
    c = site.member()
    assert "您的授权" in c.get("/privacy").text
    assert "Your choices" in c.get("/privacy?lang=en").text
    assert "Your choices" in c.get("/privacy").text  # the choice is remembered


def test_every_optional_purpose_is_shown_with_its_title_and_explanation(site: Site) -> None:
    page = site.member().get("/privacy?lang=en").text
    assert "News and offers by message." in page  # the notice's explanation of marketing
    assert "Train alliance models" in page  # the catalogue's title of joint_modeling
    assert "loyalty.core" not in page  # the contract's own purpose needs no choice


def test_every_partner_brand_is_listed_before_any_choice(site: Site) -> None:
    page = site.member().get("/privacy").text
    assert f"points_exchange:{PARTNER}" in page
    assert f"joint_modeling:{PARTNER}" in page


def test_granting_records_consent_and_shows_the_signed_receipt(site: Site) -> None:
    c = site.member()
    _consent(c, "marketing", "grant")
    assert site.node.consent.decisions("M-1")["marketing"].allowed
    page = c.get("/privacy/receipts").text
    assert 'id="latest"' in page
    assert "marketing" in page


def test_withdrawing_is_one_click_like_granting(site: Site) -> None:
    c = site.member()
    _consent(c, "marketing", "grant")
    _consent(c, "marketing", "withdraw")
    assert not site.node.consent.decisions("M-1")["marketing"].allowed


def test_a_downloaded_receipt_verifies_with_the_nodes_key(site: Site) -> None:
    c = site.member()
    _consent(c, f"points_exchange:{PARTNER}", "grant")
    signed = c.get("/privacy/receipts/1.txt").text
    content = verify_receipt(signed, site.node.signer.verifier())
    assert content["purposes"][0]["purpose"] == f"points_exchange:{PARTNER}"


def test_the_receipt_check_accepts_a_real_receipt_and_refuses_a_tampered_one(site: Site) -> None:
    c = site.member()
    _consent(c, "marketing", "grant")
    signed = c.get("/privacy/receipts/1.txt").text
    csrf = csrf_of(c.get("/privacy/receipts").text)
    good = c.post("/privacy/receipts/check", data={"csrf": csrf, "receipt": signed})
    bad = c.post("/privacy/receipts/check", data={"csrf": csrf, "receipt": signed.replace("grant", "grunt")})
    assert "本节点签发" in good.text
    assert "签名无效" in bad.text


def test_my_data_makes_an_access_request_and_offers_the_json(site: Site) -> None:
    c = site.member()
    r = c.post("/privacy/data", data={"csrf": csrf_of(c.get("/privacy/data").text)})
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    download = c.get(r.headers["location"] + ".json")
    assert download.headers["content-disposition"].startswith("attachment")
    assert all(f">{section}</h2>" in page for section in json.loads(download.text))
    assert [q.kind.value for q in site.node.rights.requests("M-1")] == ["access"]


def test_a_correction_changes_the_date_of_birth(site: Site) -> None:
    c = site.member()
    c.post("/privacy/corrections", data={"csrf": csrf_of(c.get("/privacy").text), "birth_date": "1990-02-03"})
    assert str(site.node.consent.store.member("M-1").birth_date) == "1990-02-03"


def test_a_bad_phone_number_is_explained_not_a_500(site: Site) -> None:
    c = site.member()
    r = c.post("/privacy/phone", data={"csrf": csrf_of(c.get("/privacy").text), "phone": "12"})
    assert r.status_code == 303
    assert "phone" in c.get("/privacy?lang=en").text.lower()
    assert site.node.consent.store.member("M-1").phone is None


def test_a_phone_number_is_stored_normalised(site: Site) -> None:
    c = site.member()
    c.post("/privacy/phone", data={"csrf": csrf_of(c.get("/privacy").text), "phone": "138 0013 8000"})
    assert site.node.consent.store.member("M-1").phone == "+8613800138000"


def test_erasure_needs_the_confirmation(site: Site) -> None:
    c = site.member()
    c.post("/privacy/erase", data={"csrf": csrf_of(c.get("/privacy/erase").text)})
    assert site.node.consent.store.member("M-1") is not None


def test_erasure_erases_and_ends_the_session(site: Site) -> None:
    c = site.member()
    r = c.post("/privacy/erase", data={"csrf": csrf_of(c.get("/privacy/erase").text), "confirm": "yes"})
    assert r.status_code == 200
    assert "已删除" in r.text
    assert site.node.consent.store.member("M-1") is None
    assert c.get("/privacy").status_code == 401


def test_revoking_the_members_tokens_ends_their_page_session(site: Site) -> None:
    c = site.member()
    site.node.member_tokens.revoke("M-1")
    assert c.get("/privacy").status_code == 401


def test_without_personalization_the_churn_page_says_no_risk_is_computed(site: Site) -> None:
    assert "不为您单独计算风险" in site.member().get("/privacy/churn").text


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    c = site.member()
    r = c.post("/privacy/consents", data={"purpose": "marketing", "action": "grant"})
    assert r.status_code == 403
    assert not site.node.consent.decisions("M-1")["marketing"].allowed


def test_a_form_from_another_origin_is_refused(site: Site) -> None:
    c = site.member()
    csrf = csrf_of(c.get("/privacy").text)
    data = {"csrf": csrf, "purpose": "marketing", "action": "grant"}
    r = c.post("/privacy/consents", data=data, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_one_member_never_sees_anothers_receipts(site: Site) -> None:
    _consent(site.member("M-1"), "marketing", "grant")
    assert site.member("M-2").get("/privacy/receipts/1.txt").status_code == 404


def test_signing_out_ends_the_session(site: Site) -> None:
    c = site.member()
    c.post("/privacy/sign-out", data={"csrf": csrf_of(c.get("/privacy").text)})
    assert c.get("/privacy").status_code == 401
