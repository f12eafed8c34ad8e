"""The notifier's consumers: user events (exchange `events`) and credential invalidations (`credentials`).

Each message's deliveries are written with its inbox row in one transaction, so a redelivered message adds
nothing; the delivery worker is woken once they are committed. A message becomes a delivery per channel of
its user for every element the user chose (messages.category, messages.wanted); a `bot_stats` element whose
profitPercent reaches the user's target is a `profit_target` notification once per bot (ProfitTargetHit).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import Bus, BusError, QueueKind, Subscription
from common.contracts import queues
from common.contracts.credentials import CREDENTIALS_EXCHANGE, CredentialEvent, CredentialEventType
from common.contracts.envelope import Envelope
from common.contracts.events import (
    EVENTS_EXCHANGE,
    EventKind,
    UserEvents,
    user_events_binding,
    user_events_key,
)
from notifier.messages import Note, notes_of, notification
from notifier.models import Channel, Delivery, InboxMessage, NotificationSettings, ProfitTargetHit

log = logging.getLogger(__name__)

EVENTS_QUEUE = queues.NOTIFIER_EVENTS
CREDENTIAL_EVENTS_QUEUE = queues.NOTIFIER_CREDENTIAL_EVENTS
_KINDS = frozenset({EventKind.TRADE.value, EventKind.BOT_STATUS.value, EventKind.BOT_STATS.value})


class EventConsumer:
    """Turns user events and credential invalidations into deliveries, once per message id."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        woken: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._factory = session_factory
        self._woken = woken
        self._clock = clock
        self._events: Subscription | None = None

    async def route(self, user: uuid.UUID) -> None:
        """Have the user's events reach the notifier from now on (before a channel of theirs is committed)."""
        if self._events is None:
            raise BusError("the notifier is not subscribed to user events")
        await self._events.bind(user_events_key(str(user)))

    async def subscribe(self, bus: Bus) -> list[Subscription]:
        """Durable queues of their own: what arrives while the notifier is down waits for it.

        The events queue is bound to `user.<id>.events` of each user with a channel (`route`), never to every
        user's: the engine's events of users nobody is to tell are dropped by RabbitMQ instead of being stored
        in a quorum queue, delivered here and looked up. Bindings outlive the notifier; each start binds every
        user with a channel again, and only then takes away the `user.*.events` binding earlier versions made.
        """
        events = await bus.subscribe(
            EVENTS_QUEUE,
            EVENTS_EXCHANGE,
            [],
            self.handle_user_events,
            kind=QueueKind.DURABLE,
            prefetch=8,
        )
        self._events = events
        async with self._factory() as session:
            users = (await session.execute(select(Channel.user_id).distinct())).scalars().all()
        for user in users:
            await events.bind(user_events_key(str(user)))
        await events.unbind(user_events_binding())
        return [
            events,
            await bus.subscribe(
                CREDENTIAL_EVENTS_QUEUE,
                CREDENTIALS_EXCHANGE,
                [CredentialEventType.INVALIDATED.value],
                self.handle_credential_event,
                kind=QueueKind.DURABLE,
                prefetch=1,
            ),
        ]

    async def handle_user_events(self, envelope: Envelope) -> None:
        """One engine transaction's events about one bot (raising asks the bus for a redelivery)."""
        try:
            message = envelope.payload_as(UserEvents)
            user = uuid.UUID(message.user_id)
        except (ValueError, ValidationError):
            log.warning("ignoring user events message %s", envelope.message_id)
            return
        elements = [e for e in message.events if e.get("type") in _KINDS]
        if not elements:
            return  # grid levels, backtests: nothing to tell

        def build(settings: NotificationSettings, hits: set[str]) -> list[Note]:
            return notes_of(
                elements,
                message.bot_id,
                str(user),
                envelope.occurred_at,
                settings.events,
                settings.profit_target_percent,
                hits,
            )

        await self._store(EVENTS_QUEUE, envelope.message_id, user, build)

    async def handle_credential_event(self, envelope: Envelope) -> None:
        """A stored credential the periodic re-validation found rejected: an `error` notification."""
        try:
            event = envelope.payload_as(CredentialEvent)
            user = uuid.UUID(event.user_id)
        except (ValueError, ValidationError):
            log.warning("ignoring credential message %s", envelope.message_id)
            return
        if envelope.type != CredentialEventType.INVALIDATED.value:
            return
        data = {"type": "credential_invalid", "exchange": event.exchange.value, "reason": event.reason}

        def build(settings: NotificationSettings, hits: set[str]) -> list[Note]:
            if "error" not in settings.events:
                return []
            return [("error", notification("error", str(user), envelope.occurred_at, data))]

        await self._store(CREDENTIAL_EVENTS_QUEUE, envelope.message_id, user, build)

    async def _store(
        self,
        consumer: str,
        message_id: str,
        user: uuid.UUID,
        build: Callable[[NotificationSettings, set[str]], list[Note]],
    ) -> None:
        async with self._factory() as session:
            settings = await session.get(NotificationSettings, user)
            if settings is None:
                return  # no settings, no channels: nothing to write, and a redelivery changes nothing either
            channels: Sequence[Channel] = (
                (
                    await session.execute(
                        select(Channel).where(Channel.user_id == user).order_by(Channel.position)
                    )
                )
                .scalars()
                .all()
            )
            if not channels:
                return
            session.add(InboxMessage(consumer=consumer, message_id=message_id))
            try:
                await session.flush()
            except IntegrityError:
                log.info("message %s already handled", message_id)
                return
            hits = set(
                (await session.execute(select(ProfitTargetHit.bot_id).where(ProfitTargetHit.user_id == user)))
                .scalars()
                .all()
            )
            before = set(hits)
            notes = build(settings, hits)
            for bot in hits - before:
                session.add(ProfitTargetHit(user_id=user, bot_id=bot))
            now = self._clock()
            for event, payload in notes:
                for channel in channels:
                    session.add(
                        Delivery(
                            user_id=user,
                            channel_id=channel.id,
                            channel_type=channel.type,
                            event=event,
                            payload=payload,
                            next_attempt_at=now,
                        )
                    )
            await session.commit()
        if notes:
            self._woken()
