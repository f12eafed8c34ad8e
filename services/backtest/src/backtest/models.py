"""Tables of the `backtest` schema: backtest runs, the candle history they share, and the outbox.

Candles are stored once per (exchange, ticker, minute) and reused by every backtest; `candle_spans` records
which windows were asked of the exchange, so a minute inside a span without a candle is a gap the exchange
had (reported, never invented) rather than one we have not fetched yet.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Index, Integer, PrimaryKeyConstraint, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from common.db import make_base
from common.dbtypes import Money, UtcDateTime, utc_now
from common.outbox import outbox_table

SCHEMA = "backtest"

if TYPE_CHECKING:
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        """The backtest schema's declarative base (built by make_base at runtime)."""

else:
    Base = make_base(SCHEMA)

__all__ = ["OUTBOX", "SCHEMA", "Backtest", "Base", "Candle", "CandleSpan", "RunStatus"]


class RunStatus(StrEnum):
    """API.md's backtest status."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Backtest(Base):
    """One backtest: the request as validated, the grid it was planned into, its progress and result."""

    __tablename__ = "backtests"
    __table_args__ = (Index("ix_backtests_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    exchange: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str] = mapped_column(String(40))
    # The request's fields as the client sent them (camelCase, exact decimal text): `params` of the reads.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The planned grid: level prices, the market rules (fee override applied), amount, stopAtMax.
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)
    start_at: Mapped[datetime] = mapped_column(UtcDateTime)
    end_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED.value)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Every claim by a worker increments it; a worker writes only while the count is still its own, so a
    # worker that lost the job (presumed dead, the job handed to another) can never overwrite it.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Candle(Base):
    """One closed 1-minute candle as the exchange gave it (open time in ms since the epoch, UTC)."""

    __tablename__ = "candles"
    __table_args__ = (PrimaryKeyConstraint("exchange", "ticker", "open_time", name="pk_candles"),)

    exchange: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str] = mapped_column(String(40))
    open_time: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[Decimal] = mapped_column(Money)
    high: Mapped[Decimal] = mapped_column(Money)
    low: Mapped[Decimal] = mapped_column(Money)
    close: Mapped[Decimal] = mapped_column(Money)
    volume: Mapped[Decimal] = mapped_column(Money)


class CandleSpan(Base):
    """A window [start, end) of minutes whose candles were asked of the exchange and stored."""

    __tablename__ = "candle_spans"
    __table_args__ = (Index("ix_candle_spans_market", "exchange", "ticker", "start_time"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    exchange: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str] = mapped_column(String(40))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


# On SQLite (embedded mode) every service shares one namespace: the table name carries the service's.
OUTBOX = outbox_table(Base.metadata, "backtest_outbox")
