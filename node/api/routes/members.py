"""Operator endpoints: register members and issue member tokens for the brand's own app."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from compliance.purposes import catalogue
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import NodeDep, Operator
from node.api.problems import Problem
from node.core.auth import DEFAULT_TOKEN_TTL

router = APIRouter(prefix="/v1/members", tags=["members"], route_class=OffLoopJsonRoute)
MemberRef = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]


class NewMember(BaseModel):
    """A member joining the programme (the brand's own account reference)."""

    member_ref: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    birth_date: date | None = None
    guardian_ref: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")


class GateAnswer(BaseModel):
    """This use of the member's data is allowed (a refusal is a 403 problem with its reason)."""

    member_ref: str
    purpose: str
    allowed: bool
    reason: str


class Token(BaseModel):
    """A short-lived bearer token for one member."""

    token: str
    expires_at: datetime


@router.post("", status_code=201)
def register(node: NodeDep, _: Operator, member: NewMember) -> dict[str, str]:
    """Register a member (under 14: a registered guardian is required)."""
    if member.guardian_ref and node.consent.store.member(member.guardian_ref) is None:
        raise Problem(422, f"guardian {member.guardian_ref!r} is not a registered member")
    node.consent.register_member(member.member_ref, member.birth_date, member.guardian_ref)
    return {"member_ref": member.member_ref}


@router.post("/{member_ref}/token", status_code=201)
def token(node: NodeDep, _: Operator, member_ref: MemberRef, ttl: int = DEFAULT_TOKEN_TTL) -> Token:
    """Issue a token for a registered member, valid ``ttl`` seconds (at most one hour)."""
    if not 60 <= ttl <= 3600:
        raise Problem(422, "ttl must be between 60 and 3600 seconds")
    if node.consent.store.member(member_ref) is None:
        raise Problem(404, f"member {member_ref!r} is not registered here")
    now = datetime.now(UTC)
    return Token(
        token=node.member_tokens.issue(member_ref, ttl, now.timestamp()),
        expires_at=datetime.fromtimestamp(int(now.timestamp()) + ttl, UTC),
    )


class PrivacyLink(BaseModel):
    """A link into the member's privacy centre: it works once, within minutes, and needs no password."""

    url: str = Field(description="path on this node; the app opens it in a browser for the member")
    expires_at: datetime


PRIVACY_LINK_TTL = 5 * 60
#: The ``use`` of a privacy link's token: the privacy centre takes it once, the API never.
PRIVACY_LINK = "privacy-link"


@router.post("/{member_ref}/privacy-link", status_code=201)
def privacy_link(node: NodeDep, _: Operator, member_ref: MemberRef) -> PrivacyLink:
    """A sign-in link to the privacy centre for the brand's app to open (a short-lived member token,
    exchanged once for a session cookie: a used or late link is refused)."""
    if node.consent.store.member(member_ref) is None:
        raise Problem(404, f"member {member_ref!r} is not registered here")
    now = datetime.now(UTC)
    token = node.member_tokens.issue(member_ref, PRIVACY_LINK_TTL, now.timestamp(), use=PRIVACY_LINK)
    return PrivacyLink(
        url=f"/privacy/enter?token={token}",
        expires_at=datetime.fromtimestamp(int(now.timestamp()) + PRIVACY_LINK_TTL, UTC),
    )


class Revocation(BaseModel):
    """Every token issued so far for the member's account no longer works; new ones do."""

    member_ref: str
    generation: int


@router.delete("/{member_ref}/tokens")
def revoke_tokens(node: NodeDep, _: Operator, member_ref: MemberRef) -> Revocation:
    """Revoke every token issued for a member (a lost phone, a shared device); audited."""
    if node.consent.store.member(member_ref) is None:
        raise Problem(404, f"member {member_ref!r} is not registered here")
    generation = node.member_tokens.revoke(member_ref)
    node.audit(
        "key.rotate",
        subject_pseudo_ids=[node.keyring.pseudonym(member_ref, create=False)],
        details={"keys": "member_tokens", "generation": generation},
    )
    return Revocation(member_ref=member_ref, generation=generation)


@router.get("/{member_ref}/gate/{purpose}")
def gate(
    node: NodeDep, caller: Operator, member_ref: MemberRef, purpose: str, recipient: str | None = None
) -> GateAnswer:
    """Ask the consent gate before using the member's data for ``purpose`` (and ``recipient``).

    The same check every data path inside the node makes: a denial is audited and answered 403
    with its reason code; nothing is cached, so a withdrawal counts from the very next call.
    """
    decision = node.consent.check(member_ref, purpose, recipient=recipient, accessor=caller.id)
    return GateAnswer(member_ref=member_ref, purpose=purpose, allowed=decision.allowed, reason=decision.reason.value)


class PromptPermission(BaseModel):
    """The app may show this consent prompt now (it has been counted)."""

    member_ref: str
    purpose: str
    shown_in_window: int


@router.post(
    "/{member_ref}/prompts/{purpose}",
    status_code=201,
    responses={429: {"description": "already asked about this purpose within 180 days (reason_code prompt_limit)"}},
)
def prompt(node: NodeDep, _: Operator, member_ref: MemberRef, purpose: str) -> PromptPermission:
    """Ask before showing a consent prompt: at most one per purpose in 180 days, none once consented.

    429 with ``reason_code`` ``prompt_limit`` (and when asking becomes possible again), or 409
    ``already_consented``; service never depends on the answer (PIPL Art. 16).
    """
    if node.consent.store.member(member_ref) is None:
        raise Problem(404, f"member {member_ref!r} is not registered here")
    catalogue().purpose(purpose)  # 422 for an unknown purpose
    consented = node.consent.decisions(member_ref).get(purpose)
    answer = node.prompts.ask(node.consent.member_pseudonym(member_ref), purpose, bool(consented and consented.allowed))
    if answer.reason == "already_consented":
        raise Problem(409, f"{member_ref!r} already consented to {purpose!r}: no prompt", reason_code=answer.reason)
    if not answer.allowed:
        raise Problem(
            429,
            f"{member_ref!r} was already asked about {purpose!r}; ask again from {answer.next_allowed:%Y-%m-%d}",
            reason_code=answer.reason,
        )
    return PromptPermission(member_ref=member_ref, purpose=purpose, shown_in_window=answer.shown_in_window + 1)
