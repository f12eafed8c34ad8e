"""A backtest's trades are a paper bot's: the engine fed a window of real candles trades what `replay` says.

The bot is created and started as in production (the bots service's rows, `bot.start` with market-data's
cached price at the first candle's open); every simulated trade of the window (the exchange simulator's own
`candle_path`, four per candle) is published as market-data publishes a lone trade (last = high = low), each
applied before the next, so none is folded. Then the engine's `bots.trades` rows, the trade events it told
the user, the bots service's figures and the core state it stored are compared, digit for digit and tick by
tick, with `gridcore.replay.replay` and `replay_reference` over the same candles (docs/backtest.md).
"""

from __future__ import annotations

import csv
import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import groupby
from typing import Any

import numpy as np
import pytest
from engine_support import (
    BotFactory,
    BotSpec,
    EventSink,
    TickPublisher,
    cache_price,
    levels_of,
    performance_of,
    publish_command,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.grid import plan_grid
from common.testing.shared import shared_file
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from exchange_sim.prices import candle_path, load_candles_csv
from gridcore import MARKET_SLOT, GridState, Phase, StopReason
from gridcore.ids import bot_prefix
from gridcore.replay import TICK_OFFSETS_MS, CandleSeries, Replay, ReplaySpec, replay, replay_reference
from gridcore.replay.types import BACKTEST_BOT_ID
from gridcore.replay.types import Trade as ReplayTrade
from trading.models import EngineState, Order, Trade

pytestmark = pytest.mark.timeout(180)

D = Decimal
CANDLE_FILE = ("data", "binance_BTCUSDT_1m_2024-12.csv")
ORDER_AMOUNT = D(100)
# A tick is applied (committed, the router idle) well within this on a loaded machine.
TICK_DEADLINE = 10.0

# One trade as both sides record it: slot, side, price, quantity, fee, fee currency, profit.
TradeKey = tuple[int, str, Decimal, Decimal, Decimal, str, Decimal | None]


@dataclass(frozen=True)
class Window:
    """Candles [start, start + size) of the month, and the grid the bot trades them with."""

    start: int
    size: int
    lower: Decimal
    upper: Decimal
    percent: Decimal
    stop_at_max: bool
    amount: Decimal = ORDER_AMOUNT  # quote per slot
    options: dict[str, Any] = field(default_factory=dict)  # grid options by their `bots` column names


WINDOWS = [
    # 2024-12-05 20:17 UTC, 4 h: the fall from 98,700 to 90,500 and back over 99,000 through 29 slots of
    # 0.25 %: up to 24 buys filled by one simulated trade, the price above the grid, and the bottom level
    # set at the window's lowest trade (90,500.00) so that its buy fills on a touch.
    pytest.param(Window(7037, 240, D("90500.00"), D(97_500), D("0.25"), False), id="dec05-crash-29slots"),
    # 2024-12-15 17:57 UTC, 6 h 40: a slow climb from 103,100 to 106,500 through 24 slots of 0.2 % (round
    # trips barely above the two fees).
    pytest.param(Window(21_297, 400, D(102_035), D(107_154), D("0.2"), False), id="dec15-climb-24slots"),
    # 2024-12-20 10:04 UTC, 4 h, stopAtMax, upperPrice the window's highest trade (95,803.57): the price
    # swings through the grid's upper half and touches upperPrice at the 226th candle's high (its second
    # trade), where the bot stops with its orders cancelled.
    pytest.param(
        Window(28_024, 240, D(88_752), D("95803.57"), D("0.25"), True), id="dec20-stop-at-max-touch"
    ),
]


OPTION_WINDOWS = [
    # The dec05 fall into a grid under the start price, a stop-loss under the grid: the buys fill on the way
    # down, the low reaches 92,000 and the bot stops and sells what its slots hold at market.
    pytest.param(
        Window(7037, 240, D(93_000), D(97_500), D("0.25"), False,
               options={"stop_loss_price": D(92_000), "sell_base_on_stop": True}),
        id="dec05-stop-loss-sells-base",
    ),
    # The dec15 climb: nothing is placed until the high reaches the trigger (103,500, above the start);
    # then the price leaves the 102,035–104,000 grid upwards and trailing up moves it a step at a time.
    pytest.param(
        Window(21_297, 400, D(102_035), D(104_000), D("0.2"), False,
               options={"trigger_price": D(103_500), "trailing_up": True, "trailing_up_limit": D(107_000)}),
        id="dec15-trigger-then-trailing-up",
    ),
    # The same climb through the whole grid to a take-profit at 106,000, selling the base still held.
    pytest.param(
        Window(21_297, 400, D(102_035), D(107_154), D("0.2"), False,
               options={"take_profit_price": D(106_000), "sell_base_on_stop": True}),
        id="dec15-take-profit-sells-base",
    ),
]  # fmt: skip


@functools.cache
def month() -> CandleSeries:
    """The shared December minutes as the backtest reads them (open time from close_datetime)."""
    with shared_file(*CANDLE_FILE).open(newline="") as handle:
        return CandleSeries.from_csv_rows(csv.DictReader(handle))


def simulated_trades(window: Window, candles: CandleSeries) -> list[Decimal]:
    """The simulator's trades of the window's candles, in the order it replays them."""
    table = load_candles_csv(shared_file(*CANDLE_FILE))
    rows = table[window.start : window.start + window.size]
    # The simulator and the backtest read the same minutes.
    assert [(c.open, c.high, c.low, c.close) for c in rows] == list(
        zip(candles.open, candles.high, candles.low, candles.close, strict=True)
    )
    return [price for candle in rows for price in candle_path(candle)]


def replay_key(trade: ReplayTrade) -> TradeKey:
    return (
        trade.slot,
        trade.side.value,
        trade.price,
        trade.qty,
        trade.fee,
        trade.fee_currency,
        trade.profit,
    )


def tick_index(timestamp: int, candles: CandleSeries) -> int:
    """Which simulated trade of the window a replay timestamp stamps (four per candle)."""
    stamp = timestamp - timestamp % 60_000
    minute = int(np.searchsorted(candles.timestamps, stamp))
    assert candles.timestamps[minute] == stamp
    return minute * 4 + TICK_OFFSETS_MS.index(timestamp - stamp)


def replay_ticks(result: Replay, candles: CandleSeries) -> list[tuple[int, list[TradeKey]]]:
    """The replay's trades grouped by the simulated trade (tick index) that made them, in order."""
    return [
        (tick, [replay_key(t) for t in trades])
        for tick, trades in groupby(result.trades, key=lambda t: tick_index(t.timestamp, candles))
    ]


async def stored_trades(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> list[list[TradeKey]]:
    """The bot's trade rows grouped by transaction (one paper tick each), oldest first; within a group
    in slot order (a row keeps no order of its own within its transaction)."""
    async with db() as session:
        rows = (
            await session.execute(
                select(Trade, Order.slot)
                .join(Order, Order.id == Trade.order_id)
                .where(Trade.bot_id == bot_id)
                .order_by(Trade.executed_at, Order.slot)
            )
        ).all()
    return [
        sorted(
            (
                (_slot_of(t, slot), t.side, t.price, t.amount, t.fee, t.fee_currency, t.profit)
                for t, slot in group
            ),
            key=_in_tick,
        )
        for _, group in groupby(rows, key=lambda row: row[0].executed_at)
    ]


def _in_tick(key: TradeKey) -> tuple[Any, ...]:
    """An order of a tick's trades both sides can make (rows keep none within their transaction)."""
    return key[:6]  # a slot's buy and sell, and its share of a market sell, by price and quantity


def _slot_of(trade: Trade, order_slot: int) -> int:
    """The slot a trade belongs to: its order's, or for a market sell's share the one in its fill id."""
    return order_slot if order_slot != MARKET_SLOT else int(trade.fill_id.rsplit(":", 1)[1])


def told_trades(events: EventSink, bot_id: uuid.UUID) -> list[list[tuple[str, Decimal, Decimal]]]:
    """The trade events the user was sent, grouped by fill time, each group in the engine's own order."""
    trades = [e["trade"] for e in events.of("trade", bot_id)]
    return [
        [(t["type"], D(str(t["price"])), D(str(t["amount"]))) for t in group]
        for _, group in groupby(sorted(trades, key=_executed_at), key=_executed_at)
    ]


def _executed_at(trade: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(trade["executedAt"]))


async def stored_core(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> GridState:
    """The core state the engine stored, its bot id (and the client order ids it seeds) the replay's."""
    async with db() as session:
        state = (
            await session.execute(select(EngineState.state).where(EngineState.bot_id == bot_id))
        ).scalar_one()
    text = json.dumps(state["core"])
    text = text.replace(bot_prefix(str(bot_id)), bot_prefix(BACKTEST_BOT_ID)).replace(
        str(bot_id), BACKTEST_BOT_ID
    )
    return GridState.from_dict(json.loads(text))


@dataclass
class Run:
    """What the test saw of the engine while feeding it: which ticks made trades, when the bot halted."""

    fills: list[tuple[int, int]] = field(default_factory=list)  # (tick index, trades committed for it)
    halted_at: int | None = None  # the tick after which the core no longer ran


async def feed(engine: EngineRuntime, ticks: TickPublisher, bot_id: uuid.UUID, path: list[Decimal]) -> Run:
    """Publish one tick per simulated trade, each applied by the engine before the next is published."""
    router = engine.ticks
    assert router is not None
    metrics, run = engine.metrics, Run()
    received, batches = metrics.ticks, metrics.tick_batches
    for index, price in enumerate(path):
        before = metrics.fills
        await ticks.send(ticks.tick(price, price, price))
        # The router counts a tick as it takes it (synchronously, folding it into its ticker's pending
        # tick); drain() returns once every bot the tick concerned has committed it.
        await eventually(_taken(engine, received + index + 1), timeout=TICK_DEADLINE, interval=0.001)
        await router.drain()
        if metrics.fills > before:
            run.fills.append((index, metrics.fills - before))
        handle = engine.registry.handles.get(bot_id)
        if run.halted_at is None and handle is not None and handle.core.state.phase is not Phase.RUNNING:
            run.halted_at = index
    # One core pass per simulated trade: no tick was folded into another.
    assert metrics.tick_batches - batches == len(path)
    return run


def _taken(engine: EngineRuntime, count: int) -> Callable[[], bool]:
    return lambda: engine.metrics.ticks == count


async def started_at(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> Decimal | None:
    """The price the stored core runs from once started (None before)."""
    async with db() as session:
        state = await session.scalar(select(EngineState.state).where(EngineState.bot_id == bot_id))
    if state is None or state["core"]["phase"] != Phase.RUNNING.value:
        return None
    return Decimal(state["core"]["last_price"])


async def _started(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> bool:
    return await started_at(db, bot_id) is not None


@pytest.mark.parametrize("window", WINDOWS)
async def test_paper_bot_trades_what_the_backtest_replays(
    window: Window,
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> None:
    expected = await compare(window, engine, bus, bots, events, db)
    # The window was worth comparing: dozens of round trips, the stop where the case says it stops.
    assert 20 <= len(expected.state.slots) <= 40
    assert sum(1 for t in expected.trades if t.side.value == "sell") >= 20
    assert (expected.stop_reason is StopReason.STOP_AT_MAX) is window.stop_at_max


@pytest.mark.parametrize("window", OPTION_WINDOWS)
async def test_paper_bot_with_grid_options_trades_what_the_backtest_replays(
    window: Window,
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> None:
    expected = await compare(window, engine, bus, bots, events, db)
    assert sum(1 for t in expected.trades if t.side.value == "sell") >= 10
    row = await bots.bot(expected_bot(bots))
    assert row.triggered
    options = window.options
    if options.get("stop_loss_price") or options.get("take_profit_price"):
        assert expected.stop_reason in (StopReason.STOP_LOSS, StopReason.TAKE_PROFIT)
        # The market sell sold what the slots held, down to the lot: nothing rests, the base is gone.
        assert all(slot.order is None for slot in expected.state.slots)
        assert sum((slot.holding_qty for slot in expected.state.slots), D(0)) < D("0.00001")
    if options.get("trailing_up"):
        state = expected.state
        assert state.added_levels and state.low_slot == len(state.added_levels)
        levels = await levels_of(db, row.id)
        assert [level.price for level in levels] == list(state.all_levels())
        resting = {level.level_index for level in levels if level.status == "pending"}
        # The grid-levels read shows the moved grid: the retired levels are inactive unless an order rests.
        assert [level.level_index for level in levels if level.active] == sorted(
            {level.level_index for level in levels if level.level_index >= state.low_slot} | resting
        )


def expected_bot(bots: BotFactory) -> uuid.UUID:
    """The bot the comparison created (the last one)."""
    return bots.created[-1]


async def compare(
    window: Window,
    engine: EngineRuntime,
    bus: RabbitBus,
    bots: BotFactory,
    events: EventSink,
    db: async_sessionmaker[AsyncSession],
) -> Replay:
    """Run the window through a paper bot in the engine and through the replays; assert they agree."""
    spec = BotSpec(
        exchange="binance",
        ticker="BTCUSDT",
        lower=window.lower,
        upper=window.upper,
        percent=window.percent,
        amount=window.amount,
        stop_at_max=window.stop_at_max,
        options=dict(window.options),
    )
    rules = spec.rules()
    plan = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, rules)
    candles = month().window(window.start, window.start + window.size)
    replay_spec = ReplaySpec(plan.levels, spec.upper, spec.amount, spec.stop_at_max, rules, **window.options)
    expected = replay(replay_spec, candles)
    assert replay_reference(replay_spec, candles) == expected
    path = simulated_trades(window, candles)

    # Started as production starts it: market-data's cached price (the first trade, the candle's open).
    assert engine.cache is not None
    await cache_price(engine.cache, spec.ticker, str(candles.open[0]), exchange=spec.exchange)
    bot = await bots.create(spec)
    await publish_command(bus, bot, BotEvent.START)
    await eventually(lambda: _started(db, bot.id), timeout=TICK_DEADLINE)
    assert await started_at(db, bot.id) == candles.open[0]

    run = await feed(engine, TickPublisher(bus, spec.exchange, spec.ticker), bot.id, path)

    expected_ticks = replay_ticks(expected, candles)
    # The same trades at the same simulated trades, to the last digit.
    assert run.fills == [(tick, len(trades)) for tick, trades in expected_ticks]
    stored = await stored_trades(db, bot.id)
    assert stored == [sorted(trades, key=_in_tick) for _, trades in expected_ticks]
    # In the order the engine made them within a tick (its events list a transaction's trades in order).
    await eventually(lambda: len(events.of("trade", bot.id)) == len(expected.trades), timeout=TICK_DEADLINE)
    assert told_trades(events, bot.id) == [
        [(k[1], k[2], k[3]) for k in trades] for _, trades in expected_ticks
    ]

    # The bots service's figures of those rows: counts and realised profit.
    figures = await performance_of(db, await bots.bot(bot.id), path[-1])
    buys = sum(1 for t in expected.trades if t.side.value == "buy")
    sells = len(expected.trades) - buys
    assert (figures["buyTrades"], figures["sellTrades"]) == (buys, sells)
    assert figures["totalProfit"] == expected.realized_profit

    # The core the engine stored is the replay's, slot by slot (holdings, orders, last price, profit).
    assert await stored_core(db, bot.id) == expected.state
    if expected.stopped_at is not None:
        assert run.halted_at == tick_index(expected.stopped_at, candles)
        row = await bots.bot(bot.id)
        assert expected.stop_reason is not None
        assert (row.status, row.stop_reason) == ("stopped", expected.stop_reason.value)
    else:
        assert run.halted_at is None
    return expected
