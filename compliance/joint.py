"""Rights across joint handlers (PIPL Art. 20): what a member's request at one brand asks of the others.

Brands that run a purpose jointly (the registry lists them) are each answerable for it: a member
may withdraw, correct or erase at any of them, and every other must follow. This module is the
pure part: which consent records and requests set off a notice, what a notice says, and what the
receiving handler does with it. Nothing here reads a database or calls a peer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from compliance.consent import ConsentAction, ConsentRecord
from compliance.rights import DEADLINE_WORKING_DAYS, working_days_after

#: A consent change made because another handler said so carries this actor, and sets off nothing more.
JOINT_ACTOR = "joint:"

#: The purpose a notice travels under: a legal obligation, so a member who withdrew is still told about.
NOTICE_PURPOSE = "rights.joint"

#: The notice's fields and their PI categories (the egress check refuses anything else).
NOTICE_FIELDS = {
    "notice_id": "non_pi",
    "kind": "non_pi",
    "purpose": "non_pi",
    "link_id": "identity.pseudonym",
    "fields": "non_pi",
    "due": "non_pi",
}


class NoticeKind(StrEnum):
    """What the member asked the sending handler for."""

    WITHDRAWAL = "withdrawal"
    CORRECTION = "correction"
    ERASURE = "erasure"


class NoticeState(StrEnum):
    """Where a notice stands, at either end."""

    PENDING = "pending"  # sent side: not acknowledged yet (retried)
    OPEN = "open"  # received side: recorded, a person must finish it (a correction)
    COMPLETED = "completed"  # received and done; the sender's copy is acknowledged
    NOT_LINKED = "not_linked"  # the receiver knows no member by that link: nothing to do there


@dataclass(frozen=True)
class Planned:
    """A notice to send: to ``peer``, about the member it knows by ``link_id``."""

    notice_id: str
    peer: str
    kind: NoticeKind
    purpose: str
    link_id: str
    member: str  # the sender's pseudonym of the member (its queue and audit name them so)
    fields: tuple[str, ...]
    created_at: datetime
    due: date


def notice_id(origin: str, peer: str) -> str:
    """The notice's id: the same for the same origin (a consent record, a request) and peer, so a plan
    made twice (after a crash) is the same notice, stored once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"alliance-joint-notice:{origin}:{peer}").hex


def due_date(received: date) -> date:
    """The 15-working-day clock of a rights request, from the day the member asked."""
    return working_days_after(received, DEADLINE_WORKING_DAYS)


def family(purpose: str) -> str:
    """``joint_modeling:air`` -> ``joint_modeling``."""
    return purpose.split(":", 1)[0]


def plan_withdrawals(
    records: Iterable[ConsentRecord],
    handlers: Callable[[str], Sequence[str]],
    links: Callable[[str], dict[str, str]],
) -> list[Planned]:
    """Notices for the withdrawals among ``records``: a withdrawal of a joint purpose goes to every other
    handler the member is linked with (``handlers(purpose)``, ``links(member)`` peer -> link id); a
    withdrawal of the separate consent for one brand (``joint_modeling:<brand>``) goes to that brand only.
    Changes made on another handler's notice set off nothing (the sender already told everyone)."""
    planned = []
    for r in records:
        if r.action is not ConsentAction.WITHDRAW or r.actor.startswith(JOINT_ACTOR):
            continue
        others = list(handlers(r.purpose_code))
        if not others:
            continue
        _, _, named = r.purpose_code.partition(":")
        targets = [named] if named else others
        linked = links(r.member)
        for peer in targets:
            if peer in others and peer in linked:
                planned.append(
                    Planned(
                        notice_id(r.consent_id, peer),
                        peer,
                        NoticeKind.WITHDRAWAL,
                        r.purpose_code,
                        linked[peer],
                        r.member,
                        (),
                        r.at,
                        due_date(r.at.date()),
                    )
                )
    return planned


def plan_request(
    kind: NoticeKind,
    dsr_id: str,
    member: str,
    at: datetime,
    joint_purposes: Iterable[str],
    handlers: Callable[[str], Sequence[str]],
    linked: dict[str, str],
    fields: tuple[str, ...] = (),
) -> list[Planned]:
    """Notices for an erasure or a correction (request ``dsr_id``): one to each handler of each joint
    purpose the member is linked with (one per handler, whatever the number of purposes they share)."""
    peers: dict[str, str] = {}
    for purpose in joint_purposes:
        for peer in handlers(purpose):
            if peer in linked:
                peers.setdefault(peer, purpose)
    return [
        Planned(notice_id(dsr_id, peer), peer, kind, purpose, linked[peer], member, fields, at, due_date(at.date()))
        for peer, purpose in peers.items()
    ]


def withdrawals_for(kind: NoticeKind, purpose: str, sender: str, receiver: str) -> list[str]:
    """The purposes the receiving handler withdraws for the member on a notice from ``sender``:

    - a withdrawal of the joint purpose itself: the joint purpose, here too (one joint processing);
    - a withdrawal of the separate consent for this brand (``receiver``), or an erasure at the sender: the
      separate consent for the sender (nothing of theirs is aligned with the sender again); a withdrawal of
      the separate consent for another brand asks nothing of this one;
    - a correction: nothing (a person checks what was received from the sender).
    """
    if kind is NoticeKind.CORRECTION:
        return []
    if kind is NoticeKind.WITHDRAWAL and ":" not in purpose:
        return [purpose]
    if kind is NoticeKind.ERASURE:
        return [f"{family(purpose)}:{sender}"]
    return [f"{family(purpose)}:{sender}"] if purpose.partition(":")[2] == receiver else []


def receiver_state(kind: NoticeKind, linked: bool) -> NoticeState:
    """What the receiver's record of a notice says once it has applied what it can."""
    if not linked:
        return NoticeState.NOT_LINKED
    return NoticeState.OPEN if kind is NoticeKind.CORRECTION else NoticeState.COMPLETED
