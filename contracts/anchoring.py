"""When a log is due for anchoring (pure): enough new entries, or enough time since the last anchor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnchorPolicy:
    """Anchor a log once it has ``every_entries`` new entries, or any new entry after ``every_seconds``."""

    every_entries: int = 1000
    every_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.every_entries < 1 or self.every_seconds <= 0:
            raise ValueError("anchor every one entry or more, and after a positive number of seconds")

    def due(self, local_size: int, anchored_size: int, seconds_since_anchor: float | None) -> bool:
        """Whether to anchor now; ``seconds_since_anchor`` is None when this process has not anchored it yet."""
        new = local_size - anchored_size
        if new <= 0:
            return False
        if new >= self.every_entries:
            return True
        return seconds_since_anchor is None or seconds_since_anchor >= self.every_seconds
