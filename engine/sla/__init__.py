"""Due dates in business days: weekends and Brazilian national holidays are skipped."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=64)
def national_holidays(year: int) -> frozenset[date]:
    """Brazil's national holidays of ``year`` (kept: ``web.warm`` loads the running years'
    in a server's master, before its workers fork)."""
    return frozenset(holidays.country_holidays("BR", years=year).keys())


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in national_holidays(day.year)


def add_business_days(start: datetime, days: int, tz: str = "America/Sao_Paulo") -> datetime:
    """The end (23:59:59 local) of the ``days``-th business day after ``start``.

    The day the task is created does not count: a 3-business-day analysis created on
    Thursday 2026-12-24 is due at the end of Wednesday 2026-12-30 (25 December is a holiday).
    """
    zone = ZoneInfo(tz)
    day = start.astimezone(zone).date()
    remaining = max(days, 0)
    while remaining > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            remaining -= 1
    if days <= 0:
        while not is_business_day(day):
            day += timedelta(days=1)
    end = datetime.combine(day, time(23, 59, 59), zone)
    return end.astimezone(start.tzinfo)
