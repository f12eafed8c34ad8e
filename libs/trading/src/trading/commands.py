"""Commands from the bots service to the engine, and the engine's stop confirmation (exchange `bots`).

Routing keys on the durable topic exchange `bots` (common.contracts.bots.BOTS_EXCHANGE):

* `bot.start`, `bot.stop`, `bot.updated`, `bot.deleted` — published by the bots service through its outbox
  after the change committed; payload `BotCommand`. The envelope's `message_id` equals `command_id`.
* `bot.stopped` — published by the engine once every open order of the bot is cancelled and the bot's
  status (the stop command's `status`) is committed (see the handshake in trading.models); payload
  `BotStopped`. The bots service waits for it (or for the committed row) before answering a stop or delete.

Delivery is at least once: consumers deduplicate by `command_id` / message id.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from common.contracts.bots import BotLifecycle

BOT_STOPPED = "bot.stopped"
"""Routing key of the engine's stop confirmation."""


class BotCommand(BotLifecycle):
    """A lifecycle message that is also a command to the engine: which config and which command."""

    config_version: int = Field(ge=1)
    """The bot's configuration version after this change; the engine ignores commands older than its own."""
    command_id: str = Field(min_length=1, max_length=64)
    """Unique per command; a `bot.stop` names the `bots.stop_command_id` it settles."""


class BotStopped(BaseModel):
    """The engine stopped a bot: no order of it is open any more, and its status is committed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    bot_id: str = Field(min_length=1, max_length=64)
    config_version: int = Field(ge=1)
    command_id: str = Field(min_length=1, max_length=64)
    open_orders: int = Field(default=0, ge=0)
