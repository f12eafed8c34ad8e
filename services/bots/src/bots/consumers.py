"""Credential events (exchange `credentials`): keys the exchange rejects halt the user's live bots there.

`credential.invalidated` puts that user's running live bots of that exchange in `error` with a clear
message (`stopReason: "error"`) and tells the engine to stop them. Each message's effect is committed
together with its inbox row, so a redelivery changes nothing. (`credential.deleted` and
`credential.updated` are the engine's: it must cancel the bots' orders with the keys it still holds before
it lets them go, see docs/engine.md.)
"""

from __future__ import annotations

import logging
import uuid

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.service import BotService
from bots.views import ERROR_MESSAGES
from common.bus import Bus, QueueKind, Subscription
from common.contracts import queues
from common.contracts.credentials import CREDENTIALS_EXCHANGE, CredentialEvent, CredentialEventType
from common.contracts.envelope import Envelope
from trading.models import Bot, BotMode, BotStatus, InboxMessage, StopReason

log = logging.getLogger(__name__)

CREDENTIAL_EVENTS_QUEUE = queues.BOTS_CREDENTIAL_EVENTS
INVALIDATED = "credential_invalidated"


class CredentialEventConsumer:
    """Applies credential events to bots, once per message id."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], service: BotService) -> None:
        self._factory = session_factory
        self._service = service

    async def subscribe(self, bus: Bus) -> Subscription:
        """A durable queue, one message at a time in order (events are rare)."""
        return await bus.subscribe(
            CREDENTIAL_EVENTS_QUEUE,
            CREDENTIALS_EXCHANGE,
            [CredentialEventType.INVALIDATED.value],
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
        if kind is not CredentialEventType.INVALIDATED:
            return  # not bound; the engine's
        await self._apply(envelope.message_id, user, event)

    async def _apply(self, message_id: str, user: uuid.UUID, event: CredentialEvent) -> None:
        """The state change and the inbox row in one transaction."""
        async with self._factory() as session:
            session.add(InboxMessage(consumer=CREDENTIAL_EVENTS_QUEUE, message_id=message_id))
            try:
                await session.flush()
            except IntegrityError:
                log.info("credential message %s already handled", message_id)
                return
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
            ko, _ = ERROR_MESSAGES[INVALIDATED]
            for bot in bots:
                bot.status, bot.stop_reason = BotStatus.ERROR.value, StopReason.ERROR.value
                bot.error_code, bot.error_message = INVALIDATED, ko
                await self._service.request_stop(session, bot, BotStatus.ERROR.value, commit=False)
            await self._service.commit(session)
