"""Time as a port: nothing in the orchestrator reads the wall clock directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FixedClock", "ManualClock", "SystemClock", "humanize", "parse_instant"]


class Clock(Protocol):
    """Tells the time (always timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock; wired in production entry points only."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock stopped at one instant (``plan-orchestrator tick --now``)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware time")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at


class ManualClock:
    """A clock tests and simulations move by hand."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards)."""
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError(
                f"time cannot go back from {self._now.isoformat()} to {when.isoformat()}"
            )
        self._now = when

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


def parse_instant(text: str) -> datetime:
    """An ISO-8601 time with a zone (``Z`` accepted); ``ValueError`` otherwise.

    A time without a zone is refused rather than guessed: ``--now 2026-01-01T09:00``
    on a machine in another zone would silently mean another instant.
    """
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"`{text}` is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone: add `Z` or an offset such as `+02:00`")
    return parsed.astimezone(UTC)


def humanize(delta: timedelta) -> str:
    """A duration in words for ledger reasons: ``1 day``, ``4 hours``, ``1 day 2 hours``.

    Days, hours, minutes and seconds, largest first, zero parts left out;
    sub-second remainders are dropped (``0 seconds`` for less than a second).
    """
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return sign + (" ".join(parts) if parts else "0 seconds")
