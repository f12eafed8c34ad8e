"""Waiting for the engine's stop confirmation: `bot.stopped` on the bus, or the committed row, by a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import Bus, QueueKind, Subscription
from common.contracts.bots import BOTS_EXCHANGE
from common.contracts.envelope import Envelope
from trading.commands import BOT_STOPPED, BotStopped
from trading.models import Bot

log = logging.getLogger(__name__)


class StopConfirmations:
    """Per-process waiters keyed by command id, resolved by `bot.stopped` or by polling the bot's row.

    Every process binds its own transient queue, so whichever replica waits hears the confirmation; the
    row is polled too, because a transient queue can lose a message across a broker reconnection.
    """

    def __init__(
        self,
        bus: Bus,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        poll_interval: float = 0.5,
    ) -> None:
        self._bus = bus
        self._factory = session_factory
        self._poll_interval = poll_interval
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Bind this process's queue to `bot.stopped` (before any stop can be requested)."""
        if self._subscription is None:
            self._subscription = await self._bus.subscribe(
                f"bots.stop-confirmations.{uuid.uuid4().hex[:12]}",
                BOTS_EXCHANGE,
                [BOT_STOPPED],
                self._on_message,
                kind=QueueKind.TRANSIENT,
                prefetch=16,
                max_retries=1,
            )

    async def stop(self) -> None:
        """Unbind (the transient queue goes with it) and release every waiter."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.cancel()
        for future in self._waiters.values():
            future.cancel()
        self._waiters.clear()

    def expect(self, command_id: str) -> None:
        """Register interest in a command's confirmation before the command can leave."""
        self._waiters.setdefault(command_id, asyncio.get_running_loop().create_future())

    def forget(self, command_id: str) -> None:
        """Drop a waiter (the command was never committed, or its wait is over)."""
        future = self._waiters.pop(command_id, None)
        if future is not None and not future.done():
            future.cancel()

    async def _on_message(self, envelope: Envelope) -> None:
        try:
            message = envelope.payload_as(BotStopped)
        except ValidationError:
            log.warning("unreadable bot.stopped message %s", envelope.message_id)
            return
        if message.open_orders:
            log.error(
                "bot.stopped for %s reports %d open orders; not a confirmation",
                message.bot_id,
                message.open_orders,
            )
            return
        future = self._waiters.get(message.command_id)
        if future is not None and not future.done():
            future.set_result(None)

    async def _row_confirms(self, bot_id: uuid.UUID, command_id: str, status: str) -> bool:
        async with self._factory() as session:
            row = (
                await session.execute(select(Bot.status, Bot.stop_command_id).where(Bot.id == bot_id))
            ).one_or_none()
        return row is not None and row.stop_command_id == command_id and row.status == status

    async def wait(self, bot_id: uuid.UUID, command_id: str, status: str, timeout: float) -> bool:  # noqa: ASYNC109
        """True once the engine confirmed `command_id` (bus or row), False when `timeout` passed first."""
        self.expect(command_id)
        future = self._waiters[command_id]
        deadline = time.monotonic() + timeout
        try:
            while True:
                if future.done() and not future.cancelled():
                    return True
                try:
                    if await self._row_confirms(bot_id, command_id, status):
                        return True
                except Exception as exc:  # a database hiccup must not end the wait early
                    log.warning("polling the stop of %s failed: %s", bot_id, type(exc).__name__)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(future), min(self._poll_interval, remaining))
        except asyncio.CancelledError:
            if future.cancelled():  # released by stop(): the service is shutting down
                return False
            raise
        finally:
            self.forget(command_id)
