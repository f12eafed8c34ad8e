"""The engine's lease on the bots it drives (engine_states.owner / lease_expires_at): a fence, not sharding.

One engine process is the supported deployment. The lease makes a second one harmless instead of
dangerous: at start an engine claims every bot state that is unowned, its own, or whose lease expired, and
refuses to run while another engine holds a live lease (`LeaseConflictError`). It renews its leases every
third of their length; if a renewal finds a state it owned now owned by another engine (it stalled longer
than its lease and was taken over), it reports the loss, and the runtime stops driving bots at once.
Sharding bots over several live engines needs per-owner routing of commands and fills (see the runtime's
docs) and is not done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.dbtypes import utc_now
from common.trading.models import EngineState

log = logging.getLogger(__name__)

_CLAIM_CHUNK = 200
# A renewal paces its chunks this far apart (while its pass is within a sixth of the lease): back to back,
# they rewrite every state row in a few hundred ms, and the shards' commits meanwhile wait on those rows'
# locks and behind their WAL (the slowest tick->order samples at 10,000 bots were the ones during renewal).
_RENEW_PAUSE_SECONDS = 0.05


class LeaseConflictError(RuntimeError):
    """Another engine holds a live lease on bots: two engines must not drive the same bots."""


class Lease:
    """Claims and renews this engine's lease on every bot state."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        owner: str,
        seconds: float,
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        self._factory = factory
        self.owner = owner
        self.seconds = seconds
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    async def acquire(self) -> int:
        """Claim what is free or expired; raise LeaseConflictError (claiming nothing) while another engine's
        lease is live."""
        others = await self.lost()
        if others:
            raise LeaseConflictError(
                f"{others} bot states are leased by another engine; one engine process is supported"
            )
        return await self._claim()

    async def _claim(self, pace: bool = False) -> int:
        """Claim (or renew) in chunks of a few hundred states, each in a short transaction of its own and in
        bot id order, as the shards lock states: one statement over every state would hold all of their
        rows locked while it runs, stalling (or deadlocking with) the batches that write them. Paced (a
        renewal), chunks are spread over up to a sixth of the lease; every expiry is counted from the
        pass's start, so pacing never extends a lease beyond what an unpaced pass would give."""
        now = utc_now()
        began = time.monotonic()
        claimable = or_(
            EngineState.owner.is_(None),
            EngineState.owner == self.owner,
            EngineState.lease_expires_at.is_(None),
            EngineState.lease_expires_at < now,
        )
        claimed, after = 0, None
        while True:
            chunk = (
                select(EngineState.bot_id)
                .where(claimable)
                .order_by(EngineState.bot_id)
                .limit(_CLAIM_CHUNK)
                .with_for_update()
            )
            if after is not None:
                chunk = chunk.where(EngineState.bot_id > after)
            async with self._factory() as session, session.begin():
                result = await session.execute(
                    update(EngineState)
                    .where(EngineState.bot_id.in_(chunk.scalar_subquery()))
                    .values(owner=self.owner, lease_expires_at=now + timedelta(seconds=self.seconds))
                    .returning(EngineState.bot_id)
                    .execution_options(synchronize_session=False)
                )
                ids = list(result.scalars())
            claimed += len(ids)
            if len(ids) < _CLAIM_CHUNK:
                return claimed
            after = max(ids)
            if pace and time.monotonic() - began < self.seconds / 6:
                await asyncio.sleep(_RENEW_PAUSE_SECONDS)

    async def lost(self) -> int:
        """States this engine leased that another engine holds now."""
        async with self._factory() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(EngineState)
                .where(
                    and_(
                        EngineState.owner.is_not(None),
                        EngineState.owner != self.owner,
                        EngineState.lease_expires_at > utc_now(),
                    )
                )
            )
        return int(count or 0)

    async def release(self) -> None:
        """Give every lease of this engine up at once (a clean stop: another engine may take over now)."""
        async with self._factory() as session, session.begin():
            await session.execute(
                update(EngineState)
                .where(EngineState.owner == self.owner)
                .values(lease_expires_at=utc_now())
                .execution_options(synchronize_session=False)
            )

    def start(self) -> None:
        """Renew in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._renew(), name="engine-lease")

    async def stop(self) -> None:
        """Stop renewing (the lease runs out by itself)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                if await self.lost():
                    log.critical("engine %s lost bots to another engine: it stops driving bots", self.owner)
                    await self._on_lost()
                    return
                await self._claim(pace=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the lease may lapse; checked again next round
                log.warning("lease renewal failed: %s", type(exc).__name__)
