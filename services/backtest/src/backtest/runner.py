"""One backtest job on a worker: claim it, make sure its candles are stored, replay the grid, store the result.

Ownership is the row's attempt counter: a claim increments it, and every later write of the job (progress,
result, failure) is conditional on it being unchanged and the job still running. A worker that died gives
its job back to the bus (the delivery was not acked) and the next claim supersedes it; one that merely
stalled finds its writes refused and stops. The result and the final event are committed together (the
event through the outbox), so a result is stored once and announced once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backtest import kernel
from backtest.candles import CandleStore
from backtest.models import OUTBOX, Backtest, RunStatus
from backtest.repository import BacktestRepository, finished
from common.bus import Bus, BusError
from common.contracts.backtests import BacktestJob
from common.contracts.envelope import Envelope
from common.contracts.events import EVENTS_EXCHANGE, BacktestEvent, UserEvents, user_events_key
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode, message_for
from common.exchanges import Exchange
from common.exchanges.errors import ExchangeCallError, to_app_error
from common.outbox import OutboxRelay, enqueue, take_pending
from common.parking import Fault

log = logging.getLogger(__name__)

# Candles take the first 80 % of the progress bar (they are most of the wall time on a cold cache).
FETCH_SHARE = 80


class SupersededError(Exception):
    """The job was deleted or claimed again by another worker: stop without writing anything."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class JobRunner:
    """Runs the jobs this worker receives."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        store: CandleStore,
        bus: Bus,
        relay: OutboxRelay,
        worker_id: str,
        max_attempts: int,
        progress_step: int,
        fault: Fault | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._factory = session_factory
        self._store = store
        self._bus = bus
        self._relay = relay
        self._worker = worker_id
        self._max_attempts = max_attempts
        self._step = progress_step
        self._clock = clock
        self._fault = fault

    async def handle(self, envelope: Envelope) -> None:
        """The bus handler: returns (ack) when the job is settled, raises (redelivery) on an outage."""
        try:
            job = envelope.payload_as(BacktestJob)
            backtest_id = uuid.UUID(job.backtest_id)
        except (ValueError, ValidationError):
            log.warning("ignoring unusable backtest job %s", envelope.message_id)
            return
        await self.run(backtest_id)

    async def run(self, backtest_id: uuid.UUID) -> None:
        """Claim and run one job to its end (done or failed), unless it is settled or gone."""
        claimed = await self._claim(backtest_id)
        if claimed is None:
            return
        row, attempt = claimed
        if self._fault is not None:
            await self._fault("after_claim", str(backtest_id))
        try:
            result = await self._execute(row, attempt)
        except SupersededError:
            log.info("backtest %s was deleted or claimed again; stopping", backtest_id)
            return
        except (AppError, ExchangeCallError) as exc:
            # The exchange refused (an unknown market) or stayed down through the catalog's own retries: the
            # user sees why and may run it again; a job does not hold a worker through an exchange outage.
            await self._fail(row, attempt, to_app_error(exc).code, None)
            return
        except (SQLAlchemyError, BusError, OSError):
            # Our own infrastructure: the delivery is not acked, so the job runs again (a new claim).
            log.warning(
                "backtest %s interrupted by an outage; it will be retried", backtest_id, exc_info=True
            )
            raise
        except Exception:  # a bug would fail every retry the same way: fail it once, loudly
            log.exception("backtest %s failed", backtest_id)
            await self._fail(row, attempt, ErrorCode.INTERNAL_SERVER_ERROR, None)
            return
        await self._finish(row, attempt, result)

    async def _claim(self, backtest_id: uuid.UUID) -> tuple[Backtest, int] | None:
        async with self._factory() as session:
            repo = BacktestRepository(session)
            row = await repo.claim(backtest_id)
            if row is None or row.status in (RunStatus.DONE.value, RunStatus.FAILED.value):
                return None
            if row.attempts >= self._max_attempts:
                # Every earlier claim ended without a result (workers died, or outages outlasted retries).
                row.status, row.finished_at = RunStatus.FAILED.value, self._clock()
                row.error = _error(ErrorCode.INTERNAL_SERVER_ERROR, f"gave up after {row.attempts} attempts")
                await self._announce(session, row)
                await self._commit(session)
                return None
            row.attempts += 1
            row.status, row.worker = RunStatus.RUNNING.value, self._worker
            row.started_at = row.started_at or self._clock()
            attempt = row.attempts
            await self._commit(session)
        await self._push(row, RunStatus.RUNNING, row.progress)
        return row, attempt

    async def _execute(self, row: Backtest, attempt: int) -> dict[str, Any]:
        exchange, start, end = Exchange(row.exchange), _ms(row.start_at), _ms(row.end_at)
        shown = row.progress

        async def fetched(done: int, total: int) -> None:
            nonlocal shown
            percent = FETCH_SHARE * done // max(total, 1)
            if percent >= shown + self._step:
                shown = percent
                await self._progress(row, attempt, percent)

        await self._store.ensure(exchange, row.ticker, start, end, fetched)
        candles = await self._store.load(exchange, row.ticker, start, end)
        await self._progress(row, attempt, FETCH_SHARE)
        # CPU-bound: off the event loop, so the bus connection's heartbeats and other jobs go on.
        result = await asyncio.to_thread(kernel.run_grid, row.grid, candles, start, end)
        return result.model_dump(mode="json", by_alias=True)

    async def _progress(self, row: Backtest, attempt: int, percent: int) -> None:
        async with self._factory() as session:
            if not await BacktestRepository(session).write_if_mine(row.id, attempt, progress=percent):
                raise SupersededError
            await session.commit()
        row.progress = percent
        await self._push(row, RunStatus.RUNNING, percent)

    async def _finish(self, row: Backtest, attempt: int, result: dict[str, Any]) -> None:
        if self._fault is not None:
            await self._fault("before_result", str(row.id))
        await self._settle(row, attempt, RunStatus.DONE, progress=100, result=result)

    async def _fail(self, row: Backtest, attempt: int, code: ErrorCode, message: str | None) -> None:
        await self._settle(row, attempt, RunStatus.FAILED, error=_error(code, message))

    async def _settle(self, row: Backtest, attempt: int, status: RunStatus, **values: Any) -> None:
        async with self._factory() as session:
            repo = BacktestRepository(session)
            if not await repo.write_if_mine(row.id, attempt, **finished(status, self._clock(), **values)):
                log.info("backtest %s: a newer claim or a delete superseded this run", row.id)
                return
            row.status = status.value
            row.progress = values.get("progress", row.progress)
            await self._announce(session, row)
            await self._commit(session)

    async def _announce(self, session: AsyncSession, row: Backtest) -> None:
        """The job's final status to the user's sockets, in the transaction that settles it."""
        await enqueue(session, OUTBOX, EVENTS_EXCHANGE, user_events_key(str(row.user_id)), _events(row))

    async def _commit(self, session: AsyncSession) -> None:
        await session.commit()
        if take_pending(session):
            self._relay.nudge()

    async def _push(self, row: Backtest, status: RunStatus, progress: int) -> None:
        # Progress is advisory (the stored row is the truth, and the final status goes through the outbox):
        # a lost progress event is not worth a retry.
        try:
            await self._bus.publish(
                EVENTS_EXCHANGE,
                user_events_key(str(row.user_id)),
                _events(row, status, progress),
                persistent=False,
            )
        except BusError:
            log.debug("backtest %s progress event not published", row.id)


def _events(row: Backtest, status: RunStatus | None = None, progress: int | None = None) -> UserEvents:
    event = BacktestEvent(
        backtest_id=str(row.id),
        status=(status or RunStatus(row.status)).value,
        progress=row.progress if progress is None else progress,
    )
    return UserEvents(user_id=str(row.user_id), events=[event.model_dump(mode="json", by_alias=True)])


def _error(code: ErrorCode, message: str | None) -> dict[str, str]:
    return {"code": code.value, "message": message or message_for(code, "en")}
