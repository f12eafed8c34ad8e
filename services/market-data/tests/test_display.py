"""The display stream: at most one tick per ticker per interval, every published tick folded into one."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from common.contracts.market import PriceTick
from common.exchanges.ids import Exchange
from common.testing.wait import eventually
from market_data.display import DisplayStream

D = Decimal
INTERVAL_MS = 100
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    """A publisher recording (time, routing key, tick), which can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, PriceTick]] = []
        self.fail_next = 0

    async def publish(self, routing_key: str, tick: PriceTick) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker down")
        self.sent.append((time.monotonic(), routing_key, tick))

    async def until(self, predicate: Callable[[PriceTick], bool]) -> list[PriceTick]:
        await eventually(lambda: any(predicate(t) for _, _, t in self.sent), timeout=3)
        return [t for _, _, t in self.sent]


@pytest.fixture
async def stream() -> AsyncIterator[tuple[DisplayStream, Recorder]]:
    recorder = Recorder()
    display = DisplayStream(INTERVAL_MS, recorder.publish)
    yield display, recorder
    await display.close()


def tick(
    seq: int, last: str, high: str | None = None, low: str | None = None, ticker: str = "BTCUSDT"
) -> PriceTick:
    at = T0 + timedelta(milliseconds=seq)
    return PriceTick(
        exchange=Exchange.BINANCE,
        ticker=ticker,
        last=D(last),
        high=D(high or last),
        low=D(low or last),
        seq=seq,
        epoch="e1",
        trades=2,
        first_trade_at=at,
        last_trade_at=at,
        published_at=at,
    )


async def test_the_first_tick_goes_out_at_once_on_its_own_key(stream: tuple[DisplayStream, Recorder]) -> None:
    display, recorder = stream
    display.offer(tick(7, "100"))
    # Sent from offer() itself (leading edge): the publish task is already created.
    assert display.published == 0 and len(display._tasks) == 1
    sent = await recorder.until(lambda t: t.last == 100)
    assert [(key, t.seq, t.trades) for _, key, t in recorder.sent] == [
        ("display.price.binance.BTCUSDT", 1, 2)
    ]
    assert sent[0].epoch == "e1" and sent[0].published_at > T0 + timedelta(days=1)  # its own, not the input's


async def test_a_burst_is_folded_into_one_tick_per_interval(stream: tuple[DisplayStream, Recorder]) -> None:
    display, recorder = stream
    prices = ["100", "105", "95", "101", "99", "103"]
    for seq, price in enumerate(prices, start=1):
        display.offer(tick(seq, price, high=str(D(price) + 1), low=str(D(price) - 1)))
    display.offer(tick(len(prices) + 1, "102"))
    sent = await recorder.until(lambda t: t.last == 102)
    # The first went out alone; everything after it was folded into one trailing tick.
    assert [t.last for t in sent] == [D(100), D(102)]
    assert [t.seq for t in sent] == [1, 2]
    assert sum(t.trades for t in sent) == 2 * (len(prices) + 1)
    assert (sent[1].high, sent[1].low) == (D(106), D(94))
    assert sent[1].first_trade_at == T0 + timedelta(milliseconds=2)
    assert sent[1].last_trade_at == T0 + timedelta(milliseconds=7)
    times = [at for at, _, _ in recorder.sent]
    assert all(b - a >= INTERVAL_MS / 1000 * 0.9 for a, b in itertools.pairwise(times)), times


async def test_tickers_are_folded_independently(stream: tuple[DisplayStream, Recorder]) -> None:
    display, recorder = stream
    display.offer(tick(1, "100"))
    display.offer(tick(1, "5", ticker="ETHUSDT"))
    await recorder.until(lambda t: t.ticker == "ETHUSDT")
    assert {(key, t.seq) for _, key, t in recorder.sent} == {
        ("display.price.binance.BTCUSDT", 1),
        ("display.price.binance.ETHUSDT", 1),
    }


async def test_a_tick_the_broker_refused_is_folded_into_the_next(
    stream: tuple[DisplayStream, Recorder],
) -> None:
    display, recorder = stream
    recorder.fail_next = 1
    display.offer(tick(1, "100", high="120"))
    await eventually(lambda: display.publish_failures == 1, timeout=2)
    display.offer(tick(2, "90"))
    sent = await recorder.until(lambda t: t.last == 90)
    # Nothing lost: the refused tick's extremes and trades travel in the next one; its seq is not reused.
    assert [(t.last, t.high, t.low, t.trades, t.seq) for t in sent] == [(D(90), D(120), D(90), 4, 2)]


async def test_a_refused_tick_is_retried_alone_after_an_interval(
    stream: tuple[DisplayStream, Recorder],
) -> None:
    display, recorder = stream
    recorder.fail_next = 1
    display.offer(tick(1, "100"))
    sent = await recorder.until(lambda t: t.last == 100)
    assert [(t.seq, t.trades) for t in sent] == [(2, 2)]
    assert display.publish_failures == 1 and display.published == 1
