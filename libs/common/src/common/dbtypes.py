"""Column types every schema shares: aware UTC datetimes and exact money on PostgreSQL and SQLite alike."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_PRECISION = 38
MONEY_SCALE = 18


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always hands back aware UTC datetimes.

    SQLite stores no offset and returns naive values; PostgreSQL returns aware ones. Normalising
    here means no naive datetime ever reaches `.timestamp()` (which reads it as local time).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC (SQLite drops the offset, so it must already be UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return aware UTC."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC(38, 18) on PostgreSQL; on SQLite (which would store REAL) a string.

    Comparisons and sums on money belong in Python on SQLite, never in SQL: its strings sort as text.
    """

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Text on SQLite, NUMERIC elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | str | None, dialect: Dialect) -> Any:
        """Refuse floats: money never passes through binary floating point."""
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        exact = Decimal(value)
        if not exact.is_finite():
            raise ValueError("money must be finite")
        return format(_normalize(exact), "f") if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Decimal back, trailing zeros dropped."""
        if value is None:
            return None
        return _normalize(value if isinstance(value, Decimal) else Decimal(value))


_NORMALIZE = Context(prec=MONEY_PRECISION + 2)
"""Wide enough never to round a stored amount (a context of its own: cheaper than a local one per value)."""


def _normalize(value: Decimal) -> Decimal:
    """Drop trailing zeros without rounding: the default context would cut to 28 significant digits."""
    return value.normalize(_NORMALIZE)
