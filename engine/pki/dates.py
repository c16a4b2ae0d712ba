"""Moments as certificates carry them (UTC) and as users read them (the installation's zone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine import settings


def aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def days_between(now: datetime, later: datetime) -> int:
    return (later - now) // timedelta(days=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def br_date(moment: datetime) -> str:
    """dd/mm/aaaa in the installation's time zone (``CREDENCIA_TIMEZONE``)."""
    return local(moment).strftime("%d/%m/%Y")


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - no tz database
        return UTC


def local(moment: datetime) -> datetime:
    return moment.astimezone(_zone(settings.load().timezone))
