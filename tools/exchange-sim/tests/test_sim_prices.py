"""The pure price source: candle paths, determinism, the KRW mapping, and the fallback without a file."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from exchange_sim.events import Hub, PublicTrade
from exchange_sim.markets import ASSET_BY_CODE, default_markets, upbit_krw_unit
from exchange_sim.prices import Candle, CsvCandles, PriceFeed, RandomWalkCandles, candle_path
from exchange_sim.settings import SimSettings
from exchange_sim.state import SimState

MARKETS = default_markets()


def _candle(o: str, h: str, low: str, c: str) -> Candle:
    return Candle(Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(1), Decimal(1), 1)


def test_rising_candles_visit_the_low_first_and_falling_ones_the_high() -> None:
    assert candle_path(_candle("10", "12", "9", "11")) == tuple(map(Decimal, ("10", "9", "12", "11")))
    assert candle_path(_candle("10", "12", "9", "9.5")) == tuple(map(Decimal, ("10", "12", "9", "9.5")))


def test_random_walks_are_deterministic_per_seed() -> None:
    eth = ASSET_BY_CODE["ETH"]
    first = [RandomWalkCandles(eth, 7, Decimal("0.01")).candle(i) for i in range(50)]
    again = RandomWalkCandles(eth, 7, Decimal("0.01"))
    assert [again.candle(i) for i in range(50)] == first
    other = RandomWalkCandles(eth, 8, Decimal("0.01"))
    assert [other.candle(i) for i in range(50)] != first
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in first)
    assert all(first[i].close == first[i + 1].open for i in range(49))


def test_csv_candles_loop_without_a_jump() -> None:
    rows = [_candle("100", "101", "99", "100.5"), _candle("100.5", "103", "100", "102")]
    source = CsvCandles(rows)
    assert source.candle(1) == rows[1]
    looped = source.candle(2)  # the first row again, scaled by 102/100
    assert looped.open == Decimal("102.00") and looped.high == Decimal("103.02")


def test_krw_markets_follow_the_usdt_path_on_upbits_price_units() -> None:
    feed = PriceFeed(MARKETS, seed=1, krw_rate=Decimal("1400"), btc_candles=None)
    for index in (0, 10, 500):
        usdt = feed.candle(MARKETS["binance"]["ETHUSDT"], index)
        krw = feed.candle(MARKETS["upbit"]["KRW-ETH"], index)
        assert abs(krw.close - usdt.close * 1400) <= upbit_krw_unit(krw.close) / 2
        assert all(p % upbit_krw_unit(p) == 0 for p in (krw.open, krw.high, krw.low, krw.close))
    xrp = feed.candle(MARKETS["upbit"]["KRW-XRP"], 3)
    assert xrp.close % 1 == 0  # XRP trades around 3,000 KRW: 1 won units


def test_upbit_price_unit_table() -> None:
    assert upbit_krw_unit(Decimal(140_000_000)) == 1000
    assert upbit_krw_unit(Decimal(1_500_000)) == 1000
    assert upbit_krw_unit(Decimal(320_000)) == 100
    assert upbit_krw_unit(Decimal(7_000)) == 5
    assert upbit_krw_unit(Decimal(3_000)) == 1
    assert upbit_krw_unit(Decimal("55.5")) == Decimal("0.1")
    market = MARKETS["upbit"]["KRW-BTC"]
    assert market.round_price(Decimal("1999999.6")) == 2_000_000
    assert market.price_is_valid(Decimal(139_000_000)) and not market.price_is_valid(Decimal(139_000_500))


def test_missing_candle_file_falls_back_to_a_random_walk(tmp_path: Path) -> None:
    settings = SimSettings(candle_file=tmp_path / "absent.csv", history_minutes=30, replay_speed=0)
    assert settings.resolved_candle_file() is None
    state = SimState.build(settings)
    assert state.feed.replays_file is False
    assert state.engines["binance"].data["BTCUSDT"].last_price > 0


def test_the_default_candle_file_is_found_from_the_repository() -> None:
    found = SimSettings().resolved_candle_file()
    assert found is not None and found.name == "binance_BTCUSDT_1m_2024-12.csv"


def test_the_default_candle_file_follows_the_shared_folder_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    candles = tmp_path / "data" / "binance_BTCUSDT_1m_2024-12.csv"
    candles.write_text("")
    monkeypatch.setenv("GRIDBOT_SHARED_DIR", str(tmp_path))
    assert SimSettings().resolved_candle_file() == candles.resolve()
    monkeypatch.setenv("GRIDBOT_SHARED_DIR", str(tmp_path / "elsewhere"))
    assert SimSettings().resolved_candle_file() is None


def test_the_replay_walks_each_candle_in_path_order() -> None:
    state = SimState.build(SimSettings(history_minutes=5, replay_speed=0))
    seen: list[Decimal] = []

    def record(event: object) -> None:
        if isinstance(event, PublicTrade) and event.symbol == "BTCUSDT":
            seen.append(event.price)

    assert isinstance(state.hub, Hub)
    state.hub.subscribe(record)
    state.replayer.advance(2)
    # History took rows 0-4 of the file; row 5 falls (o,h,l,c), row 6 rises (o,l,h,c).
    expected = [
        "96543.99",
        "96555.56",
        "96520.00",
        "96522.05",
        "96522.06",
        "96522.06",
        "96575.30",
        "96562.17",
    ]
    assert seen == [Decimal(p) for p in expected]
    market = MARKETS["binance"]["BTCUSDT"]
    assert seen[4:] == list(candle_path(state.feed.candle(market, 6)))


def test_a_step_finishes_the_tick_for_the_markets_the_timer_has_not_fed_yet() -> None:
    state = SimState.build(SimSettings(history_minutes=5, replay_speed=0))
    trades: list[tuple[str, str]] = []
    state.hub.subscribe(lambda e: trades.append((e.venue, e.symbol)) if isinstance(e, PublicTrade) else None)
    markets = [(venue, symbol) for venue, listed in MARKETS.items() for symbol in listed]
    state.replayer.feed_next()
    assert trades == markets[:1] and state.replayer.status()["marketsFed"] == 1
    state.replayer.step()  # the rest of the tick, each market once
    assert trades == markets and state.replayer.status()["tickInCandle"] == 1


async def test_the_timer_feeds_one_market_at_a_time_never_all_at_one_instant() -> None:
    """Each market's trade comes in a pass of the event loop of its own: markets never trade in lockstep."""
    state = SimState.build(SimSettings(history_minutes=5, replay_speed="max"))
    passes = 0
    seen: list[tuple[int, str]] = []
    count = len(MARKETS["upbit"]) + len(MARKETS["binance"])
    three_rounds = asyncio.Event()

    def record(event: object) -> None:
        if isinstance(event, PublicTrade):
            seen.append((passes, event.symbol))
            if len(seen) >= 3 * count:
                three_rounds.set()

    async def count_passes() -> None:
        nonlocal passes
        while True:
            passes += 1
            await asyncio.sleep(0)

    state.hub.subscribe(record)
    counter = asyncio.create_task(count_passes())
    timer = asyncio.create_task(state.replayer.run())
    async with asyncio.timeout(30):
        await three_rounds.wait()
    timer.cancel()
    counter.cancel()
    await asyncio.gather(timer, counter, return_exceptions=True)
    assert len({at for at, _ in seen}) == len(seen)  # no two trades in one pass
    symbols = [symbol for _, symbol in seen[: 3 * count]]
    assert symbols[:count] == symbols[count : 2 * count]  # round after round, in the same order
    assert len(set(symbols[:count])) == count
