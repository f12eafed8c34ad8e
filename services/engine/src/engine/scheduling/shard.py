"""A shard: the single writer of its bots, committing their events in batches (group commit).

Every bot belongs to exactly one shard (by id), and a shard applies one batch at a time, so no two events
of one bot are ever handled at once. A batch is what queued up while the previous one committed (up to
`batch_size`): its inbox ids are claimed first (a redelivered message is skipped), each event is applied
to its bot's core in arrival order, and every row, state and outbox message of the batch is written in one
transaction. Only after the commit are waiters released (their messages acked), orders sent to exchanges
and the relay nudged. If the transaction fails, the bots it touched are reloaded from the database and
each event is retried in a transaction of its own, so one bad event cannot hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from opentelemetry.trace import Link
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common import tracing
from common.dbtypes import utc_now
from common.errortracking import background_task
from engine.applying import handlers
from engine.metrics import Metrics
from engine.model import BotHandle
from engine.persistence import errors, writes
from engine.scheduling.registry import Registry
from engine.step import CANCELED, Step
from engine.work import Barrier, TickWork, Work
from gridcore import PlaceOrder, SellMarket

log = logging.getLogger(__name__)

_STALE_RETRIES = 3
_YIELD_EVERY = 16  # work items applied between two turns given to the event loop


class AfterCommit(Protocol):
    """What happens once a live bot's step is committed: its orders go to the exchange."""

    def after_commit(
        self, handle: BotHandle, places: list[PlaceOrder | SellMarket], cancels: list[str]
    ) -> None:
        """Send the step's new orders and cancels (in the background)."""


class Fence(Protocol):
    """What a shard asks the replica's ownership: which bots are its own, at which epochs."""

    replica_id: str

    def epoch(self, bot_id: uuid.UUID) -> int | None:
        """The epoch the bot's partition is held at, None when it is not this replica's."""

    def fence(self, bot_ids: Iterable[uuid.UUID]) -> dict[int, int]:
        """The partition epochs a batch of these bots must find unchanged."""

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions another replica took."""


class Shard:
    """One writer: a queue of work, applied and committed batch by batch."""

    def __init__(
        self,
        number: int,
        factory: async_sessionmaker[AsyncSession],
        registry: Registry,
        metrics: Metrics,
        *,
        batch_size: int,
        ownership: Fence | None = None,
        live: AfterCommit | None = None,
        on_commit: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.number = number
        self._factory = factory
        self._registry = registry
        self._metrics = metrics
        self._batch_size = batch_size
        self._ownership = ownership
        self.live = live
        self._on_commit = on_commit
        self._clock = clock
        self._queue: asyncio.Queue[Work] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def submit(self, work: Work) -> asyncio.Future[None]:
        """Queue work; the future completes once it is committed (or fails with the reason)."""
        if work.future is None:
            work.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(work)
        return work.future

    @property
    def backlog(self) -> int:
        """Work waiting for a batch."""
        return self._queue.qsize()

    async def start(self) -> None:
        """Run the writer loop."""
        if self._task is None:
            self._task = background_task(self._run(), name=f"engine-shard-{self.number}")

    async def stop(self) -> None:
        """Stop after the batch in progress (queued work is failed, so its messages are redelivered)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():
            work = self._queue.get_nowait()
            _fail(work, RuntimeError("engine shutting down"))

    async def barrier(self) -> None:
        """Wait until every piece of work queued before this call is committed (or failed)."""
        work = Barrier(bot_id=uuid.UUID(int=0))
        await self.submit(work)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            barriers = [work for work in batch if isinstance(work, Barrier)]
            batch = self._own(batch)
            try:
                if batch:
                    await self._process(batch)
            except asyncio.CancelledError:
                for work in batch + barriers:
                    _fail(work, RuntimeError("engine shutting down"))
                raise
            except Exception as exc:  # never let one batch end the writer
                log.exception("shard %d: batch failed", self.number)
                for work in batch:
                    _fail(work, exc)
            for work in barriers:
                _done(work)

    def _own(self, batch: list[Work]) -> list[Work]:
        """The batch without barriers and without work for bots of partitions this replica does not hold
        (ignored: their owner got the same message, or reconciles them when it takes them over)."""
        kept = []
        for work in batch:
            if isinstance(work, Barrier):
                continue
            if self._ownership is not None and self._ownership.epoch(work.bot_id) is None:
                _done(work)
                continue
            kept.append(work)
        return kept

    async def _process(self, batch: list[Work]) -> None:
        try:
            await self._commit(batch)
            return
        except Exception as exc:
            self._metrics.rolled_back += 1
            if len(batch) == 1:
                await self._retry_alone(batch[0], exc)
                return
            log.info("shard %d: batch of %d failed (%s); retrying one by one", self.number, len(batch), exc)
        for work in batch:
            try:
                await self._commit([work])
            except Exception as exc:
                await self._retry_alone(work, exc)

    async def _retry_alone(self, work: Work, error: Exception) -> None:
        attempts = 0
        while isinstance(error, errors.StaleStateError) and attempts < _STALE_RETRIES:
            attempts += 1
            if not self._own([work]):
                return  # its partition was lost meanwhile: nothing of it is this replica's to write
            try:
                await self._commit([work])
                return
            except Exception as exc:
                error = exc
        if isinstance(work, TickWork):
            self._metrics.ticks_dropped += 1
            log.warning("shard %d: tick for bot %s dropped: %r", self.number, work.bot_id, error)
        else:
            log.warning(
                "shard %d: %s for bot %s failed: %r", self.number, type(work).__name__, work.bot_id, error
            )
        _fail(work, error)

    async def _commit(self, batch: list[Work]) -> None:
        began = time.perf_counter()
        now = self._clock()
        steps: dict[object, Step] = {}
        touched: list[BotHandle] = []
        traced = [work.origin for work in batch if work.origin is not None] if tracing.enabled() else []
        try:
            if traced:
                with tracing.batch_span("engine.batch", traced, shard=self.number, size=len(batch)) as link:
                    await self._transaction(batch, now, steps, touched, link)
            else:
                await self._transaction(batch, now, steps, touched, None)  # tracing off, or ticks only
        except BaseException:
            for handle in touched:
                handle.stale = True
            raise
        self._metrics.commit_seconds += time.perf_counter() - began
        self._metrics.work_items += len(batch)
        self._after(batch, list(steps.values()))

    async def _transaction(
        self,
        batch: list[Work],
        now: datetime,
        steps: dict[object, Step],
        touched: list[BotHandle],
        link: Link | None,
    ) -> None:
        """Apply the batch and write what it caused in one transaction (a span per traced unit of work)."""
        links = [link] if link is not None else []
        async with self._factory() as session, session.begin():
            if self._ownership is not None:
                epochs = self._ownership.fence(work.bot_id for work in batch)
                try:
                    await writes.fence(session, self._ownership.replica_id, epochs)
                except errors.FencedError as exc:
                    self._ownership.revoke(exc.partitions)
                    raise
            skip = await self._claim(session, batch)
            # Bots held dormant since a takeover (or stale) are loaded whole before anything is applied.
            await self._registry.wake(session, (work.bot_id for work in batch if id(work) not in skip))
            for position, work in enumerate(batch, 1):
                if position % _YIELD_EVERY == 0:
                    # A long batch is CPU bound: let the tick consumer and the other shards run meanwhile,
                    # or ticks pile up at the broker (and are dropped past its queue's length).
                    await asyncio.sleep(0)
                if id(work) in skip:
                    continue
                handle = await self._registry.get(session, work.bot_id)
                if handle is None:
                    continue
                step = steps.get(handle.id)
                if step is None:
                    step = steps[handle.id] = Step(handle, now)
                    touched.append(handle)
                if work.origin is None:
                    await handlers.apply(session, step, work)
                    continue
                step.origin = work.origin
                with tracing.resumed(work.origin, f"engine.apply {type(work).__name__}", links):
                    await handlers.apply(session, step, work)
            written = [step for step in steps.values() if _finish(step)]
            await writes.flush(session, written)
        self._metrics.duplicates += len(skip)

    async def _claim(self, session: AsyncSession, batch: list[Work]) -> set[int]:
        """Claim the batch's inbox ids; the work to skip (handled before, or a second copy in this batch)."""
        by_consumer: dict[str, list[str]] = {}
        for work in batch:
            if work.inbox is not None:
                by_consumer.setdefault(work.inbox[0], []).append(work.inbox[1])
        earlier: set[tuple[str, str]] = set()
        for consumer, ids in by_consumer.items():
            earlier.update((consumer, mid) for mid in await writes.claim_inbox(session, consumer, ids))
        skip: set[int] = set()
        seen: set[tuple[str, str]] = set()
        for work in batch:
            if work.inbox is None:
                continue
            if work.inbox in earlier or work.inbox in seen:
                skip.add(id(work))
            seen.add(work.inbox)
        return skip

    def _after(self, batch: list[Work], steps: list[Step]) -> None:
        metrics = self._metrics
        metrics.transactions += 1
        committed_at = time.time()
        outbox = False
        for step in steps:
            handle = step.handle
            if step.new_version is not None:
                handle.version = step.new_version
            metrics.orders_placed += len(step.order_inserts)
            if step.order_updates:
                metrics.orders_cancelled += sum(ref.status == CANCELED for ref in step.order_updates.values())
            metrics.paper_fills += step.paper_fills
            metrics.fills += len(step.trade_inserts)
            if step.triggers:
                earliest = min(step.triggers).timestamp()
                if step.order_inserts:
                    metrics.tick_to_order.append(committed_at - earliest)
                if step.paper_fills:
                    metrics.tick_to_paper_fill.append(committed_at - earliest)
            outbox = outbox or bool(step.outbox)
            if _at_rest(handle):
                self._registry.drop(handle)  # loaded again from the database if it is ever needed
            else:
                self._registry.reindex(handle)
            if not handle.is_paper and self.live is not None and (step.places or step.cancels):
                self.live.after_commit(handle, step.places, step.cancels)
        if outbox and self._on_commit is not None:
            self._on_commit()
        for work in batch:
            if work.future is not None and not work.future.done():
                work.future.set_result(None)


def _at_rest(handle: BotHandle) -> bool:
    """Stopped for good as far as this engine knows: nothing open, nothing pending, not wanted running."""
    return (
        handle.halted
        and not handle.orders
        and not handle.pending_start
        and (handle.row.deleted or handle.row.stop_command_id is not None or handle.row.status != "running")
    )


def _finish(step: Step) -> bool:
    if step.origin is None:
        step.finish()  # the hot path (ticks): no context to resume
    else:
        with tracing.resumed(step.origin):  # its user events carry the request id and trace of their cause
            step.finish()
    return step.writes_anything


def _done(work: Work) -> None:
    if work.future is not None and not work.future.done():
        work.future.set_result(None)


def _fail(work: Work, error: BaseException) -> None:
    if work.future is not None and not work.future.done():
        work.future.set_exception(error)
        # The waiter may be gone (a tick batch that timed out); do not warn about an unread exception.
        work.future.exception()
