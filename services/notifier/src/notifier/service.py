"""The notification routes' work: settings (channels sealed, targets checked), test messages, deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.contracts.public import Pagination
from common.crypto import KeyRing
from common.schemas import validation_error
from common.security import user_uuid
from notifier.channels import new_row, view
from notifier.messages import TEST, notification
from notifier.models import Channel, Delivery, NotificationSettings, ProfitTargetHit
from notifier.schemas import (
    DEFAULT_EVENTS,
    EVENT_NAMES,
    DeliveryList,
    DeliveryRead,
    SettingsRead,
    TestQueued,
    UpdateSettingsRequest,
    WebhookChannelIn,
)
from notifier.ssrf import TargetRefusedError, check_target


def delivery_view(row: Delivery) -> DeliveryRead:
    """What the deliveries route shows of one delivery."""
    return DeliveryRead(
        delivery_id=row.id,
        channel_id=row.channel_id,
        channel_type=row.channel_type,
        event=row.event,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


class NotificationService:
    """Reads and writes of one user's notification settings and deliveries."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        ring: KeyRing,
        *,
        allow_private: bool,
        woken: Callable[[], None],
        clock: Callable[[], datetime],
        route: Callable[[uuid.UUID], Awaitable[None]],
    ) -> None:
        self._route = route
        self._factory = session_factory
        self._ring = ring
        self._allow_private = allow_private
        self._woken = woken
        self._clock = clock

    async def read(self, user_id: str) -> SettingsRead:
        """The user's settings (the defaults, without channels, before any PUT)."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            return await self._read(session, user)

    async def _read(self, session: AsyncSession, user: uuid.UUID) -> SettingsRead:
        settings = await session.get(NotificationSettings, user)
        channels = (
            (await session.execute(select(Channel).where(Channel.user_id == user).order_by(Channel.position)))
            .scalars()
            .all()
        )
        events = settings.events if settings is not None else list(DEFAULT_EVENTS)
        return SettingsRead(
            channels=[view(c) for c in channels],
            events=[e for e in EVENT_NAMES if e in events],
            profit_target_percent=settings.profit_target_percent if settings is not None else None,
        )

    async def replace(self, user_id: str, body: UpdateSettingsRequest) -> SettingsRead:
        """Replace the user's settings; a webhook target the SSRF guard refuses is VALIDATION_ERROR."""
        user = user_uuid(user_id)
        for index, channel in enumerate(body.channels):
            if isinstance(channel, WebhookChannelIn):
                try:
                    await check_target(channel.url, allow_private=self._allow_private)
                except TargetRefusedError as refused:
                    raise validation_error(f"channels.{index}.url", str(refused)) from None
        events: list[str] = [e for e in EVENT_NAMES if e in body.events]
        async with self._factory() as session:
            settings = await session.get(NotificationSettings, user, with_for_update=True)
            if settings is None:
                settings = NotificationSettings(user_id=user, events=events)
                session.add(settings)
            elif settings.profit_target_percent != body.profit_target_percent:
                # A new target is news again for every bot.
                await session.execute(delete(ProfitTargetHit).where(ProfitTargetHit.user_id == user))
            settings.events = events
            settings.profit_target_percent = body.profit_target_percent
            settings.updated_at = self._clock()
            await session.execute(delete(Channel).where(Channel.user_id == user))
            for position, channel in enumerate(body.channels):
                session.add(new_row(self._ring, user, position, channel))
            await session.flush()
            shown = await self._read(session, user)
            if body.channels:
                # Routed before the channels are committed, so no event after the answer goes untold. The
                # binding stays when channels are taken away: unbinding could race a concurrent PUT adding
                # them, and a stray binding only costs the drop of that user's events (consumers._store).
                await self._route(user)
            await session.commit()
        return shown

    async def test(self, user_id: str) -> TestQueued:
        """A test message queued to every channel of the user."""
        user = user_uuid(user_id)
        now = self._clock()
        async with self._factory() as session:
            channels = (
                (
                    await session.execute(
                        select(Channel).where(Channel.user_id == user).order_by(Channel.position)
                    )
                )
                .scalars()
                .all()
            )
            payload = notification(TEST, str(user), now, {"type": TEST})
            rows = [
                Delivery(
                    id=uuid.uuid4(),
                    user_id=user,
                    channel_id=c.id,
                    channel_type=c.type,
                    event=TEST,
                    payload=payload,
                    next_attempt_at=now,
                    status="pending",
                    attempts=0,
                    created_at=now,
                )
                for c in channels
            ]
            session.add_all(rows)
            await session.commit()
            shown = [delivery_view(r) for r in rows]
        if rows:
            self._woken()
        return TestQueued(deliveries=shown)

    async def deliveries(self, user_id: str, limit: int, offset: int) -> DeliveryList:
        """A page of the user's deliveries, newest first."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            total = int(await session.scalar(select(func.count()).where(Delivery.user_id == user)) or 0)
            rows = (
                (
                    await session.execute(
                        select(Delivery)
                        .where(Delivery.user_id == user)
                        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
                        .limit(limit)
                        .offset(offset)
                    )
                )
                .scalars()
                .all()
            )
        return DeliveryList(
            deliveries=[delivery_view(r) for r in rows],
            pagination=Pagination(
                total=total, limit=limit, offset=offset, has_more=offset + len(rows) < total
            ),
        )
