"""POST /backtests/recommend: the best few grids of a sweep over the market's last days of candles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from backtest import kernel
from backtest.candles import CandleStore
from backtest.recommend import candidates
from backtest.responses import Basis, Recommendation, Recommendations, RecommendedFigures
from backtest.schemas import RecommendRequest
from common.contracts.grid import precheck
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.exchanges import MarketCatalog, parse_exchange
from gridcore.replay import MINUTE_MS, ReplaySpec
from gridcore.replay.figures import utc


class Recommender:
    """Sweeps candidate grids over stored candles (fetching what is missing first)."""

    def __init__(
        self,
        catalog: MarketCatalog,
        store: CandleStore,
        top: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._top = top
        self._clock = clock

    async def recommend(self, body: RecommendRequest) -> Recommendations:
        """The `top` configurations by realised profit over the last `days` (ties: the smaller drawdown)."""
        exchange = parse_exchange(body.exchange)
        ticker = body.ticker.strip().upper()
        precheck(None, None, None, body.investment)
        rules = await self._catalog.rules(exchange, ticker)
        end_at = self._clock().replace(second=0, microsecond=0)
        start_at = end_at - timedelta(days=body.days)
        start, end = int(start_at.timestamp() * 1000), int(end_at.timestamp() * 1000)
        await self._store.ensure(exchange, ticker, start, end)
        candles = await self._store.load(exchange, ticker, start, end)
        found = candidates([c.close for c in candles], rules, body.investment, body.grid_type)
        if not found:
            raise AppError(
                ErrorCode.INVALID_ORDER_AMOUNT,
                {"reason": "the investment is too small for any grid on this market's minimum order"},
            )
        specs = [ReplaySpec(c.plan.levels, c.upper, c.order_amount, False, rules) for c in found]
        results = await asyncio.to_thread(kernel.run_many, specs, candles, start, end)
        ranked = sorted(
            zip(found, results, strict=True),
            key=lambda pair: (-pair[1].realised_profit, pair[1].max_drawdown_percent),
        )[: self._top]
        return Recommendations(
            recommendations=[
                Recommendation(
                    lower_price=c.lower,
                    upper_price=c.upper,
                    price_change_percent=c.pct,
                    grid_count=c.plan.grid_count,
                    order_amount=c.order_amount,
                    grid_type=c.kind,
                    result=RecommendedFigures(
                        realised_profit=r.realised_profit,
                        total_return_percent=r.total_return_percent,
                        apr=r.apr,
                        max_drawdown_percent=r.max_drawdown_percent,
                        sell_trades=r.sell_trades,
                    ),
                )
                for c, r in ranked
            ],
            basis=Basis(
                days=body.days,
                candles=len(candles),
                from_=utc(candles[0].open_time) if candles else None,
                to=utc(candles[-1].open_time + MINUTE_MS) if candles else None,
            ),
        )
