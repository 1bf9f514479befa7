"""Crash either node (SIGKILL) at every step of an exchange, restart it, let recovery run.

Each run starts one to four exchanges at once, so most crashes hit a batch: before, during and
after its transaction and its peer call, on either side, and in recovery's batches after restart.
Over 200 seeded runs: every exchange ends confirmed on both sides or cancelled on both; no
credit lands twice; points and money are conserved to the fen; both exchange logs verify and
hold exactly the confirmed exchanges, byte for byte the same on both nodes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from exchange_fixtures import STARTING_POINTS, Pair, build_pair

from node.exchange.protocol import DestinationState, SourceState
from node.exchange.records import CommittedExchange

pytestmark = pytest.mark.slow

RUNS = int(__import__("os").environ.get("ALLIANCE_CRASH_RUNS", "200"))
MEMBERS = [f"crash{i}" for i in range(25)]
SETTLE_S = 30.0

SOURCE_POINTS = [
    "source.before_hold",
    "source.after_hold",
    "source.before_credit_call",
    "source.after_credit_call",
    "source.after_apply",
    "source.after_log",
]
DESTINATION_POINTS = ["destination.before_credit", "destination.after_credit", "destination.after_log"]
# the cancel path: the destination dies before crediting, so the source must cancel; then a crash
# on either side while the cancel is answered or recorded
CANCEL_SCENARIOS = [
    {"shop": ["destination.before_credit", "destination.before_cancel"]},
    {"shop": ["destination.before_credit", "destination.after_cancel"]},
    {"shop": ["destination.before_credit"], "airline": ["source.before_cancel_call"]},
    {"shop": ["destination.before_credit"], "airline": ["source.after_cancel_call"]},
    {"shop": ["destination.after_credit"], "airline": ["source.after_cancel_call"]},
    {"shop": ["destination.after_credit"]},  # credited, then the cancel learns of the credit
]
SCENARIOS: list[dict[str, list[str]]] = (
    [{"airline": [p]} for p in SOURCE_POINTS] + [{"shop": [p]} for p in DESTINATION_POINTS] + CANCEL_SCENARIOS
)


PAIRS = 2  # independent pairs crash and restart side by side: restarts are mostly imports, one core each


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Pair]]:
    # a linger long enough that a run's exchanges share one batch call
    env = {"ALLIANCE_EXCHANGE_BATCH_LINGER_MS": "50"}
    built = [
        build_pair(tmp_path_factory.mktemp(f"crash{i}"), MEMBERS, fault_files=True, env=env) for i in range(PAIRS)
    ]
    yield built
    for p in built:
        p.close()


def _fault_file(pair: Pair, key: str):  # type: ignore[no-untyped-def]
    return pair.base / f"{key}.faults"


def _settled(pair: Pair) -> bool:
    src, dst = pair.node("airline"), pair.node("shop")
    return not (src.outgoing.unfinished() or src.outgoing.unlogged() or dst.incoming.unlogged())


def _run(pair: Pair, seed: int, kills: dict[str, int]) -> None:
    rng = random.Random(seed)
    scenario = SCENARIOS[seed % len(SCENARIOS)]
    members = rng.sample(MEMBERS, rng.randint(1, 4))
    quotes = {}
    for member in members:
        with pair.client("airline", member) as c:
            quotes[member] = c.post(
                "/v1/me/exchange-quotes", json={"to": pair.destination.node_id, "points": rng.randint(1, 300)}
            ).json()
    for key, points in scenario.items():
        _fault_file(pair, key).write_text(" ".join(points))

    def exchange(member: str) -> None:
        try:
            with pair.client("airline", member) as c:
                c.post("/v1/me/exchanges", json=quotes[member])
        except httpx.TransportError:
            pass  # the source died while answering

    started = [threading.Thread(target=exchange, args=(m,)) for m in members]
    for t in started:
        t.start()
    for t in started:
        t.join(SETTLE_S)
    deadline = time.monotonic() + SETTLE_S
    while True:
        for key, server in pair.servers.items():
            if not server.alive():
                kills[key] += 1
                # not waiting for /health: a peer's retry may crash it again at a named point
                # before it answers, and the next pass of this loop restarts it once more
                server.start(wait=False)  # recovery runs at start-up and every 0.2 s
        # every point named was reached (the file is consumed just before the kill), the
        # processes stay up, and nothing is left to resume or to log
        pending = [k for k in scenario if _fault_file(pair, k).exists()]
        if not pending and _settled(pair):
            time.sleep(0.3)
            if all(s.alive() for s in pair.servers.values()) and _settled(pair):
                try:
                    for s in pair.servers.values():
                        s.wait_ready(timeout=SETTLE_S)  # the next run talks to them
                except RuntimeError:
                    continue  # it died meanwhile (a late retry hit a point): restart on the next pass
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"run {seed} ({scenario}) did not settle in {SETTLE_S} s; unreached: {pending}")
        time.sleep(0.05)


@pytest.mark.timeout(1800)
def test_every_crash_at_every_step_ends_consistent_on_both_nodes(pairs: list[Pair]):
    kills = [{"airline": 0, "shop": 0} for _ in pairs]
    errors: list[BaseException] = []

    def runs(k: int) -> None:
        try:
            for seed in range(k, RUNS, len(pairs)):
                _run(pairs[k], seed, kills[k])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=runs, args=(k,)) for k in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert sum(k["airline"] for k in kills) >= RUNS // 3, kills
    assert sum(k["shop"] for k in kills) >= RUNS // 3, kills
    for pair in pairs:
        _check_consistent(pair)
    sizes = [n for pair in pairs for n in pair.batch_sizes()]
    assert max(sizes) > 1, "no run's exchanges shared a batch: the batch paths went untested"


def _check_consistent(pair: Pair) -> None:
    src, dst = pair.node("airline"), pair.node("shop")
    outgoing = {o.exchange_id: o for o in _all_outgoing(pair)}
    assert not [o for o in outgoing.values() if o.state not in (SourceState.CONFIRMED, SourceState.CANCELLED)]
    confirmed = {i for i, o in outgoing.items() if o.state is SourceState.CONFIRMED}
    for exchange_id, out in outgoing.items():
        incoming = dst.incoming.get(exchange_id)
        if out.state is SourceState.CONFIRMED:
            assert incoming is not None, exchange_id
            assert incoming.state is DestinationState.CREDITED, exchange_id
        else:
            assert incoming is None or incoming.state is DestinationState.TOMBSTONED, exchange_id
    # points: every member's source balance lost exactly what was confirmed; the destination got exactly that
    today = datetime.now(UTC).date()
    for m in MEMBERS:
        mine = [o for o in outgoing.values() if o.member == src.consent.member_pseudonym(m)]
        given = sum(o.quote.points_given for o in mine if o.state is SourceState.CONFIRMED)
        received = sum(o.quote.points_received for o in mine if o.state is SourceState.CONFIRMED)
        assert src.wallets.balance(src.consent.member_pseudonym(m), today) == STARTING_POINTS - given, m
        assert dst.wallets.balance(dst.consent.member_pseudonym(m), today) == received, m
    # money: each confirmed exchange's value splits into fee, credit and remainder to the fen
    for i in confirmed:
        q = outgoing[i].quote
        assert q.value_fen == q.fee_fen + q.credited_fen + q.remainder_fen
    # logs: both verify, and hold the confirmed exchanges once each, the same bytes on both nodes
    logs = {}
    for node in (src, dst):
        log = node.store.log("exchange")
        assert log.recompute() == log.head()
        entries = [e.data for e in log.entries()]
        assert len(entries) == len(set(entries))
        logs[node.settings.node_id] = set(entries)
        for data in entries:
            CommittedExchange.from_entry(data).check(src.signer.verifier(), dst.signer.verifier())
    assert logs[src.settings.node_id] == logs[dst.settings.node_id]
    assert {CommittedExchange.from_entry(d).quote.quote_id for d in logs[src.settings.node_id]} == confirmed


def _all_outgoing(pair: Pair):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from node.exchange.store import ExchangeOutRow, _outgoing

    t = ExchangeOutRow.__table__
    with pair.node("airline").store.engine.connect() as conn:
        return [_outgoing(r) for r in conn.execute(select(t))]
