"""Commands to the engine: written to the outbox in the transaction of the change, relayed after commit."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.contracts.bots import BotStatus as WireStatus
from common.contracts.envelope import new_message_id
from common.exchanges import Exchange
from common.outbox import enqueue
from trading.commands import BotCommand
from trading.models import OUTBOX, Bot


def command_payload(bot: Bot, status: str, command_id: str) -> BotCommand:
    """The contract's payload for one command about `bot` (its status after the command)."""
    return BotCommand(
        bot_id=str(bot.id),
        user_id=str(bot.user_id),
        exchange=Exchange(bot.exchange),
        ticker=bot.ticker,
        status=WireStatus(status),
        mode=bot.mode,
        error_message=bot.error_message,
        config_version=bot.config_version,
        command_id=command_id,
    )


async def enqueue_command(
    session: AsyncSession, bot: Bot, event: BotEvent, status: str, command_id: str | None = None
) -> str:
    """Add `event` about `bot` to the outbox in the session's transaction; returns its command id.

    The command id is also the envelope's message id, so a consumer deduplicates by either.
    """
    command_id = command_id or new_message_id()
    payload = command_payload(bot, status, command_id)
    await enqueue(session, OUTBOX, BOTS_EXCHANGE, event.value, payload, message_id=command_id)
    return command_id
