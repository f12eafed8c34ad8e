"""Units of work for a bot's shard: what happened to the bot, and who waits for it to be committed."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from common.contracts.bots import BotEvent
from common.tracing import Origin
from engine.contracts import OrderFilledMessage
from gridcore import OrderCanceled, OrderRejected, Side, Tick
from trading.commands import BotCommand


@dataclass(eq=False, kw_only=True)
class Work:
    """One thing to apply to one bot; `inbox` makes a redelivered message a no-op."""

    bot_id: uuid.UUID
    inbox: tuple[str, str] | None = None  # (consumer, message id)
    future: asyncio.Future[None] | None = field(default=None, repr=False)
    # The request id and trace of the message that asked for it (commands, fills; never ticks): the work is
    # applied in a span of that trace and the messages it causes carry both on.
    origin: Origin | None = field(default=None, repr=False)


@dataclass(eq=False, kw_only=True)
class TickWork(Work):
    """A (merged) price tick whose range concerns the bot."""

    tick: Tick
    published_at: datetime | None = None


@dataclass(eq=False, kw_only=True)
class FillWork(Work):
    """One fill of one of the bot's orders."""

    message: OrderFilledMessage


@dataclass(eq=False, kw_only=True)
class CommandWork(Work):
    """A lifecycle command from the bots service; `price` is the market price for a start, if known."""

    kind: BotEvent
    command: BotCommand
    price: Decimal | None = None


@dataclass(eq=False, kw_only=True)
class AckWork(Work):
    """The exchange accepted (or already had) an order: it rests there under this id."""

    client_order_id: str
    exchange_order_id: str


@dataclass(eq=False, kw_only=True)
class OrderClosedWork(Work):
    """The exchange confirmed an order canceled, or refused it for good."""

    event: OrderCanceled | OrderRejected


@dataclass(eq=False, kw_only=True)
class AdoptWork(Work):
    """An open order at the exchange with the bot's id prefix that the core does not know."""

    client_order_id: str
    exchange_order_id: str
    side: Side
    price: Decimal
    qty: Decimal


@dataclass(eq=False, kw_only=True)
class ResumeWork(Work):
    """Bring a bot in line with what its row asks (start, stop, new settings): on takeover, at startup, and
    when a sweep finds a command that never reached this replica."""

    price: Decimal | None = None


@dataclass(eq=False, kw_only=True)
class Barrier(Work):
    """Completes once the work queued before it in its shard did (draining a partition being handed over)."""


@dataclass(eq=False, kw_only=True)
class KeysGoneWork(Work):
    """The user's keys for the bot's exchange were deleted (or replaced by another account's): halt the bot.

    `note` is told to the user with the final status.
    """

    note: str | None = None


@dataclass(eq=False, kw_only=True)
class AbandonWork(Work):
    """The keys are gone and these open orders could not be cancelled: forget them and end the halt."""
