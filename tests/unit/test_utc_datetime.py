"""``UTCDateTime`` writes on SQLite exactly the text SQLAlchemy's own path writes (the stored
text is compared in SQL: a different text would sort and match differently), in one step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite

from engine.db import UTCDateTime

SQLITE = sqlite.dialect()
VALUES = [
    datetime(2026, 12, 6, 13, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 6, 13, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 12, 6, 10, 0, 0, 1, tzinfo=timezone(timedelta(hours=-3))),
    datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # next day in UTC
    datetime(1, 1, 1, 12, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def _usual(value):
    """What SQLAlchemy's chain gives: the decorator's ``process_bind_param``, then DATETIME's."""
    return TypeDecorator.bind_processor(UTCDateTime().dialect_impl(SQLITE), SQLITE)(value)


def _ours():
    """The processor SQLAlchemy runs for the column on SQLite."""
    return UTCDateTime()._cached_bind_processor(SQLITE)


@pytest.mark.parametrize("value", VALUES, ids=str)
def test_the_text_written_on_sqlite_is_sqlalchemys(value):
    process = _ours()
    assert process(value) == _usual(value)


def test_what_is_not_an_aware_datetime_goes_the_usual_way():
    process = _ours()
    assert process(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        process(datetime(2026, 12, 6, 13, 0))
    with pytest.raises(AttributeError):  # (a date is no datetime: refused as before)
        process(date(2026, 12, 6))


def test_postgresql_keeps_sqlalchemys_chain():
    process = UTCDateTime()._cached_bind_processor(postgresql.psycopg.dialect())
    value = datetime(2026, 12, 6, 10, 0, tzinfo=timezone(timedelta(hours=-3)))
    result = process(value) if process is not None else value
    assert result == value and result.utcoffset() == timedelta(0)
