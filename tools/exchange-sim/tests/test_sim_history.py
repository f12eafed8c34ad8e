"""A month of 1-minute history through ccxt, paged the way each exchange pages it (what a backtest fetches):
Binance's klines oldest first from `startTime` (≤ 1000 a request), Upbit's candles newest first up to `to`
(≤ 200 a request). Every minute of the candle file arrives exactly once, in order, with the file's values,
and none is later than now."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from common.testing.shared import shared_dir
from exchange_sim import SimServer, ccxt_overrides
from exchange_sim.markets import default_markets
from exchange_sim.server import running_sim
from exchange_sim.settings import CANDLE_FILE_NAME, SimSettings

MINUTE_MS = 60_000
# What a 30-day backtest asks for; the shared file holds 41,761 minutes (29 days), so the history is all of it.
THIRTY_DAYS = 30 * 1440
FILE = shared_dir() / "data" / CANDLE_FILE_NAME
KRW_RATE = Decimal(1400)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    """The candle file, read here with the csv module (not through the simulator's own loader)."""
    with FILE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
async def long_sim() -> AsyncIterator[SimServer]:
    """A paused simulator asked for 30 days of history (more than the file holds)."""
    settings = SimSettings(
        port=0, replay_speed=0, history_minutes=THIRTY_DAYS, krw_rate=KRW_RATE, log_level="WARNING"
    )
    async with running_sim(settings) as sim:
        yield sim


@pytest.fixture
async def client(long_sim: SimServer) -> AsyncIterator[Callable[[str], Any]]:
    """ccxt async clients on the long simulator, as our services make them (no client-side throttle: the
    simulator does not enforce rate limits, and a month of Upbit pages would otherwise take ten seconds)."""
    made: list[Any] = []

    def make(exchange_id: str) -> Any:
        config = {**ccxt_overrides(exchange_id, long_sim.url), "timeout_on_exit": 0, "enableRateLimit": False}
        exchange = getattr(ccxt, exchange_id)(config)
        made.append(exchange)
        return exchange

    yield make
    for exchange in made:
        await exchange.close()


def assert_every_minute_once_in_order(candles: list[list[Any]], count: int, now_ms: int) -> None:
    stamps = [candle[0] for candle in candles]
    assert len(stamps) == count
    assert stamps == list(range(stamps[0], stamps[0] + count * MINUTE_MS, MINUTE_MS))
    # Closed minutes only: the newest closed before the last page was asked for.
    assert stamps[-1] + MINUTE_MS <= now_ms


async def test_the_history_is_the_whole_file_when_more_is_asked(long_sim: SimServer, rows) -> None:
    assert long_sim.state.replayer.status()["historyMinutes"] == len(rows) < THIRTY_DAYS
    # The replay continues after the history: its first candle is the file's first again, rescaled.
    assert long_sim.state.replayer.candle_index == len(rows)


async def test_binance_pages_the_month_oldest_first_with_the_files_values(client, rows) -> None:
    exchange = client("binance")
    since = exchange.milliseconds() - THIRTY_DAYS * MINUTE_MS
    candles: list[list[Any]] = []
    pages = 0
    while True:
        page = await exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=1000)
        if not page:
            break
        pages += 1
        assert len(page) <= 1000
        candles.extend(page)
        since = page[-1][0] + MINUTE_MS
    assert pages == -(-len(rows) // 1000)
    assert_every_minute_once_in_order(candles, len(rows), exchange.milliseconds())
    for candle, row in zip(candles, rows, strict=True):
        expected = [float(row[k]) for k in ("open", "high", "low", "close", "volume")]
        assert candle[1:] == expected, (candle, row)


async def test_binance_klines_rows_and_the_weight_they_count(client, rows) -> None:
    exchange = client("binance")
    await exchange.load_markets()
    first = await exchange.public_get_klines({"symbol": "BTCUSDT", "interval": "1m", "startTime": 0})
    assert len(first) == 500  # the default limit
    row = first[0]
    assert [type(v) for v in row] == [int, str, str, str, str, str, int, str, int, str, str, str]
    assert row[6] == row[0] + MINUTE_MS - 1
    assert [Decimal(v) for v in row[1:6]] == [
        Decimal(rows[0][k]) for k in ("open", "high", "low", "close", "volume")
    ]
    assert Decimal(row[7]) == Decimal(rows[0]["quote_volume"]) and row[8] == int(rows[0]["trades"])
    most = await exchange.public_get_klines(
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": 0, "limit": 1000}
    )
    assert len(most) == 1000 and most[0] == row and most[:500] == first
    # Binance counts 2 of its 6,000 weight a minute for klines: the count went up by 2 (or started over with
    # a new minute between the two requests).
    before = int(exchange.last_response_headers["x-mbx-used-weight-1m"])
    await exchange.public_get_klines({"symbol": "BTCUSDT", "interval": "1m", "limit": 1000})
    after = int(exchange.last_response_headers["x-mbx-used-weight-1m"])
    assert after in (before + 2, 2)


async def test_binance_deterministic_pagination_of_ccxt_gets_the_same_month(client, rows) -> None:
    exchange = client("binance")
    since = exchange.milliseconds() - THIRTY_DAYS * MINUTE_MS
    candles = await exchange.fetch_ohlcv(
        "BTC/USDT", "1m", since=since, params={"paginate": True, "paginationCalls": 50}
    )
    assert_every_minute_once_in_order(candles, len(rows), exchange.milliseconds())
    assert [c[4] for c in candles] == [float(row["close"]) for row in rows]


async def test_upbit_pages_the_month_newest_first_to_to_with_the_files_values(client, long_sim, rows) -> None:
    exchange = client("upbit")
    market = default_markets()["upbit"]["KRW-BTC"]
    end = exchange.milliseconds()
    since = end - THIRTY_DAYS * MINUTE_MS
    candles: list[list[Any]] = []
    # ccxt asks for the 200 minutes before since + 200 minutes; before the history starts a page is empty.
    while since < end:
        page = await exchange.fetch_ohlcv("BTC/KRW", "1m", since=since, limit=200)
        candles.extend(page)
        since = page[-1][0] + MINUTE_MS if page else since + 200 * MINUTE_MS
    assert_every_minute_once_in_order(candles, len(rows), exchange.milliseconds())
    for candle, row in zip(candles, rows, strict=True):
        prices = [
            float(market.round_price(Decimal(row[k]) * KRW_RATE)) for k in ("open", "high", "low", "close")
        ]
        assert candle[1:] == [*prices, float(row["volume"])], (candle, row)


async def test_upbit_candles_are_newest_first_and_stop_before_to(client, long_sim) -> None:
    exchange = client("upbit")
    await exchange.load_markets()
    history = long_sim.state.engines["upbit"].data["KRW-BTC"].history
    assert history is not None
    middle = history.start_ms + 20_000 * MINUTE_MS
    to = exchange.iso8601(middle)
    raw = await exchange.public_get_candles_minutes_unit(
        {"unit": 1, "market": "KRW-BTC", "to": to, "count": 200}
    )
    assert len(raw) == 200
    stamps = [exchange.parse8601(c["candle_date_time_utc"] + "Z") for c in raw]
    assert stamps == list(range(middle - MINUTE_MS, middle - 201 * MINUTE_MS, -MINUTE_MS))
    assert {c["unit"] for c in raw} == {1} and {c["market"] for c in raw} == {"KRW-BTC"}
