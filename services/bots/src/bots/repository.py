"""Queries of the bots service's commands on the trading tables (the read routes' statements are bots.reads);
every bot lookup of a user's route is scoped to that user and to bots not deleted. Flushes, never commits: the
service commits at the boundary."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trading.models import Bot, BotStatus, GridLevel


class BotRepository:
    """Bots, their grid levels and their trades, as the bot routes read and change them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # --- bots ---------------------------------------------------------------------------------------------

    async def owned(self, user: uuid.UUID, bot_id: uuid.UUID, *, for_update: bool = False) -> Bot | None:
        """The user's bot unless deleted (locked when asked); another user's bot is not found either."""
        query = select(Bot).where(Bot.id == bot_id, Bot.user_id == user, Bot.deleted_at.is_(None))
        if for_update:
            query = query.with_for_update()
        return (await self._session.execute(query)).scalar_one_or_none()

    async def owned_even_deleted(self, user: uuid.UUID, bot_id: uuid.UUID) -> Bot:
        """The user's bot, deleted or not (it exists: the caller just changed it)."""
        query = select(Bot).where(Bot.id == bot_id, Bot.user_id == user)
        return (await self._session.execute(query)).scalar_one()

    async def list_owned(self, user: uuid.UUID, status: str | None, exchange: str | None) -> list[Bot]:
        """The user's bots (optionally of one status and exchange), newest first."""
        query = select(Bot).where(Bot.user_id == user, Bot.deleted_at.is_(None))
        if status is not None:
            query = query.where(Bot.status == status)
        if exchange is not None:
            query = query.where(Bot.exchange == exchange)
        return list((await self._session.execute(query.order_by(Bot.created_at.desc(), Bot.id))).scalars())

    async def add(self, bot: Bot, levels: Sequence[GridLevel]) -> None:
        """Insert a new bot and its grid."""
        self._session.add(bot)
        await self._session.flush()
        self._session.add_all(levels)

    async def change_if_stopping(
        self, bot_id: uuid.UUID, command_id: str, values: Mapping[str, object]
    ) -> bool:
        """Set `values` on the bot if `command_id` is still its stop and it has not stopped; True if it was."""
        result = await self._session.execute(
            update(Bot)
            .where(Bot.id == bot_id, Bot.stop_command_id == command_id, Bot.status != BotStatus.STOPPED.value)
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def change_stopping_since(self, cutoff: datetime, values: Mapping[str, object]) -> int:
        """Set `values` on every bot still running whose stop was asked for before `cutoff`; how many."""
        result = await self._session.execute(
            update(Bot)
            .where(
                Bot.status == BotStatus.RUNNING.value,
                Bot.stop_command_id.is_not(None),
                Bot.stop_requested_at < cutoff,
                Bot.deleted_at.is_(None),
            )
            .values(**values)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- grid levels --------------------------------------------------------------------------------------

    async def replace_levels(self, bot_id: uuid.UUID, levels: Sequence[GridLevel]) -> None:
        """A rebuilt grid: the bot's levels are these from now on.

        Every row of the bot goes, whatever its index or state: trailing up leaves inactive rows and adds
        rows past gridCount, and none of them belongs to the new grid.
        """
        await self._session.execute(delete(GridLevel).where(GridLevel.bot_id == bot_id))
        self._session.add_all(levels)

    async def level_prices(self, bot_id: uuid.UUID) -> list[Decimal]:
        """The prices of the bot's grid as it is now (its active levels), ascending."""
        rows = await self._session.execute(
            select(GridLevel.price).where(GridLevel.bot_id == bot_id, GridLevel.active.is_(True))
        )
        # Sorted here: money is text on SQLite, which would sort it as text.
        return sorted(rows.scalars())
