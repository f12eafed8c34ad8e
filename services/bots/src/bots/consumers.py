"""Credential events (exchange `credentials`): halt the user's running live bots on that exchange.

`credential.deleted` stops them through the same path as POST /bots/:id/stop (engine confirmation, error on
timeout); `credential.invalidated` puts them in `error` with a clear message and tells the engine to stop
them. Each message's effect is committed together with its inbox row, so a redelivery changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.service import BotService
from bots.views import ERROR_MESSAGES
from common.bus import Bus, QueueKind, Subscription
from common.contracts.credentials import CREDENTIALS_EXCHANGE, CredentialEvent, CredentialEventType
from common.contracts.envelope import Envelope
from common.trading.models import Bot, BotMode, BotStatus, InboxMessage

log = logging.getLogger(__name__)

CREDENTIAL_EVENTS_QUEUE = "bots.credential-events"
INVALIDATED = "credential_invalidated"


class CredentialEventConsumer:
    """Applies credential events to bots, once per message id."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], service: BotService) -> None:
        self._factory = session_factory
        self._service = service

    async def subscribe(self, bus: Bus) -> Subscription:
        """A durable queue, one message at a time in order (events are rare; a stop may wait for the engine)."""
        return await bus.subscribe(
            CREDENTIAL_EVENTS_QUEUE,
            CREDENTIALS_EXCHANGE,
            [kind.value for kind in CredentialEventType],
            self.handle,
            kind=QueueKind.DURABLE,
            prefetch=1,
        )

    async def handle(self, envelope: Envelope) -> None:
        """Handle one event (raising asks the bus for a redelivery)."""
        try:
            kind = CredentialEventType(envelope.type)
            event = envelope.payload_as(CredentialEvent)
            user = uuid.UUID(event.user_id)
        except (ValueError, ValidationError):
            # Not for us or unusable; retrying cannot make it usable.
            log.warning("ignoring credential message %s (%s)", envelope.message_id, envelope.type)
            return
        pending = await self._apply(envelope.message_id, kind, user, event)
        # Waits happen after the commit, outside the transaction; a timeout leaves the bot in error.
        results = await asyncio.gather(
            *(self._service.await_stop(user, bot_id, command_id) for bot_id, command_id in pending),
            return_exceptions=True,
        )
        for (bot_id, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("bot %s was not confirmed stopped after %s: %s", bot_id, kind.value, result)

    async def _apply(
        self, message_id: str, kind: CredentialEventType, user: uuid.UUID, event: CredentialEvent
    ) -> list[tuple[uuid.UUID, str]]:
        """The state change and the inbox row in one transaction; the stops to wait for."""
        async with self._factory() as session:
            session.add(InboxMessage(consumer=CREDENTIAL_EVENTS_QUEUE, message_id=message_id))
            try:
                await session.flush()
            except IntegrityError:
                log.info("credential message %s already handled", message_id)
                return []
            bots = (
                (
                    await session.execute(
                        select(Bot)
                        .where(
                            Bot.user_id == user,
                            Bot.exchange == event.exchange.value,
                            Bot.mode == BotMode.LIVE.value,
                            Bot.status == BotStatus.RUNNING.value,
                            Bot.deleted_at.is_(None),
                        )
                        .order_by(Bot.id)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            if kind is CredentialEventType.INVALIDATED:
                ko, _ = ERROR_MESSAGES[INVALIDATED]
                for bot in bots:
                    bot.status = BotStatus.ERROR.value
                    bot.error_code, bot.error_message = INVALIDATED, ko
                    await self._service.request_stop(session, bot, BotStatus.ERROR.value, commit=False)
                await self._service.commit(session)
                return []
            pending = [(bot.id, await self._service.request_stop(session, bot, commit=False)) for bot in bots]
            await self._service.commit(session)
            return pending
