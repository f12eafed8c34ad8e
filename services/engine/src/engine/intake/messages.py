"""Durable consumers: lifecycle commands from the bots service (`bots`) and fills (`orders`).

Each message becomes work for its bot's shard, carrying its inbox id; the handler returns (and the bus
acks) only once the shard committed the message's effects together with that inbox row. A message for a
bot this process does not know is still recorded (a later start loads the bot from the database).

Every replica gets every message (a queue of its own); a replica applies those of the bots it owns and
acks the others unapplied: their owner got them too, and a replica taking a partition over does what its
bots' rows ask (ResumeWork) and reconciles their orders with the exchange, so nothing sent during a
handover is lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

from pydantic import ValidationError

from common import tracing
from common.contracts import queues
from common.contracts.bots import BotEvent
from common.contracts.envelope import Envelope
from common.exchanges import Exchange
from engine.contracts import FILLS_QUEUE, OrderFilledMessage
from engine.metrics import Metrics
from engine.scheduling.shard import Shard
from engine.work import CommandWork, FillWork
from trading.commands import BotCommand

log = logging.getLogger(__name__)

COMMANDS_QUEUE = queues.ENGINE_COMMANDS
COMMAND_KEYS = (BotEvent.START.value, BotEvent.STOP.value, BotEvent.UPDATED.value, BotEvent.DELETED.value)

PriceLookup = Callable[[Exchange, str], Awaitable[Decimal | None]]
Owns = Callable[[uuid.UUID], Awaitable[bool]]


async def _everything(_: uuid.UUID) -> bool:
    return True


class CommandConsumer:
    """`bot.start`, `bot.stop`, `bot.updated`, `bot.deleted`."""

    def __init__(
        self, shard_for: Callable[[uuid.UUID], Shard], price: PriceLookup, owns: Owns = _everything
    ) -> None:
        self._shard_for = shard_for
        self._price = price
        self._owns = owns

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler."""
        try:
            kind = BotEvent(envelope.type)
            command = envelope.payload_as(BotCommand)
            bot_id = uuid.UUID(command.bot_id)
        except (ValueError, ValidationError):
            log.warning("ignoring bots message %s (%s)", envelope.message_id, envelope.type)
            return
        if not await self._owns(bot_id):
            return
        price = None
        if kind is BotEvent.START:
            # Looked up before the shard: a slow price source must not hold other bots' batches.
            price = await self._price(command.exchange, command.ticker)
        work = CommandWork(
            bot_id=bot_id,
            inbox=(COMMANDS_QUEUE, envelope.message_id),
            kind=kind,
            command=command,
            price=price,
            origin=tracing.capture(),
        )
        log.info("bot %s: %s received", bot_id, kind.value)
        await self._shard_for(bot_id).submit(work)


class FillConsumer:
    """`order.filled`, deduplicated by the fill's own id (exchange order id + fill id)."""

    def __init__(
        self,
        shard_for: Callable[[uuid.UUID], Shard],
        metrics: Metrics | None = None,
        owns: Owns = _everything,
    ) -> None:
        self._shard_for = shard_for
        self._metrics = metrics
        self.owns = owns
        self.in_flight = 0

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler."""
        try:
            message = envelope.payload_as(OrderFilledMessage)
            bot_id = uuid.UUID(message.bot_id)
        except (ValueError, ValidationError):
            log.warning("ignoring orders message %s (%s)", envelope.message_id, envelope.type)
            return
        if not await self.owns(bot_id):
            return
        if self._metrics is not None and message.trigger_published_at is not None:
            self._metrics.tick_to_fill_message.append(time.time() - message.trigger_published_at.timestamp())
        await self.apply(bot_id, message)

    async def apply(self, bot_id: uuid.UUID, message: OrderFilledMessage) -> None:
        """Apply one fill (from the bus, or found by a status check): once, whatever its source."""
        work = FillWork(
            bot_id=bot_id, inbox=(FILLS_QUEUE, message.message_id), message=message, origin=tracing.capture()
        )
        self.in_flight += 1
        try:
            await self._shard_for(bot_id).submit(work)
        finally:
            self.in_flight -= 1
