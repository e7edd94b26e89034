"""Report periods: whole ISO weeks (Monday to Sunday) or calendar months, in a time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

PeriodKind = Literal["weekly", "monthly"]


class Period(BaseModel):
    """A report period: ``start`` to ``end``, both included.

    Examples
    --------
    >>> p = Period.last_complete("weekly", date(2026, 2, 11))
    >>> p.start, p.end, p.key, p.label
    (datetime.date(2026, 2, 2), datetime.date(2026, 2, 8), 'weekly-2026-W06', 'week 6 of 2026 (2 Feb – 8 Feb 2026)')
    >>> Period.last_complete("monthly", date(2026, 3, 1)).previous().key
    'monthly-2026-01'
    >>> Period.last_complete("monthly", date(2026, 3, 1)).next().end
    datetime.date(2026, 3, 31)
    """

    model_config = ConfigDict(frozen=True)

    kind: PeriodKind
    start: date
    end: date

    @classmethod
    def containing(cls, kind: PeriodKind, day: date) -> Period:
        """The period of ``kind`` that contains ``day``."""
        if kind == "weekly":
            start = day - timedelta(days=day.weekday())
            return cls(kind=kind, start=start, end=start + timedelta(days=6))
        start = day.replace(day=1)
        nxt = (start + timedelta(days=32)).replace(day=1)
        return cls(kind=kind, start=start, end=nxt - timedelta(days=1))

    @classmethod
    def last_complete(cls, kind: PeriodKind, today: date) -> Period:
        """The latest period of ``kind`` that ended before ``today``."""
        return cls.containing(kind, today).previous()

    @classmethod
    def now(cls, kind: PeriodKind, timezone: str, at: datetime | None = None) -> Period:
        """The latest complete period as seen in ``timezone`` at ``at`` (default now)."""
        tz = ZoneInfo(timezone)
        moment = at.astimezone(tz) if at else datetime.now(tz)
        return cls.last_complete(kind, moment.date())

    def previous(self) -> Period:
        """The period of the same kind just before."""
        return Period.containing(self.kind, self.start - timedelta(days=1))

    def next(self) -> Period:
        """The period of the same kind just after."""
        return Period.containing(self.kind, self.end + timedelta(days=1))

    @property
    def days(self) -> int:
        """Days in the period."""
        return (self.end - self.start).days + 1

    @property
    def key(self) -> str:
        """A stable id, e.g. ``weekly-2026-W06`` or ``monthly-2026-02``."""
        if self.kind == "weekly":
            year, week, _ = self.start.isocalendar()
            return f"weekly-{year}-W{week:02d}"
        return f"monthly-{self.start:%Y-%m}"

    @property
    def noun(self) -> str:
        """``week`` or ``month``."""
        return "week" if self.kind == "weekly" else "month"

    @property
    def label(self) -> str:
        """How the period reads in a title."""
        if self.kind == "weekly":
            year, week, _ = self.start.isocalendar()
            return f"week {week} of {year} ({self.start:%-d %b} – {self.end:%-d %b %Y})"
        return f"{self.start:%B %Y}"
