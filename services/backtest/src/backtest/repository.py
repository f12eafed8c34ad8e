"""The backtest schema's reads and writes for one session (flushes, never commits: the caller's boundary)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backtest.models import Backtest, RunStatus


class BacktestRepository:
    """Backtest rows of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, backtest: Backtest) -> None:
        """Insert a new backtest."""
        self._session.add(backtest)
        await self._session.flush()

    async def owned(self, user: uuid.UUID, backtest_id: uuid.UUID) -> Backtest | None:
        """The user's backtest, or None (another user's is none too)."""
        row = await self._session.execute(
            select(Backtest).where(Backtest.id == backtest_id, Backtest.user_id == user)
        )
        return row.scalar_one_or_none()

    async def page(self, user: uuid.UUID, limit: int, offset: int) -> tuple[Sequence[Backtest], int]:
        """A page of the user's backtests, newest first, and how many there are in all."""
        total = await self._session.scalar(select(func.count()).where(Backtest.user_id == user))
        rows = await self._session.execute(
            select(Backtest)
            .where(Backtest.user_id == user)
            .order_by(Backtest.created_at.desc(), Backtest.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return rows.scalars().all(), int(total or 0)

    async def remove(self, user: uuid.UUID, backtest_id: uuid.UUID) -> bool:
        """Delete the user's backtest (a worker running it finds it gone and stops); False when none."""
        result = await self._session.execute(
            delete(Backtest).where(Backtest.id == backtest_id, Backtest.user_id == user)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def claim(self, backtest_id: uuid.UUID) -> Backtest | None:
        """The job's row locked for its claim, or None when it was deleted."""
        row = await self._session.execute(
            select(Backtest).where(Backtest.id == backtest_id).with_for_update()
        )
        return row.scalar_one_or_none()

    async def write_if_mine(self, backtest_id: uuid.UUID, attempt: int, **values: Any) -> bool:
        """Write the job's fields only while `attempt` is still its latest claim and it is running."""
        result = await self._session.execute(
            update(Backtest)
            .where(
                Backtest.id == backtest_id,
                Backtest.attempts == attempt,
                Backtest.status == RunStatus.RUNNING.value,
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def finished(status: RunStatus, now: datetime, **values: Any) -> dict[str, Any]:
    """The fields of a job's last write."""
    return {"status": status.value, "finished_at": now, **values}
