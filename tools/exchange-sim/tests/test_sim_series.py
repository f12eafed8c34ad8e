"""The compact candle series and the lazily built history: same numbers as plain Decimal arithmetic, own
candle files of any decimals, a history clamped to its file, and stats that stay right as minutes are added."""

from __future__ import annotations

import logging
import math
import random
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, getcontext, localcontext
from pathlib import Path

import pytest

from exchange_sim.marketdata import MINUTE_MS, Bucket
from exchange_sim.markets import ASSETS, default_markets
from exchange_sim.prices import Candle, CsvCandles, RandomWalkCandles, load_candles_csv
from exchange_sim.series import read_candle_table
from exchange_sim.settings import SimSettings
from exchange_sim.state import SimState

VOLUME_PLACES = Decimal("0.00000001")
TICKS = {"BTC": "0.01", "ETH": "0.01", "XRP": "0.0001", "SOL": "0.01"}


def decimal_walk(code: str, seed: int, count: int) -> list[Candle]:
    """The random walk written the plain way, every step in Decimal in the default context (half even): the
    definition the fast walk follows."""
    asset = next(a for a in ASSETS if a.code == code)
    tick = Decimal(TICKS[code])
    rng = random.Random(f"exchange-sim:{seed}:{code}")
    price = asset.start_usdt.quantize(tick)
    candles = []
    for _ in range(count):
        points = [price]
        for _ in range(3):
            move = Decimal(repr(round(math.exp(rng.gauss(0.0, asset.sigma / 2)), 10)))
            points.append(max(tick, (points[-1] * move).quantize(tick)))
        price = points[-1]
        share = Decimal(repr(round(0.4 + rng.random(), 6)))
        volume = (asset.minute_volume * share).quantize(VOLUME_PLACES, rounding=ROUND_DOWN)
        average = sum(points, Decimal(0)) / 4
        quote = (volume * average).quantize(VOLUME_PLACES)
        candles.append(
            Candle(points[0], max(points), min(points), price, volume, quote, 50 + rng.randrange(950))
        )
    return candles


@pytest.mark.parametrize("code", sorted(TICKS))
def test_the_walk_in_whole_ticks_gives_the_decimal_walks_numbers(code: str) -> None:
    asset = next(a for a in ASSETS if a.code == code)
    walk = RandomWalkCandles(asset, 7, Decimal(TICKS[code]))
    with localcontext(prec=28, rounding=ROUND_HALF_EVEN):
        expected = decimal_walk(code, 7, 3000)
    # Whatever the thread's context says (ccxt sets ROUND_HALF_UP for good once it formats a number).
    with localcontext(rounding=ROUND_HALF_UP):
        assert getcontext().rounding == ROUND_HALF_UP
        got = [walk.candle(i) for i in range(3000)]
    assert got == expected
    assert [str(c.quote_volume) for c in got] == [str(c.quote_volume) for c in expected]
    assert walk.extremes(100, 3000) == (
        max(c.high for c in expected[100:]),
        min(c.low for c in expected[100:]),
    )


def test_an_own_candle_file_any_column_order_extra_columns_and_decimals(tmp_path: Path) -> None:
    path = tmp_path / "eth_month.csv"
    path.write_text(
        "open_time,trades,close,low,high,open,volume,quote_volume,ignored\n"
        "1,12,2.5,2.40,2.61,2.5,100,250.5,x\n"
        "2,7,2.555,2.5,2.6,2.5,0.25,0.63875,y\n"
        "\n"
    )
    table = read_candle_table(path)
    assert len(table) == 2
    assert table[0] == Candle(
        Decimal("2.5"), Decimal("2.61"), Decimal("2.4"), Decimal("2.5"), Decimal(100), Decimal("250.5"), 12
    )
    assert table[1].close == Decimal("2.555") and table[1].quote_volume == Decimal("0.63875")
    assert table[-1] == table[1] and table[0:2] == [table[0], table[1]]
    assert table.extremes(0, 2) == (Decimal("2.61"), Decimal("2.4"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("open,high,low,close,volume,trades\n1,1,1,1,1,1\n", "no column quote_volume"),
        ("open,high,low,close,volume,quote_volume,trades\n1,1,1,abc,1,1,1\n", "line 2 is not a candle"),
        ("open,high,low,close,volume,quote_volume,trades\n1,1,1,1,1,1,1.5\n", "line 2 is not a candle"),
        ("open,high,low,close,volume,quote_volume,trades\n1,1,1\n", "line 2 has 3 of 7 columns"),
        ("open,high,low,close,volume,quote_volume,trades\n1,1,1,1,1e400,1,1\n", "line 2 is not a candle"),
        (
            "open,high,low,close,volume,quote_volume,trades\n1,1,1,1,99999999999.123456789,1,1\n",
            "too many digits",
        ),
        ("open,high,low,close,volume,quote_volume,trades\n", "no candles"),
    ],
)
def test_a_bad_candle_file_is_refused_saying_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_candle_table(path)


def test_a_history_longer_than_the_file_is_the_whole_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "short.csv"
    rows = [(100 + i, 101 + i, 99 + i, 100.5 + i) for i in range(50)]
    path.write_text(
        "open,high,low,close,volume,quote_volume,trades\n"
        + "".join(f"{o},{h},{low},{c},1.5,150,{i + 1}\n" for i, (o, h, low, c) in enumerate(rows))
    )
    with caplog.at_level(logging.WARNING, logger="exchange_sim.state"):
        state = SimState.build(SimSettings(candle_file=path, history_minutes=500, replay_speed=0))
    assert "SIM_HISTORY_MINUTES=500 is more than the 50 candles" in caplog.text
    assert state.replayer.history_minutes == 50 and state.replayer.candle_index == 50
    data = state.engines["binance"].data["BTCUSDT"]
    candles = data.candles(MINUTE_MS, 0, None, 1000, fill_gaps=True)
    assert [(c.open, c.high, c.low, c.close, c.count) for c in candles] == [
        (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c)), i + 1)
        for i, (o, h, low, c) in enumerate(rows)
    ]
    assert data.last_price == Decimal("149.5")
    # KRW: the same path times the rate; its all-time extremes are the rounded file extremes.
    krw = state.engines["upbit"].data["KRW-BTC"]
    market = default_markets()["upbit"]["KRW-BTC"]
    assert krw.extremes() == (market.round_price(Decimal(150 * 1400)), market.round_price(Decimal(99 * 1400)))
    # The replay goes on after the file: the file again, scaled to start where it ended.
    replay = state.feed.candle(default_markets()["binance"]["BTCUSDT"], 50)
    assert replay.open == (Decimal(100) * Decimal("149.5") / Decimal(100)).quantize(Decimal("0.01"))


def merged(buckets: list[Bucket]) -> tuple[Decimal, ...]:
    """Open, high, low, close, volume, trades of minutes, added up the plain way."""
    return (
        buckets[0].open,
        max(b.high for b in buckets),
        min(b.low for b in buckets),
        buckets[-1].close,
        sum((b.volume for b in buckets), Decimal(0)),
        Decimal(sum(b.count for b in buckets)),
    )


def test_stats_over_history_and_recorded_minutes_stay_right_as_minutes_are_added() -> None:
    state = SimState.build(SimSettings(candle_file=Path("/absent.csv"), history_minutes=120, replay_speed=0))
    data = state.engines["upbit"].data["KRW-ETH"]
    history = data.history
    assert history is not None
    since = history.start_ms + 100 * MINUTE_MS
    now = history.start_ms + 120 * MINUTE_MS

    def check() -> None:
        window = data.candles(MINUTE_MS, since, None, 1000, fill_gaps=False)
        stats = data.stats(since, now)
        got = (stats.open, stats.high, stats.low, stats.close, stats.volume, Decimal(stats.count))
        assert got == merged(window)
        assert stats.open_ms == since
        everything = data.candles(MINUTE_MS, 0, None, 1000, fill_gaps=False)
        assert data.extremes() == (max(b.high for b in everything), min(b.low for b in everything))

    check()
    price = data.last_price
    # Several minutes between two looks, then a look after every trade.
    for minute in range(6):
        for step in range(3):
            price += 1000 * (step - minute % 3)
            data.record(price, Decimal("0.1"), now + minute * MINUTE_MS + step)
            if minute >= 3:
                check()
    assert len(data.candles(MINUTE_MS, since, None, 1000, fill_gaps=False)) == 26


def test_the_candle_file_is_read_once_and_shared() -> None:
    path = SimSettings().resolved_candle_file()
    assert path is not None
    table = load_candles_csv(path)
    assert load_candles_csv(path) is table
    one = SimState.build(SimSettings(history_minutes=10, replay_speed=0))
    # The sharing itself is what is checked: the simulator's BTC source holds the cached table.
    source = one.feed._sources["BTC"]
    assert isinstance(source, CsvCandles) and source._rows is table


@pytest.mark.parametrize("interval_minutes", [5, 60, 1440])
def test_longer_candles_equal_their_minutes_merged_in_the_history_and_after(interval_minutes: int) -> None:
    state = SimState.build(SimSettings(candle_file=Path("/absent.csv"), history_minutes=3000, replay_speed=0))
    data = state.engines["upbit"].data["KRW-XRP"]
    history = data.history
    assert history is not None
    for minute in range(3):  # recorded minutes after the history
        data.record(data.last_price, Decimal(1), history.end_ms + minute * MINUTE_MS)
    interval = interval_minutes * MINUTE_MS
    minutes = data.candles(MINUTE_MS, 0, None, 5000, fill_gaps=False)
    assert len(minutes) == 3003

    def expected(end_ms: int) -> list[tuple[Decimal, ...]]:
        keys: dict[int, list[Bucket]] = {}
        for bucket in minutes:
            if bucket.start_ms <= end_ms:
                keys.setdefault(bucket.start_ms - bucket.start_ms % interval, []).append(bucket)
        return [merged(keys[k]) for k in sorted(keys)]

    def got(candles: list[Bucket]) -> list[tuple[Decimal, ...]]:
        return [merged([c]) for c in candles]

    everything = data.candles(interval, 0, None, 5000, fill_gaps=False)
    assert got(everything) == expected(history.end_ms + 3 * MINUTE_MS)
    # Twice (the second time from the kept candles), and with an end that cuts a candle short.
    assert got(data.candles(interval, 0, None, 5000, fill_gaps=False)) == got(everything)
    cut = history.start_ms + 1234 * MINUTE_MS + 17
    assert got(data.candles(interval, 0, cut, 5000, fill_gaps=False)) == expected(cut)
    last_two = data.candles(interval, None, None, 2, fill_gaps=False)
    assert got(last_two) == expected(history.end_ms + 3 * MINUTE_MS)[-2:]
