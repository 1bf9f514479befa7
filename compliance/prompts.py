"""The consent-prompt counter (PIPL Art. 16; GB/T 35273 5.3): no nagging after a refusal.

Before the brand's app asks a member for an optional purpose it asks the node. A member is
asked about one purpose at most ``PROMPT_LIMIT`` times in any ``WINDOW``; a member who already
consented is not asked at all. The limit and window are a design choice (the checklist marks
them so), kept here as constants so the compliance report can state them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, insert, select
from sqlmodel import Field, SQLModel

PROMPT_LIMIT = 1
WINDOW = timedelta(days=180)


class PromptRow(SQLModel, table=True):
    """One consent prompt shown to one member (pseudonym) for one purpose."""

    __tablename__ = "compliance_prompt"
    id: int | None = Field(default=None, primary_key=True)
    member: str = Field(index=True, max_length=64)
    purpose_code: str = Field(max_length=250)
    at: datetime


@dataclass(frozen=True)
class PromptAnswer:
    """Whether the app may show the prompt now, and if not, why and from when."""

    allowed: bool
    reason: str
    shown_in_window: int
    next_allowed: datetime | None = None


def decide(shown: list[datetime], now: datetime, already_consented: bool) -> PromptAnswer:
    """Pure rule: at most ``PROMPT_LIMIT`` prompts per purpose in any ``WINDOW``, none once consented."""
    recent = sorted(t for t in shown if now - t < WINDOW)
    if already_consented:
        return PromptAnswer(False, "already_consented", len(recent))
    if len(recent) >= PROMPT_LIMIT:
        return PromptAnswer(False, "prompt_limit", len(recent), recent[-PROMPT_LIMIT] + WINDOW)
    return PromptAnswer(True, "ok", len(recent))


class PromptCounter:
    """Prompts shown, per member and purpose."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create the table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[PromptRow.__table__])

    def ask(self, member: str, purpose_code: str, already_consented: bool, now: datetime | None = None) -> PromptAnswer:
        """Decide, and record the prompt when it is allowed (the app shows it next)."""
        now = now or datetime.now(UTC)
        t = PromptRow.__table__
        with self.engine.begin() as conn:
            shown = [
                _aware(at)
                for at in conn.execute(
                    select(t.c.at).where(t.c.member == member, t.c.purpose_code == purpose_code)
                ).scalars()
            ]
            answer = decide(shown, now, already_consented)
            if answer.allowed:
                conn.execute(insert(t).values(member=member, purpose_code=purpose_code, at=now))
        return answer

    def max_in_window(self, now: datetime | None = None) -> int:
        """The most prompts any member got for any purpose within the last window (for reports)."""
        now = now or datetime.now(UTC)
        t = PromptRow.__table__
        with self.engine.connect() as conn:
            counts = conn.execute(
                select(func.count()).where(t.c.at > now - WINDOW).group_by(t.c.member, t.c.purpose_code)
            ).scalars()
            return max(counts, default=0)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
