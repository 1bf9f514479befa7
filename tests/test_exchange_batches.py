"""Batched peer calls: many exchanges to one brand in one signed call, each decided and answered on its own."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from exchange_fixtures import STARTING_POINTS, Pair, build_pair

from compliance.consent import ConsentAction
from node.exchange.batches import BATCH_PATH, MAX_BATCH
from node.exchange.quotes import Quote
from node.exchange.records import receipt_valid
from node.peers.signing import sign_request

MEMBERS = [f"b{i}" for i in range(10)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # a long linger so that concurrent exchanges surely share calls (an exchange alone never waits)
    p = build_pair(tmp_path_factory.mktemp("batches"), MEMBERS, env={"ALLIANCE_EXCHANGE_BATCH_LINGER_MS": "100"})
    yield p
    p.close()


def _item(pair: Pair, member: str, points: int = 10, **change: str) -> dict:
    node = pair.node("airline")
    quote, sig = node.exchange_source.quote(member, pair.destination.node_id, points)
    link_id = node.links.link_of(node.consent.member_pseudonym(member), pair.destination.node_id)
    return {"kind": "credit", "quote": quote.to_json(), "quote_sig": sig, "link_id": link_id} | change


def _batch_call(pair: Pair, items: list[dict]) -> httpx.Response:
    signer = pair.node("airline").signer
    url = f"{pair.servers['shop'].base_url}{BATCH_PATH}"
    body = json.dumps({"items": items}).encode()
    request = httpx.Request("POST", url, content=body, headers={"content-type": "application/json"})
    with httpx.Client(timeout=30) as c:
        return c.send(sign_request(request, signer))


def test_concurrent_exchanges_to_one_brand_share_calls_and_each_member_hears_their_own(pair: Pair):
    before = len(pair.batch_sizes())
    members = MEMBERS[:8]
    answers: dict[str, httpx.Response] = {}

    def exchange(member: str, points: int) -> None:
        with pair.client("airline", member) as c:
            answers[member] = c.post("/v1/me/exchanges", json={"to": pair.destination.node_id, "points": points})

    threads = [threading.Thread(target=exchange, args=(m, 10 + i)) for i, m in enumerate(members)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, m in enumerate(members):
        body = answers[m].json()
        assert (answers[m].status_code, body["state"], body["points_given"]) == (201, "confirmed", 10 + i)
        assert pair.balance("airline", m) == STARTING_POINTS - (10 + i)
    calls = pair.batch_sizes()[before:]
    assert sum(calls) == len(members)
    assert len(calls) < len(members), f"every exchange went alone: {calls}"


def test_one_bad_item_never_refuses_the_others_in_its_batch(pair: Pair):
    pair.node("shop").consent.change("b9", [f"points_exchange:{pair.source.node_id}"], ConsentAction.WITHDRAW)
    good, withdrawn = _item(pair, "b8"), _item(pair, "b9")
    forged = _item(pair, "b8", quote_sig=_item(pair, "b8")["quote_sig"])  # another quote's signature
    cancel = {"kind": "cancel", "exchange_id": "c" * 32}
    before = pair.balance("shop", "b8")
    r = _batch_call(pair, [good, withdrawn, forged, cancel])
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["outcome"], x["reason"]) for x in results] == [
        ("credited", None),
        ("refused", "not_linked"),  # withdrawing the consent ended the link
        ("rejected", "bad_signature"),
        ("tombstoned", None),
    ]
    ids = [i.get("exchange_id") or i["quote"]["quote_id"] for i in (good, withdrawn, forged, cancel)]
    assert [x["exchange_id"] for x in results] == ids

    shop = pair.node("shop")
    assert receipt_valid(Quote.from_json(good["quote"]), results[0]["destination_sig"], shop.signer.verifier())
    assert pair.balance("shop", "b8") == before + Quote.from_json(good["quote"]).points_received
    assert shop.incoming.get(forged["quote"]["quote_id"]) is None  # not genuine: nothing recorded


def test_a_batch_is_logged_in_one_append_at_the_destination(pair: Pair, monkeypatch: pytest.MonkeyPatch):
    shop = pair.node("shop")
    appends: list[int] = []
    log = shop.exchange_log.log
    real = log.append
    monkeypatch.setattr(log, "append", lambda items, then=None: appends.append(len(items)) or real(items, then))
    items = [_item(pair, m, 5) for m in MEMBERS[:4]]
    answers = shop.exchange_destination.on_batch(pair.source.node_id, items)
    assert [a.outcome for a in answers] == ["credited"] * 4
    assert appends == [4]


@pytest.mark.parametrize("count", [0, MAX_BATCH + 1])
def test_an_empty_or_oversized_batch_is_refused_whole(pair: Pair, count: int):
    item = {"kind": "cancel", "exchange_id": "d" * 32}
    r = _batch_call(pair, [item] * count)
    assert r.status_code == 422
    assert pair.node("shop").incoming.get("d" * 32) is None
