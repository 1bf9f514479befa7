"""Consent receipts and the example notice speak Chinese, where members read them; English stays an option."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from compliance.consent import ConsentAction, ConsentRecord
from compliance.purposes import catalogue
from compliance.receipts import build_receipt
from node.core.datadir import init_node
from node.demo.consent import notice_for
from node.runtime import Node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    base = tmp_path_factory.mktemp("lang")
    init_node(base / "n", "lang.alliance.example")
    opened = Node.open(base / "n")
    yield opened
    opened.dispose()


def _record(purpose: str) -> ConsentRecord:
    return ConsentRecord(
        consent_id="c" * 32,
        member="a" * 64,
        purpose_code=purpose,
        action=ConsentAction.GRANT,
        notice_version=1,
        notice_sha256="0" * 64,
        at=datetime(2026, 12, 6, tzinfo=UTC),
        actor="member",
        collection_method="app",
    )


def test_the_example_notice_is_in_chinese_by_default(node: Node) -> None:
    notice = notice_for(node, ["shop.alliance.example"])
    assert notice.language == "zh-CN"
    assert notice.purposes["loyalty.core"].description == "运营会员积分计划"


def test_the_example_notice_is_available_in_english(node: Node) -> None:
    notice = notice_for(node, ["shop.alliance.example"], language="en")
    assert notice.purposes["loyalty.core"].description == "Run the loyalty programme"


@pytest.mark.parametrize(("language", "expected"), [("zh-CN", "title_zh"), ("en", "title")])
def test_a_receipts_purpose_titles_follow_the_notices_language(node: Node, language: str, expected: str) -> None:
    receipt = build_receipt([_record("marketing")], notice_for(node, [], language=language), node.settings.node_id)
    assert receipt["language"] == language
    assert receipt["purposes"][0]["purposeTitle"] == getattr(catalogue().purpose("marketing"), expected)
