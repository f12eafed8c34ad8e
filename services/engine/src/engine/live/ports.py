"""What the live broker's parts (reconciliation, recovery) ask of the broker, as protocols.

`engine.live.broker.LiveBroker` is the one implementation. Typing the parts against these rather than the
class keeps the imports one-way: broker -> reconcile -> recovery -> ports.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Protocol

from engine.live.client import ExchangeClient
from engine.metrics import Metrics
from engine.model import BotHandle
from engine.scheduling.registry import Registry
from engine.settings import Settings
from engine.work import Work


class Reconciling(Protocol):
    """Reconciles one bot with its exchange (`engine.live.reconcile.Reconciler`)."""

    async def reconcile(self, bot_id: uuid.UUID) -> bool:
        """False when it ended on a transient error."""


class Broker(Protocol):
    """Clients, order calls and background work of the live bots (`engine.live.broker.LiveBroker`)."""

    @property
    def settings(self) -> Settings:
        """The engine's settings."""

    @property
    def registry(self) -> Registry:
        """The bots this replica holds."""

    @property
    def metrics(self) -> Metrics:
        """The engine's counters (reconciliations, adoptions)."""

    @property
    def reconciler(self) -> Reconciling:
        """Its reconciler."""

    async def client(self, handle: BotHandle) -> ExchangeClient:
        """The user's client for the bot's exchange."""

    async def check(self, bot_id: uuid.UUID, cid: str, *, attempts: int | None = None) -> None:
        """Ask the exchange about one order and bring the core in line with it."""

    async def cancel(self, bot_id: uuid.UUID, cid: str, *, client: ExchangeClient | None = None) -> None:
        """Cancel an order at the exchange, then fold its fills and close it."""

    def lock(self, cid: str) -> asyncio.Lock:
        """The lock serialising every exchange call about one order."""

    async def submit(self, work: Work) -> None:
        """Hand work to the bot's shard and wait for its commit."""

    def stream_up(self, handle: BotHandle) -> bool:
        """True when the bot's private stream covers it."""

    async def guarded(self, handle: BotHandle, coro: Awaitable[None]) -> None:
        """Run a background call; a failure owes the bot a reconciliation (or notes refused keys)."""

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run in the background, tracked so that closing the broker ends it."""
