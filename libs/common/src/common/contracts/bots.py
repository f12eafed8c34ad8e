"""Bot lifecycle messages on the durable topic exchange `bots` (published by the bots service).

Routing keys: `bot.start`, `bot.stop`, `bot.updated`, `bot.deleted`. Market-data consumes them to know
which tickers to stream; the engine to drive bots.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from common.exchanges.ids import Exchange

BOTS_EXCHANGE = "bots"
"""The durable topic exchange carrying bot commands and lifecycle events."""


class BotEvent(StrEnum):
    """Routing keys of bot lifecycle messages."""

    START = "bot.start"
    STOP = "bot.stop"
    UPDATED = "bot.updated"
    DELETED = "bot.deleted"


class BotStatus(StrEnum):
    """A bot's status as API.md names it."""

    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


class BotLifecycle(BaseModel):
    """A bot started, stopped, changed or was deleted; `status` is its status after the event."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    bot_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=64)
    exchange: Exchange
    ticker: str = Field(min_length=1, max_length=40)
    status: BotStatus
    mode: str | None = None
    error_message: str | None = None

    @property
    def is_running(self) -> bool:
        """True when the bot trades after this event."""
        return self.status is BotStatus.RUNNING
