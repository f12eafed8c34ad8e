"""Schema `bots`: one definition of bots, grid levels, orders, trades and engine state for both writers.

The bots service writes a bot's configuration and builds its grid; while a bot runs, the engine is the only
writer of its trading state (orders, level status, trades, core state). Migrations live beside these models
(`libs/trading/migrations`, applied by `trading.migrate`). The unique constraints are what make double
counting impossible: one row per client order id, per exchange order id, and per fill.

Every figure the API shows about trading (profit, trade counts, performance) is computed from `trades`;
there are deliberately no profit/trade counters on `bots` that could drift from it.

The stop handshake with the engine (see `trading.commands`): the bots service records a stop by
setting `stop_command_id` (status unchanged: orders may still rest on the exchange) and enqueueing
`bot.stop` with that id. The engine cancels every open order of the bot, then in one transaction, only
where `stop_command_id` still equals the command's id, sets `status` to the command's `status` (`stopped`,
or `error` when the command says so), clears `error_message`/`error_code` when that status is `stopped`,
and enqueues `bot.stopped`. `bot.start` clears `stop_command_id`. Whoever writes a `stopped`/`error` status
writes its `stop_reason` with it (engine: user, stopAtMax, credentialRemoved, error; bots service: error);
a start clears it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import NAMING_CONVENTION
from common.dbtypes import Money, UtcDateTime, utc_now
from common.outbox import outbox_table

SCHEMA = "bots"
ZERO = Decimal(0)


class Base(DeclarativeBase):
    """Declarative base of the `bots` schema."""

    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


class BotStatus(StrEnum):
    """What API.md shows: running, stopped or error."""

    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


class StopReason(StrEnum):
    """Why a bot is not running (API.md "Grid options": `stopReason`); NULL while it runs or never ran."""

    USER = "user"
    STOP_AT_MAX = "stopAtMax"
    TAKE_PROFIT = "takeProfit"
    STOP_LOSS = "stopLoss"
    CREDENTIAL_REMOVED = "credentialRemoved"
    ERROR = "error"


class BotMode(StrEnum):
    """Paper bots fill on ticks; live bots trade on the exchange with the user's keys."""

    PAPER = "paper"
    LIVE = "live"


class GridType(StrEnum):
    """Geometric: equal percentage steps (default); arithmetic: equal price steps."""

    GEOMETRIC = "geometric"
    ARITHMETIC = "arithmetic"


class OrderSide(StrEnum):
    """Buy or sell."""

    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    """An order's life: recorded before the exchange call (`new`), then open, filled, canceled or rejected."""

    NEW = "new"
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


class LevelStatus(StrEnum):
    """A grid level as API.md shows it."""

    AVAILABLE = "available"
    PENDING = "pending"
    FILLED = "filled"


def _one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


class Bot(Base):
    """A user's grid bot: configuration (bots service) and lifecycle status (both, see the module doc)."""

    __tablename__ = "bots"
    __table_args__ = (
        Index("ix_bots_user_id_status", "user_id", "status"),
        Index("ix_bots_exchange_ticker_status", "exchange", "ticker", "status"),
        # The engines' resume sweep reads the rows changed in the last minute. A fill changes
        # last_executed_at, never updated_at, so the fill's update of the row stays a HOT update.
        Index("ix_bots_updated_at", "updated_at"),
        _one_of("status", BotStatus),
        _one_of("stop_reason", StopReason),
        _one_of("mode", BotMode),
        _one_of("grid_type", GridType),
        CheckConstraint("grid_count >= 1", name="grid_count"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    exchange: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8), default=BotMode.PAPER.value)
    grid_type: Mapped[str] = mapped_column(String(12), default=GridType.GEOMETRIC.value)
    lower_price: Mapped[Decimal] = mapped_column(Money)
    upper_price: Mapped[Decimal] = mapped_column(Money)
    price_change_percent: Mapped[Decimal] = mapped_column(Money)
    grid_count: Mapped[int] = mapped_column(Integer)
    order_amount: Mapped[Decimal] = mapped_column(Money)
    investment_amount: Mapped[Decimal] = mapped_column(Money)
    stop_at_max: Mapped[bool] = mapped_column(Boolean, default=False)
    # Grid options (API.md "Grid options"); NULL/false: off. Only take-profit and stop-loss may change while
    # the bot runs; the rest change with the bot stopped, like the grid itself.
    trigger_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    take_profit_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    stop_loss_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    sell_base_on_stop: Mapped[bool] = mapped_column(Boolean, default=False)
    trailing_up: Mapped[bool] = mapped_column(Boolean, default=False)
    trailing_up_limit: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    # False while a trigger price holds the bot: written true by the engine when the market trades through
    # it; reset by the bots service with the trigger price (a new trigger waits again).
    triggered: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(12), default=BotStatus.STOPPED.value)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set with error_message when the bots service knows the cause, so the API can show it in ko or en.
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Why the bot stopped (StopReason), written with the stopped/error status; cleared by a start.
    stop_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    # The pending stop (its command id): set when a stop is requested, cleared by a start.
    stop_command_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stop_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Exchange rules the grid was built with (tick, lot step, minimums, fees), so the engine rounds alike.
    market_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Bumped on every configuration change; commands carry it so a stale one is recognised.
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)
    first_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_executed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Soft delete: the trade history stays for audit, every route answers 404.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class GridLevel(Base):
    """Level i of a bot's grid (read model of the slots: the buy of slot i, the sell of slot i-1)."""

    __tablename__ = "grid_levels"
    __table_args__ = (
        UniqueConstraint("bot_id", "level_index"),
        _one_of("type", OrderSide),
        _one_of("status", LevelStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bot_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("bots.id", ondelete="CASCADE"))
    level_index: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    type: Mapped[str] = mapped_column(String(4), default=OrderSide.BUY.value)
    status: Mapped[str] = mapped_column(String(12), default=LevelStatus.AVAILABLE.value)
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # False once trailing up moved the grid past this level (and no order of the bot rests there): the
    # grid-levels route shows the grid as it is now. Levels that trailing adds get rows of their own.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class Order(Base):
    """Every order a bot sends; written (status `new`) BEFORE the exchange is called."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("client_order_id"),
        UniqueConstraint("exchange", "exchange_order_id"),
        Index("ix_orders_bot_id_status", "bot_id", "status"),
        _one_of("side", OrderSide),
        _one_of("status", OrderStatus),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bot_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("bots.id", ondelete="CASCADE"))
    exchange: Mapped[str] = mapped_column(String(16))
    client_order_id: Mapped[str] = mapped_column(String(64))
    exchange_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slot: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Money)
    filled_quantity: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    status: Mapped[str] = mapped_column(String(12), default=OrderStatus.NEW.value)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class Trade(Base):
    """One fill of one order: the unique (order, fill) pair is what makes counting a fill twice impossible."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("order_id", "fill_id"),
        Index("ix_trades_bot_id_executed_at", "bot_id", "executed_at"),
        _one_of("side", OrderSide),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bot_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("bots.id", ondelete="CASCADE"))
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orders.id", ondelete="CASCADE"))
    fill_id: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    fee_currency: Mapped[str] = mapped_column(String(16))
    # Sells only: the round trip's realised profit net of both fees.
    profit: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    executed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class SignalToken(Base):
    """A bot's TradingView signal token (one per bot): only its SHA-256 is kept; a new one replaces it."""

    __tablename__ = "bot_signal_tokens"

    bot_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True
    )
    # Hex SHA-256 of the token: looked up by equality, so no comparison ever runs over the secret itself.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Signal(Base):
    """One signal received for a bot (TradingView alert): what was asked, from where, and what came of it."""

    __tablename__ = "bot_signals"
    __table_args__ = (Index("ix_bot_signals_bot_id_received_at", "bot_id", "received_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bot_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("bots.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    # start | stop; NULL when the body named neither.
    action: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # "ok", or the error code the signal was answered with.
    outcome: Mapped[str] = mapped_column(String(40))
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EngineState(Base):
    """The engine core's serialised state per bot, written in the same transaction as its effects."""

    __tablename__ = "engine_states"

    bot_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Optimistic concurrency: two engine replicas can never both advance one bot.
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


ENGINE_PARTITIONS = 64
"""Bots are spread over this many partitions (`engine_partitions` rows); each is driven by one engine replica.

Fixed for a deployment: replicas must agree on which partition a bot is in (`engine.ownership.partition_of`).
"""


class EngineReplica(Base):
    """A running engine process (one row per replica name): its heartbeat tells the others it is alive."""

    __tablename__ = "engine_replicas"

    replica_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Changes with every start of a process under this name: a superseded process sees it and stops.
    incarnation: Mapped[str] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Handing its partitions over (SIGTERM): alive, but no longer assigned any.
    stopping: Mapped[bool] = mapped_column(Boolean, default=False)


class EnginePartition(Base):
    """Which replica drives a partition's bots, and the fencing epoch every write of those bots checks."""

    __tablename__ = "engine_partitions"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Raised by every claim: a write carrying an older epoch is refused (the replica lost the partition).
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class EnginePartitionWeight(Base):
    """The bots a partition's owner last reported driving there (only when it changed by enough): what the
    replicas balance the partitions by (`engine.assignment.balanced`).

    A table of its own, not a column of `engine_partitions`: every batch holds its partitions' rows there
    `FOR SHARE` (the fence), so an UPDATE of that row waits for the batches in flight and holds new ones off.
    """

    __tablename__ = "engine_partition_weights"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class InboxMessage(Base):
    """A consumed message id: written in the handler's transaction, so a redelivery changes nothing."""

    # Prefixed: on SQLite (embedded mode) every service's tables share one namespace.
    __tablename__ = "bots_inbox"
    __table_args__ = (UniqueConstraint("consumer", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64))
    # As long as an envelope's message id may be.
    message_id: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


OUTBOX = outbox_table(Base.metadata, "bots_outbox")
"""Messages of the bots service (its commands to the engine), relayed after commit (see common.outbox)."""

ENGINE_OUTBOX = outbox_table(Base.metadata, "engine_outbox")
"""Messages of the engine (user events, stop confirmations), relayed by the engine alone.

A table of its own because a relay publishes every row of its table: with one table for both writers, the
bots service's relay (in the event loop that serves the API) took its turn at the engine's bursts of user
events, and dashboards waited behind a price crossing that filled many bots (docs/api-load.md)."""
