"""Due dates in business days: weekends and Brazilian national holidays are skipped."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=64)
def _national_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("BR", years=year).keys())


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _national_holidays(day.year)


def add_business_days(start: datetime, days: int, tz: str = "America/Sao_Paulo") -> datetime:
    """``start`` plus ``days`` business days, at the same local time of day.

    A start outside business days counts from the next business day's start, so a task
    created on Saturday with 3 days is due on Wednesday at midnight (Thursday 00:00).
    """
    zone = ZoneInfo(tz)
    local = start.astimezone(zone)
    if not is_business_day(local.date()):
        day = local.date()
        while not is_business_day(day):
            day += timedelta(days=1)
        local = datetime.combine(day, datetime.min.time(), zone)
    day = local.date()
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            remaining -= 1
    return datetime.combine(day, local.timetz().replace(tzinfo=None), zone).astimezone(start.tzinfo)
