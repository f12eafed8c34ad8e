"""The bots-schema tables the engine reads and writes, and small helpers its queries share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from trading.models import (
    Bot,
    EnginePartition,
    EngineState,
    GridLevel,
    InboxMessage,
    Order,
    Trade,
)

ORDERS: Table = Order.__table__  # type: ignore[assignment]
TRADES: Table = Trade.__table__  # type: ignore[assignment]
LEVELS: Table = GridLevel.__table__  # type: ignore[assignment]
BOTS: Table = Bot.__table__  # type: ignore[assignment]
STATES: Table = EngineState.__table__  # type: ignore[assignment]
INBOX: Table = InboxMessage.__table__  # type: ignore[assignment]
PARTITIONS: Table = EnginePartition.__table__  # type: ignore[assignment]
_CHUNK = 1000
# One array parameter holds any number of ids; chunks only bound the size of one result.
_ARRAY_CHUNK = 20_000


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def chunk_size(session: AsyncSession) -> int:
    """How many values one `among` condition takes on this database."""
    return _ARRAY_CHUNK if dialect(session) == "postgresql" else _CHUNK


def among(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(:array)`: one parameter, where IN builds and binds one
    per value (a tenth of a takeover's load went into building IN lists of 1,000 ids)."""
    if dialect(session) == "postgresql":
        array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        condition: ColumnElement[bool] = column == any_(array)
        return condition
    result: ColumnElement[bool] = column.in_(values)
    return result
