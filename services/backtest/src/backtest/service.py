"""Backtest commands and reads: validate and plan a grid, store the request with its job, page the results."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backtest import kernel
from backtest.models import OUTBOX, Backtest, RunStatus
from backtest.repository import BacktestRepository
from backtest.responses import BacktestError, BacktestList, BacktestRead, BacktestResult
from backtest.schemas import CreateBacktestRequest, window
from common.contracts.backtests import BACKTESTS_EXCHANGE, JOB_REQUESTED, BacktestJob
from common.contracts.grid import check_options, precheck
from common.contracts.public import Pagination, number
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.exchanges import MarketCatalog, parse_exchange
from common.grid import plan_grid
from common.outbox import OutboxRelay, enqueue, take_pending
from common.security import user_uuid

log = logging.getLogger(__name__)


def _text(value: object) -> object:
    return format(value, "f") if isinstance(value, Decimal) else value


class BacktestService:
    """What the backtest routes do; the runs themselves happen on a worker (backtest.runner)."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        catalog: MarketCatalog,
        relay: OutboxRelay,
        max_days: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._factory = session_factory
        self._catalog = catalog
        self._relay = relay
        self._max_days = max_days
        self._clock = clock

    async def create(self, user_id: str, body: CreateBacktestRequest) -> Backtest:
        """Validate as `POST /bots` does, plan the grid on today's market rules, store it and queue the job."""
        user = user_uuid(user_id)
        exchange = parse_exchange(body.exchange)
        ticker = body.market_ticker
        start, end = window(body.start_date, body.end_date, self._clock(), self._max_days)
        precheck(body.lower_price, body.upper_price, body.price_change_percent, body.order_amount)
        check_options(body.lower_price, body.upper_price, body.options)
        rules = await self._catalog.rules(exchange, ticker)
        if body.fee_rate is not None:
            rules = dataclasses.replace(rules, maker_fee=body.fee_rate, taker_fee=body.fee_rate)
        plan = plan_grid(
            body.lower_price,
            body.upper_price,
            body.price_change_percent,
            body.order_amount,
            rules,
            body.grid_type,
        )
        params = {
            key: _text(value) for key, value in body.model_dump(by_alias=True, exclude_none=True).items()
        }
        params["ticker"] = ticker
        backtest = Backtest(
            id=uuid.uuid4(),
            user_id=user,
            exchange=exchange.value,
            ticker=ticker,
            params=params,
            grid={
                "levels": [format(p, "f") for p in plan.levels],
                "upperPrice": format(body.upper_price, "f"),
                "orderAmount": format(body.order_amount, "f"),
                "stopAtMax": body.stop_at_max,
                "rules": rules.to_dict(),
                **kernel.grid_options(body),
            },
            start_at=start,
            end_at=end,
            status=RunStatus.QUEUED.value,
            progress=0,
            attempts=0,
            created_at=self._clock(),
        )
        async with self._factory() as session:
            await BacktestRepository(session).add(backtest)
            job = BacktestJob(backtest_id=str(backtest.id), user_id=str(user))
            await enqueue(session, OUTBOX, BACKTESTS_EXCHANGE, JOB_REQUESTED, job.model_dump(by_alias=True))
            await session.commit()
            if take_pending(session):
                self._relay.nudge()
        return backtest

    async def get(self, user_id: str, backtest_id: uuid.UUID | None) -> BacktestRead:
        """The user's backtest with its result, or BACKTEST_NOT_FOUND."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            row = None if backtest_id is None else await BacktestRepository(session).owned(user, backtest_id)
        if row is None:
            raise AppError(ErrorCode.BACKTEST_NOT_FOUND)
        return read(row, with_result=True)

    async def page(self, user_id: str, limit: int, offset: int) -> BacktestList:
        """The user's backtests, newest first, without their results."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            rows, total = await BacktestRepository(session).page(user, limit, offset)
        return BacktestList(
            backtests=[read(row, with_result=False) for row in rows],
            pagination=Pagination(
                total=total, limit=limit, offset=offset, has_more=offset + len(rows) < total
            ),
        )

    async def delete(self, user_id: str, backtest_id: uuid.UUID | None) -> None:
        """Delete the user's backtest, running or not; BACKTEST_NOT_FOUND when there is none."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            gone = backtest_id is not None and await BacktestRepository(session).remove(user, backtest_id)
            await session.commit()
        if not gone:
            raise AppError(ErrorCode.BACKTEST_NOT_FOUND)


# Stored as exact decimal text; shown as the exact JSON numbers the client sent.
NUMBER_PARAMS = (
    "lowerPrice",
    "upperPrice",
    "priceChangePercent",
    "orderAmount",
    "feeRate",
    "triggerPrice",
    "takeProfitPrice",
    "stopLossPrice",
    "trailingUpLimit",
)


def read(row: Backtest, *, with_result: bool) -> BacktestRead:
    """The public shape of a stored backtest."""
    params = dict(row.params)
    for key in NUMBER_PARAMS:
        if isinstance(params.get(key), str):
            params[key] = number(Decimal(params[key]))
    return BacktestRead(
        backtest_id=row.id,
        status=row.status,
        progress=row.progress,
        params=params,
        created_at=row.created_at,
        finished_at=row.finished_at,
        error=BacktestError.model_validate(row.error) if row.error else None,
        result=BacktestResult.model_validate(row.result) if with_result and row.result else None,
    )
