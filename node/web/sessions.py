"""Page sessions: random ids in HttpOnly, SameSite=Strict cookies, kept in the serving process.

A session is made from a credential the API already knows (a member token, a staff key) and then
stands for it: the pages never see the credential again. Sessions live in memory on purpose: they
end with the process and never reach the database or a backup; a restart signs everyone out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from node.core.auth import Caller, Role

#: The cookie of each area, each scoped to its own path so one area never sees the other's session.
MEMBER_COOKIE = "alliance_privacy"
STAFF_COOKIE = "alliance_console"
AREA_PATH = {MEMBER_COOKIE: "/privacy", STAFF_COOKIE: "/console"}


@dataclass(frozen=True)
class Flash:
    """A message for the next page: a refusal (an alert) or news, in its own language."""

    text: str
    lang: str = "en"
    alert: bool = True


@dataclass
class Session:
    """Who a cookie stands for, its CSRF token and when it ends (monotonic seconds)."""

    id: str
    caller: Caller
    csrf: str
    expires: float
    flash: list[Flash] = field(default_factory=list)

    def say(self, text: str, lang: str = "en", alert: bool = True) -> None:
        """Keep a message for the next page this session sees."""
        self.flash.append(Flash(text, lang, alert))

    @property
    def role(self) -> Role:
        """The role of the person signed in."""
        return self.caller.role


class SessionStore:
    """Open, find and end sessions."""

    def __init__(self, ttl_seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, caller: Caller) -> Session:
        """A new session for ``caller`` with a fresh id and CSRF token."""
        session = Session(secrets.token_urlsafe(32), caller, secrets.token_urlsafe(32), self.clock() + self.ttl)
        with self._lock:
            self._forget_expired()
            self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The live session with this id, or ``None`` (unknown, ended or expired)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.expires <= self.clock():
                self._sessions.pop(session_id, None)
                return None
            return session

    def end(self, session_id: str | None) -> None:
        """Sign out: the session's cookie no longer works."""
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def end_member(self, member_ref: str) -> None:
        """End every session of a member (after erasure nothing may act for them)."""
        with self._lock:
            ended = [s.id for s in self._sessions.values() if s.role is Role.MEMBER and s.caller.id == member_ref]
            for sid in ended:
                self._sessions.pop(sid)

    def _forget_expired(self) -> None:
        now = self.clock()
        for sid in [s.id for s in self._sessions.values() if s.expires <= now]:
            del self._sessions[sid]
