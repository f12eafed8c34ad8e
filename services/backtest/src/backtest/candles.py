"""Past 1-minute candles: fetched once from the exchange through ccxt (paged, on the shared call budget),
stored in the backtest schema, and read back for every backtest of that market and window.

A window is fetched page by page; each page's candles and its span are committed together, so a worker
that dies mid-fetch keeps what it stored and the next one asks only for the rest. A minute inside a stored
span without a candle is one the exchange had none for: counted as missing, never invented.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backtest.models import Candle, CandleSpan
from common.exchanges import Exchange, MarketCatalog
from gridcore.replay import MINUTE_MS

log = logging.getLogger(__name__)

# An exchange may serve a just-closed minute a little late: a span this close to now is recorded only up to
# its last candle, so those minutes are asked again next time instead of standing as gaps for ever.
SETTLE_MS = 5 * MINUTE_MS

FetchProgress = Callable[[int, int], Awaitable[None]]
"""Called after each stored page with (minutes stored so far, minutes to fetch in all)."""


@dataclass(frozen=True, slots=True)
class StoredCandle:
    """One candle as the kernel reads it."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


def missing_windows(spans: Sequence[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of [start, end) that no span covers, in order."""
    result: list[tuple[int, int]] = []
    cursor = start
    for span_start, span_end in sorted(spans):
        if span_end <= cursor:
            continue
        if span_start >= end:
            break
        if span_start > cursor:
            result.append((cursor, span_start))
        cursor = max(cursor, span_end)
        if cursor >= end:
            break
    if cursor < end:
        result.append((cursor, end))
    return result


def _decimal(value: Any) -> Decimal:
    # ccxt hands numbers over as floats: their shortest repr is the exchange's text (it was parsed from it).
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


class CandleStore:
    """The stored candle history of every market, filled from the exchange on demand."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        catalog: MarketCatalog,
        now_ms: Callable[[], int],
    ) -> None:
        self._factory = session_factory
        self._catalog = catalog
        self._now_ms = now_ms

    async def ensure(
        self, exchange: Exchange, ticker: str, start: int, end: int, progress: FetchProgress | None = None
    ) -> None:
        """Fetch and store whatever of [start, end) (ms, whole closed minutes) is not stored yet."""
        async with self._factory() as session:
            rows = await session.execute(
                select(CandleSpan.start_time, CandleSpan.end_time).where(
                    CandleSpan.exchange == exchange.value,
                    CandleSpan.ticker == ticker,
                    CandleSpan.end_time > start,
                    CandleSpan.start_time < end,
                )
            )
            spans = [(int(a), int(b)) for a, b in rows.all()]
        todo = missing_windows(spans, start, end)
        total = sum(b - a for a, b in todo) // MINUTE_MS
        done = 0
        page_minutes = self._catalog.ohlcv_page(exchange)
        for window_start, window_end in todo:
            cursor = window_start
            while cursor < window_end:
                page_end = min(cursor + page_minutes * MINUTE_MS, window_end)
                limit = (page_end - cursor) // MINUTE_MS
                raw = await self._catalog.candles_from(exchange, ticker, cursor, limit)
                candles = [c for c in raw if cursor <= int(c[0]) < page_end and int(c[0]) % MINUTE_MS == 0]
                span_end = page_end
                if page_end > self._now_ms() - SETTLE_MS:
                    span_end = max((int(c[0]) + MINUTE_MS for c in candles), default=cursor)
                await self._store(exchange, ticker, candles, cursor, span_end)
                done += limit
                cursor = page_end
                if progress is not None:
                    await progress(done, total)

    async def _store(
        self, exchange: Exchange, ticker: str, candles: list[list[Any]], start: int, end: int
    ) -> None:
        async with self._factory() as session:
            if candles:
                rows = [
                    {
                        "exchange": exchange.value,
                        "ticker": ticker,
                        "open_time": int(c[0]),
                        "open": _decimal(c[1]),
                        "high": _decimal(c[2]),
                        "low": _decimal(c[3]),
                        "close": _decimal(c[4]),
                        "volume": _decimal(c[5] if c[5] is not None else 0),
                    }
                    for c in candles
                ]
                dialect = session.get_bind().dialect.name
                # Two workers may fetch one window at once: the first row stored wins, both agree anyway.
                statement = (
                    postgresql.insert(Candle) if dialect == "postgresql" else sqlite.insert(Candle)
                ).on_conflict_do_nothing()
                await session.execute(statement, rows)
            if end > start:
                await session.execute(
                    insert(CandleSpan).values(
                        exchange=exchange.value, ticker=ticker, start_time=start, end_time=end
                    )
                )
            await session.commit()

    async def load(self, exchange: Exchange, ticker: str, start: int, end: int) -> list[StoredCandle]:
        """The stored candles of [start, end), oldest first."""
        async with self._factory() as session:
            result = await session.execute(
                select(Candle.open_time, Candle.open, Candle.high, Candle.low, Candle.close)
                .where(
                    Candle.exchange == exchange.value,
                    Candle.ticker == ticker,
                    Candle.open_time >= start,
                    Candle.open_time < end,
                )
                .order_by(Candle.open_time)
            )
            return [StoredCandle(int(t), o, h, low, c) for t, o, h, low, c in result.all()]
