"""Example-based tests of the grid options: trigger, take-profit, stop-loss, sell base on stop, trailing up,
and snapshots with them (a version-1 snapshot still restores)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from gridcore import (
    CancelOrder,
    ConfigChanged,
    GridBot,
    GridConfig,
    OrderCanceled,
    OrderRejected,
    Phase,
    PlaceOrder,
    RecordTrade,
    SellMarket,
    SetStatus,
    Side,
    Start,
    Status,
    Stop,
    StopReason,
    apply,
    market_fill,
    paper_fill,
    simulate_tick,
    violations,
)
from gridcore.options import next_level, trail_step

from .test_machine import of, tick

D = Decimal


def bot_with(config: GridConfig, amount: str = "20", stop_at_max: bool = False, **options: Any) -> GridBot:
    return GridBot.new(dataclasses.replace(config, **options), D(amount), stop_at_max)


def held(bot: GridBot) -> Decimal:
    return sum((s.holding_qty for s in bot.state.slots), D(0))


# --- trigger ------------------------------------------------------------------------------------------------


def test_a_trigger_below_the_start_waits_for_a_low_at_or_under_it(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, trigger_price=D(95_000))
    assert bot.state.triggered is False
    assert of(PlaceOrder, apply(bot, Start(D(100_000)))) == []
    assert bot.state.status is Status.RUNNING and bot.watch().trigger_below == D(95_000)
    assert of(PlaceOrder, simulate_tick(bot, tick(96_000, 120_000, "95000.01"))) == []
    assert bot.state.triggered is False
    steps = simulate_tick(bot, tick(96_000, 96_000, 95_000))
    assert bot.state.triggered is True
    buys = of(PlaceOrder, steps)
    assert buys and all(p.side is Side.BUY and p.price < D(96_000) for p in buys)
    assert bot.watch().trigger_below is None and violations(bot) == []


def test_a_trigger_reached_by_a_fall_within_one_tick_rests_its_buys_below_the_last_price(
    binance_config: GridConfig,
) -> None:
    # One tick holds the fall: its high (the price before it) comes before the trigger, not after.
    bot = bot_with(binance_config, trigger_price=D(95_000))
    apply(bot, Start(D(100_000)))
    buys = of(PlaceOrder, simulate_tick(bot, tick(95_500, 100_000, 95_000)))
    assert bot.state.triggered and buys
    assert all(p.side is Side.BUY and p.price < D(95_500) for p in buys), [p.price for p in buys]
    assert violations(bot) == []


def test_a_trigger_above_the_start_waits_for_a_high_at_or_over_it(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, trigger_price=D(101_000))
    apply(bot, Start(D(100_000)))
    assert of(PlaceOrder, simulate_tick(bot, tick(100_500, 100_999, 80_000))) == []
    assert of(PlaceOrder, simulate_tick(bot, tick(101_000, 101_000, 101_000)))
    assert bot.state.triggered
    # A restart keeps it triggered: a trigger fires once per grid.
    apply(bot, Stop())
    assert of(PlaceOrder, apply(bot, Start(D(100_000))))


def test_a_trigger_at_the_start_price_fires_at_once(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, trigger_price=D(100_000))
    assert of(PlaceOrder, apply(bot, Start(D(100_000))))
    assert bot.state.triggered


# --- take-profit and stop-loss ------------------------------------------------------------------------------


def test_take_profit_cancels_everything_and_stops(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, take_profit_price=D(112_000))
    apply(bot, Start(D(100_000)))
    assert bot.watch().take_profit == D(112_000)
    simulate_tick(bot, tick(111_000, 111_999, 99_000))
    assert bot.state.phase is Phase.RUNNING
    steps = simulate_tick(bot, tick(111_000, 112_000, 111_000))
    assert of(CancelOrder, steps) and bot.open_orders() == []
    assert bot.state.status is Status.STOPPED and bot.state.stop_reason is StopReason.TAKE_PROFIT
    assert StopReason.TAKE_PROFIT.value == "takeProfit"


def test_take_profit_and_stop_loss_move_while_running(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, take_profit_price=D(112_000))
    apply(bot, Start(D(100_000)))
    assert apply(bot, ConfigChanged(stops=(D(130_000), D(90_000))))[0].commands == ()
    assert (bot.watch().take_profit, bot.watch().stop_loss) == (D(130_000), D(90_000))
    simulate_tick(bot, tick(112_500, 112_500, 112_500))  # the old take-profit no longer stops it
    assert bot.state.phase is Phase.RUNNING
    apply(bot, ConfigChanged(stops=(None, D(90_000))))
    assert bot.watch().take_profit is None
    restored = GridBot.restore(bot.snapshot())
    assert (
        restored.state.config.stop_loss_price == D(90_000) and restored.state.config.take_profit_price is None
    )
    simulate_tick(bot, tick(100_000, 100_000, 90_000))
    assert bot.state.stop_reason is StopReason.STOP_LOSS and bot.state.status is Status.STOPPED


def test_stop_loss_stops_at_the_low_before_the_high_of_a_tick_that_closed_up(
    binance_config: GridConfig,
) -> None:
    bot = bot_with(binance_config, stop_loss_price=D(85_000), take_profit_price=D(115_000))
    apply(bot, Start(D(100_000)))
    # Low first (closed up): the stop-loss is met before the take-profit, and nothing at the high fills.
    steps = simulate_tick(bot, tick(100_000, 116_000, 84_000, True), open_price=D(100_000))
    assert bot.state.stop_reason is StopReason.STOP_LOSS and StopReason.STOP_LOSS.value == "stopLoss"
    assert all(t.side is Side.BUY for t in of(RecordTrade, steps))
    bot2 = bot_with(binance_config, stop_loss_price=D(85_000), take_profit_price=D(115_000))
    apply(bot2, Start(D(100_000)))
    simulate_tick(bot2, tick(100_000, 116_000, 84_000, False), open_price=D(100_000))
    assert bot2.state.stop_reason is StopReason.TAKE_PROFIT


# --- sell base on stop --------------------------------------------------------------------------------------


def test_a_stop_sells_the_held_base_at_market_with_the_round_trip_profit(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, sell_base_on_stop=True)
    apply(bot, Start(D(100_000)))
    simulate_tick(bot, tick(96_000, 100_000, 96_000))  # the buys from 99,000 down to 96,000 fill
    holdings = {s.index: (s.holding_qty, s.holding_cost) for s in bot.state.slots if s.holding_qty > 0}
    assert len(holdings) >= 3
    simulate_tick(bot, tick(96_500, 96_500, 96_500))
    steps = apply(bot, Stop())
    [sell] = of(SellMarket, steps)
    rules = binance_config.rules
    assert sell.qty == rules.floor_qty(sum((q for q, _ in holdings.values()), D(0))) and sell.price == D(
        "96500"
    )
    trades = [t for t in of(RecordTrade, steps) if t.client_order_id == sell.client_order_id]
    assert sum(t.qty for t in trades) == sell.qty
    assert sum(t.fee for t in trades) == sell.qty * D("96500") * rules.taker_fee
    for trade in trades:
        qty, cost = holdings[trade.slot]
        left = bot.state.slots[trade.slot].holding_qty
        share = cost if left == 0 else (cost * trade.qty / qty).quantize(D("1e-18"))
        assert trade.profit == trade.qty * trade.price - trade.fee - share
    assert held(bot) < rules.lot_step * len(holdings)  # only lot-rounding dust is left
    assert bot.state.phase is Phase.HALTED and bot.state.market_sell is None
    assert of(SetStatus, steps)[-1] == SetStatus(Status.STOPPED)
    assert violations(bot) == []


def test_the_halt_waits_for_the_market_sell_and_survives_a_restore(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, sell_base_on_stop=True, take_profit_price=D(120_000))
    apply(bot, Start(D(100_000)))
    simulate_tick(bot, tick(98_000, 100_000, 98_000))
    commands = bot.handle(Stop())
    for cancel in of(CancelOrder, commands):
        commands += bot.handle(OrderCanceled(cancel.client_order_id))
    [sell] = of(SellMarket, commands)
    assert bot.state.phase is Phase.HALTING and Status.STOPPED not in [
        c.status for c in of(SetStatus, commands)
    ]
    bot = GridBot.restore(bot.snapshot())
    assert bot.market_sell_command() == sell
    full = market_fill(bot, sell, D(98_100))
    half = dataclasses.replace(full, qty=sell.qty / 2, fee=full.fee / 2, fill_id="a", is_final=False)
    first = bot.handle(half)
    assert of(RecordTrade, first) and bot.state.phase is Phase.HALTING
    assert bot.handle(half) == []  # a redelivered fill is ignored
    rest = dataclasses.replace(half, fill_id="b", is_final=True)
    assert of(SetStatus, bot.handle(rest)) == [SetStatus(Status.STOPPED)]
    assert bot.state.market_sell is None and violations(bot) == []


def test_below_the_minimum_nothing_is_sold_and_a_refused_sale_ends_the_halt(
    binance_config: GridConfig,
) -> None:
    bot = bot_with(binance_config, sell_base_on_stop=True)
    apply(bot, Start(D(100_000)))
    bot.state.slots[0].holding_qty, bot.state.slots[0].holding_cost = D("0.00004"), D(4)
    steps = apply(bot, Stop())
    assert of(SellMarket, steps) == [] and held(bot) == D("0.00004")
    assert bot.state.status is Status.STOPPED

    bot = bot_with(binance_config, sell_base_on_stop=True)
    apply(bot, Start(D(100_000)))
    simulate_tick(bot, tick(98_000, 100_000, 98_000))
    commands = bot.handle(Stop())
    for cancel in of(CancelOrder, commands):
        commands += bot.handle(OrderCanceled(cancel.client_order_id))
    [sell] = of(SellMarket, commands)
    before = held(bot)
    assert of(SetStatus, bot.handle(OrderRejected(sell.client_order_id, "no"))) == [SetStatus(Status.STOPPED)]
    assert held(bot) == before


def test_an_error_stop_sells_nothing(binance_config: GridConfig) -> None:
    bot = bot_with(binance_config, sell_base_on_stop=True)
    apply(bot, Start(D(100_000)))
    simulate_tick(bot, tick(98_000, 100_000, 98_000))
    assert of(SellMarket, apply(bot, Stop("keys revoked"))) == []
    assert bot.state.status is Status.ERROR and held(bot) > 0


# --- trailing up --------------------------------------------------------------------------------------------


def test_trailing_moves_the_grid_up_a_step_and_waits_for_the_lowest_buy(binance_config: GridConfig) -> None:
    config = dataclasses.replace(binance_config, trailing_up=True, trailing_up_limit=D(113_000))
    bot = GridBot.new(config, D(20), False)
    bot.handle(Start(D(109_000)))
    top = config.levels[-1]
    step = trail_step(config)
    first = next_level(config, step, top)
    assert first is not None and first > top and config.rules.is_valid_price(first)
    assert bot.watch().trail_at == first
    # A high below the next level moves nothing.
    assert bot.handle(tick(109_500, str(first - D("0.01")), 109_500)) == []
    commands = bot.handle(tick(str(first), str(first), str(first)))
    [cancel] = of(CancelOrder, commands)
    assert cancel.client_order_id.split("-")[-1].startswith("0b")  # the lowest slot's buy
    assert bot.state.added_levels == [first] and bot.state.low_slot == 1
    assert bot.state.trail_waits == {0: config.slot_count}
    assert of(PlaceOrder, commands) == []  # the new top slot buys only once that cancel is confirmed
    assert violations(bot, D(20) * config.slot_count) == []
    placed = of(PlaceOrder, bot.handle(OrderCanceled(cancel.client_order_id)))
    assert [(p.slot, p.side, p.price) for p in placed] == [(config.slot_count, Side.BUY, top)]
    # Up to the limit and no further, whatever the high.
    bot.handle(tick(200_000, 200_000, 200_000))
    assert bot.state.added_levels[-1] <= D(113_000)
    assert next_level(config, step, bot.state.added_levels[-1]) is None
    assert len(bot.state.slots) - bot.state.low_slot == config.slot_count
    assert violations(bot, D(20) * config.slot_count) == []
    restored = GridBot.restore(bot.snapshot())
    assert restored.snapshot() == bot.snapshot() and restored.watch() == bot.watch()


def test_a_retired_slot_keeps_its_sell_and_then_leaves(binance_config: GridConfig) -> None:
    config = dataclasses.replace(binance_config, trailing_up=True, kind="arithmetic")
    bot = GridBot.new(config, D(20), False)
    bot.handle(Start(D(91_000)))
    bot.handle(paper_fill(bot, 0))  # slot 0 bought at 90,000 and sells at 90,907.56
    sell = bot.state.slots[0].order
    assert sell is not None and sell.side is Side.SELL
    step = trail_step(config)
    assert step == (config.levels[-1] - config.levels[0]) / config.slot_count
    nxt = next_level(config, step, config.levels[-1])
    assert nxt is not None
    # The core alone (no paper path): a tick at the next level retires slot 0, whose sell stays.
    commands = bot.handle(tick(str(nxt), str(nxt), str(nxt)))
    assert bot.state.low_slot == 1 and of(CancelOrder, commands) == []
    assert bot.state.slots[0].order is sell
    # The new top slot is armed at once by the same tick: a buy at the old top level.
    [buy] = [p for p in of(PlaceOrder, commands) if p.slot == config.slot_count]
    assert (buy.side, buy.price) == (Side.BUY, config.levels[-1])
    after = bot.handle(paper_fill(bot, 0))
    assert of(PlaceOrder, after) == [] and bot.state.slots[0].order is None  # retired: no new buy
    assert of(RecordTrade, after)[0].profit is not None
    assert violations(bot) == []


# --- snapshots ----------------------------------------------------------------------------------------------


def test_a_version_1_snapshot_restores_as_a_bot_without_options(binance_config: GridConfig) -> None:
    bot = GridBot.new(binance_config, D(20), True)
    apply(bot, Start(D(100_000)))
    simulate_tick(bot, tick(98_000, 100_000, 98_000))
    snapshot = bot.snapshot()
    old = {k: v for k, v in snapshot.items() if k not in {
        "triggered", "trigger_above", "added_levels", "low_slot", "trail_waits", "market_sell", "market_seq",
        "sell_pending"}}  # fmt: skip
    old["version"] = 1
    assert set(snapshot["config"]) == {"bot_id", "levels", "upper_price", "rules"}
    restored = GridBot.restore(old)
    assert restored.snapshot() == snapshot
    assert restored.state.triggered and restored.watch() == bot.watch()


def test_options_round_trip_through_the_snapshot(binance_config: GridConfig) -> None:
    bot = bot_with(
        binance_config,
        trigger_price=D(95_000),
        take_profit_price=D(120_000),
        stop_loss_price=D(80_000),
        sell_base_on_stop=True,
        trailing_up=True,
        trailing_up_limit=D(130_000),
        kind="arithmetic",
    )
    apply(bot, Start(D(100_000)))
    restored = GridBot.restore(bot.snapshot())
    assert restored.state == bot.state
    assert restored.state.config.kind == "arithmetic" and restored.state.trigger_above is False
