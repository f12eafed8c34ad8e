"""The bots-schema tables the engine reads and writes, and small helpers its queries share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table
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


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
