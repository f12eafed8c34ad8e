"""Example-based tests of the grid state machine: round trips and their profit, stops, partial fills, errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

import pytest

from common.grid import MarketRules
from gridcore import (
    Abandon,
    CancelOrder,
    ConfigChanged,
    GridBot,
    GridConfig,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    Phase,
    PlaceOrder,
    RecordTrade,
    SetStatus,
    Side,
    SlotChanged,
    SlotState,
    Start,
    Status,
    Stop,
    StopReason,
    Tick,
    apply,
    paper_fill,
    simulate_tick,
    violations,
)

D = Decimal
T = TypeVar("T")


def of(kind: type[T], commands: Any) -> list[T]:
    """The commands of one type, in order (accepts commands or paper steps)."""
    flat: list[Any] = []
    for item in commands:
        flat.extend(item.commands if hasattr(item, "commands") else [item])
    return [c for c in flat if isinstance(c, kind)]


def started(config: GridConfig, amount: str, price: int | str, stop_at_max: bool = False) -> GridBot:
    bot = GridBot.new(config, D(amount), stop_at_max)
    bot.handle(Start(D(price)))
    return bot


def tick(last: int | str, high: int | str, low: int | str, up: bool | None = None) -> Tick:
    return Tick(D(last), D(high), D(low), up)


def test_start_places_buys_below_the_price_and_leaves_the_rest_idle(upbit_config: GridConfig) -> None:
    bot = GridBot.new(upbit_config, D(10_000), False)
    commands = bot.handle(Start(D(53_500_000)))
    assert commands[0] == SetStatus(Status.RUNNING)
    places = of(PlaceOrder, commands)
    assert [(p.slot, p.side, p.price) for p in places] == [
        (i, Side.BUY, upbit_config.levels[i]) for i in range(4)
    ]
    for p in places:
        # Upbit charges its fee in KRW on top of price·volume: the fee is kept inside the order amount.
        assert p.qty == upbit_config.rules.buy_qty(D(10_000), p.price)
        assert p.qty * p.price * D("1.0005") <= 10_000
    changed = of(SlotChanged, commands)
    assert [c.slot for c in changed] == list(range(16))
    assert [c.state for c in changed[4:]] == [SlotState.IDLE] * 12
    assert bot.state.slots[4].state is SlotState.IDLE
    assert not violations(bot)


def test_three_levels_down_and_back_up_books_the_exact_upbit_profit(upbit_config: GridConfig) -> None:
    levels, fee = upbit_config.levels, D("0.0005")
    bot = started(upbit_config, "10000", 53_500_000)
    down = simulate_tick(bot, tick(51_000_000, 53_500_000, 51_000_000, up=False))
    buys = of(RecordTrade, down)
    assert [(t.slot, t.side) for t in buys] == [(3, Side.BUY), (2, Side.BUY), (1, Side.BUY)]
    sells_placed = of(PlaceOrder, down)
    assert [(p.slot, p.side, p.price) for p in sells_placed] == [
        (3, Side.SELL, levels[4]),
        (2, Side.SELL, levels[3]),
        (1, Side.SELL, levels[2]),
    ]
    up = simulate_tick(bot, tick(54_500_000, 54_500_000, 51_000_000, up=True))
    sells = of(RecordTrade, up)
    assert [(t.slot, t.side) for t in sells] == [(1, Side.SELL), (2, Side.SELL), (3, Side.SELL)]
    total = D(0)
    for trade in sells:
        i = trade.slot
        q = upbit_config.rules.buy_qty(D(10_000), levels[i])
        assert trade.qty == q
        expected = q * levels[i + 1] * (1 - fee) - q * levels[i] * (1 + fee)
        assert trade.profit == expected
        total += expected
    assert bot.state.realized_profit == total
    # Each slot bought again at its level, and slot 4 armed as the high passed its level.
    rebuys = [(p.slot, p.side) for p in of(PlaceOrder, up)]
    assert rebuys == [(1, Side.BUY), (2, Side.BUY), (3, Side.BUY), (4, Side.BUY)]
    assert all(bot.state.slots[i].round_trips == 1 for i in (1, 2, 3))
    assert not violations(bot)


def test_binance_profit_with_the_buy_fee_in_base(binance_config: GridConfig) -> None:
    levels = binance_config.levels
    bot = started(binance_config, "20", "95000")  # between L5 = 94,630.26 and L6
    steps = simulate_tick(bot, tick("94000", "95000", "94000", up=False))
    (buy,) = of(RecordTrade, steps)
    assert (buy.slot, buy.fee_currency) == (5, "BTC")
    q = D(20) / levels[5]
    q = (q / D("0.00001")).to_integral_value(rounding="ROUND_FLOOR") * D("0.00001")
    assert buy.qty == q and buy.fee == q * D("0.001")
    held = q - q * D("0.001")
    (sell_order,) = of(PlaceOrder, steps)
    assert sell_order.qty == D("0.00020")  # 0.00021 bought, 0.00020979 held after the fee
    steps = simulate_tick(bot, tick("96000", "96000", "94000", up=True))
    (sell,) = of(RecordTrade, steps)
    proceeds = sell.qty * levels[6] * (1 - D("0.001"))
    cost = (q * levels[5] * sell.qty / held).quantize(D("1e-18"))
    assert sell.profit == proceeds - cost
    # The lot-rounding leftover stays in the slot at its cost, and is sold with the next round trip.
    slot = bot.state.slots[5]
    assert slot.holding_qty == held - sell.qty
    assert slot.holding_cost == q * levels[5] - cost
    assert not violations(bot)


def test_idle_slots_arm_when_the_high_passes_their_level(upbit_config: GridConfig) -> None:
    levels = upbit_config.levels
    bot = started(upbit_config, "10000", 51_500_000)  # slots 0 and 1 buy
    assert bot.watch().next_arm == levels[2]
    assert bot.handle(tick(52_148_000, 52_148_000, 51_500_000)) == []  # touching L2 is not above it
    commands = bot.handle(tick(53_000_000, 53_300_000, 52_000_000))
    assert [(p.slot, p.price) for p in of(PlaceOrder, commands)] == [(2, levels[2]), (3, levels[3])]
    assert bot.watch().next_arm == levels[4]
    assert not violations(bot)


def test_stop_at_max_cancels_everything_and_stops(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 60_000_000, stop_at_max=True)
    assert len(bot.open_orders()) == 9
    commands = bot.handle(tick(69_000_000, 69_999_000, 59_500_000))  # just below upperPrice: arms 9..15
    assert [p.slot for p in of(PlaceOrder, commands)] == list(range(9, 16))
    open_ids = [o.client_order_id for _, o in bot.open_orders()]
    commands = bot.handle(tick(69_500_000, 70_000_000, 69_000_000))
    assert [c.client_order_id for c in of(CancelOrder, commands)] == open_ids
    assert of(SetStatus, commands) == []  # stopped only once the exchange confirmed every cancel
    assert bot.state.status is Status.RUNNING and bot.state.phase is Phase.HALTING
    for cid in open_ids[:-1]:
        assert of(SetStatus, bot.handle(OrderCanceled(cid))) == []
    assert of(SetStatus, bot.handle(OrderCanceled(open_ids[-1]))) == [SetStatus(Status.STOPPED)]
    assert bot.open_orders() == []
    assert (bot.state.status, bot.state.phase) == (Status.STOPPED, Phase.HALTED)
    assert bot.handle(tick(60_000_000, 60_000_000, 50_000_000)) == []
    assert not violations(bot)


def test_stop_at_max_when_started_at_the_top(upbit_config: GridConfig) -> None:
    bot = GridBot.new(upbit_config, D(10_000), True)
    commands = bot.handle(Start(D(71_000_000)))
    assert commands == [SetStatus(Status.RUNNING), SetStatus(Status.STOPPED)]


def test_partial_fills_accumulate_and_the_final_one_acts(upbit_config: GridConfig) -> None:
    levels, fee = upbit_config.levels, D("0.0005")
    bot = started(upbit_config, "10000", 51_500_000)
    _, order = bot.open_order(bot.state.slots[1].order.client_order_id)  # type: ignore[union-attr,misc]
    cid, q = order.client_order_id, order.qty
    first = OrderFilled(cid, D("0.00008"), levels[1], D("0.00008") * levels[1] * fee, "KRW", "f1", False)
    assert of(PlaceOrder, bot.handle(first)) == []
    assert bot.handle(first) == []  # a redelivered fill changes nothing
    assert bot.state.slots[1].holding_qty == D("0.00008")
    rest = q - D("0.00008")
    last = OrderFilled(cid, rest, levels[1], rest * levels[1] * fee, "KRW", "f2", True)
    commands = bot.handle(last)
    (sell,) = of(PlaceOrder, commands)
    assert (sell.side, sell.price, sell.qty) == (Side.SELL, levels[2], q)
    # The sell fills in two parts; the two profits add up to the round trip's.
    half = D("0.0001")
    profits: list[Decimal] = []
    for fill_id, qty, final in (("s1", half, False), ("s2", q - half, True)):
        fill = OrderFilled(sell.client_order_id, qty, levels[2], qty * levels[2] * fee, "KRW", fill_id, final)
        (trade,) = of(RecordTrade, bot.handle(fill))
        assert trade.profit is not None
        profits.append(trade.profit)
    assert sum(profits) == q * levels[2] * (1 - fee) - q * levels[1] * (1 + fee)
    assert bot.state.slots[1].holding_qty == 0 and bot.state.slots[1].holding_cost == 0
    assert not violations(bot)


def test_a_partial_buy_canceled_at_stop_is_kept_and_sold_after_a_restart(upbit_config: GridConfig) -> None:
    levels, fee = upbit_config.levels, D("0.0005")
    bot = started(upbit_config, "10000", 51_500_000)
    cid = bot.state.slots[1].order.client_order_id  # type: ignore[union-attr]
    part = D("0.00015")
    bot.handle(OrderFilled(cid, part, levels[1], part * levels[1] * fee, "KRW", "f1", False))
    commands = apply(bot, Stop())
    assert of(SetStatus, commands) == [SetStatus(Status.STOPPED)]
    assert bot.state.slots[1].holding_qty == part
    assert bot.state.slots[1].state is SlotState.IDLE
    restart = bot.handle(Start(D(51_500_000)))
    placed = {p.slot: p for p in of(PlaceOrder, restart)}
    # 0.00015 BTC at L2 is worth ~7,800 KRW: sellable, so slot 1 offers it instead of buying more.
    assert (placed[1].side, placed[1].qty, placed[1].price) == (Side.SELL, part, levels[2])
    assert placed[0].side is Side.BUY
    assert not violations(bot)


def test_a_fill_that_races_a_cancel(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    cancels = of(CancelOrder, bot.handle(Stop()))
    assert len(cancels) == 2
    fill = paper_fill(bot, 0)
    commands = bot.handle(fill)  # slot 0's buy filled before the cancel reached the exchange
    assert of(PlaceOrder, commands) == [] and of(SetStatus, commands) == []
    assert bot.state.slots[0].holding_qty == fill.qty
    assert bot.handle(OrderCanceled(fill.client_order_id)) == []  # the cancel's late answer is moot
    assert of(SetStatus, bot.handle(OrderCanceled(cancels[1].client_order_id))) == [SetStatus(Status.STOPPED)]
    assert bot.open_orders() == []


def test_a_rejected_order_puts_the_bot_in_error(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    cid = bot.state.slots[1].order.client_order_id  # type: ignore[union-attr]
    commands = bot.handle(OrderRejected(cid, "insufficient_funds_bid: 주문가능한 금액(KRW)이 부족합니다."))
    (status,) = of(SetStatus, commands)
    assert status.status is Status.ERROR
    message = status.error_message or ""
    assert "rejected the buy order of slot 1" in message and "insufficient_funds_bid" in message
    assert "51063000" in message
    (cancel,) = of(CancelOrder, commands)
    assert cancel.client_order_id == bot.state.slots[0].order.client_order_id  # type: ignore[union-attr]
    done = bot.handle(OrderCanceled(cancel.client_order_id))
    assert of(SetStatus, done) == [SetStatus(Status.ERROR, message)]
    assert bot.state.phase is Phase.HALTED and bot.state.error_message == message
    restart = bot.handle(Start(D(51_500_000)))
    assert restart[0] == SetStatus(Status.RUNNING)
    assert bot.state.error_message is None
    assert not violations(bot)


def test_orders_below_the_minimum_are_not_placed(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    bot.handle(ConfigChanged(order_amount=D(4_000)))  # resting orders keep their size
    assert bot.state.slots[1].order is not None
    simulate_tick(bot, tick(51_000_000, 51_500_000, 51_000_000, up=False))
    steps = simulate_tick(bot, tick(52_500_000, 52_500_000, 51_000_000, up=True))
    idle = [c for c in of(SlotChanged, steps) if c.slot == 1 and c.state is SlotState.IDLE]
    assert idle and "below the exchange minimum" in (idle[-1].reason or "")
    assert bot.state.slots[1].order is None and bot.state.slots[1].blocked
    assert of(PlaceOrder, bot.handle(tick(52_600_000, 52_600_000, 52_400_000))) == []  # not re-armed
    assert bot.state.slots[2].blocked  # armed by the rise with the small amount too
    commands = bot.handle(ConfigChanged(order_amount=D(10_000)))
    assert [(p.slot, p.side) for p in of(PlaceOrder, commands)] == [(1, Side.BUY), (2, Side.BUY)]
    assert not violations(bot)


def test_an_order_canceled_outside_the_engine_is_placed_again(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    old = bot.state.slots[1].order.client_order_id  # type: ignore[union-attr]
    placed = bot.place_command(old)  # a send whose outcome is unknown goes out again with the same id
    assert placed is not None and (placed.client_order_id, placed.slot, placed.side) == (old, 1, Side.BUY)
    (again,) = of(PlaceOrder, bot.handle(OrderCanceled(old)))
    assert again.slot == 1 and again.client_order_id != old
    assert not violations(bot)


def test_start_and_stop_are_idempotent(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    assert bot.handle(Start(D(51_500_000))) == []
    apply(bot, Stop())
    assert bot.handle(Stop()) == [SetStatus(Status.STOPPED)]
    assert bot.handle(Stop("keys revoked")) == [SetStatus(Status.ERROR, "keys revoked")]
    assert bot.handle(Stop()) == [SetStatus(Status.STOPPED)]


def test_start_is_ignored_while_cancels_are_pending(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    cancels = of(CancelOrder, bot.handle(Stop()))
    assert bot.handle(Start(D(51_500_000))) == []
    for cancel in cancels:
        bot.handle(OrderCanceled(cancel.client_order_id))
    assert bot.state.status is Status.STOPPED


def test_a_stop_with_an_error_ends_in_error(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    steps = apply(bot, Stop("API keys were revoked"))
    assert of(SetStatus, steps) == [SetStatus(Status.ERROR, "API keys were revoked")]


def test_a_fee_in_a_third_currency_is_recorded_but_not_in_the_profit(binance_config: GridConfig) -> None:
    levels = binance_config.levels
    bot = started(binance_config, "20", "95000")
    cid = bot.state.slots[5].order.client_order_id  # type: ignore[union-attr]
    q = bot.state.slots[5].order.qty  # type: ignore[union-attr]
    (trade,) = of(RecordTrade, bot.handle(OrderFilled(cid, q, levels[5], D("0.00003"), "BNB", "b1", True)))
    assert (trade.fee, trade.fee_currency) == (D("0.00003"), "BNB")
    order = bot.state.slots[5].order
    assert order is not None and order.qty == q  # no base fee taken: everything bought is offered
    sale = OrderFilled(order.client_order_id, q, levels[6], D("0.00003"), "BNB", "s", True)
    (sold,) = of(RecordTrade, bot.handle(sale))
    assert sold.profit == q * levels[6] - q * levels[5]


def test_a_sell_of_more_than_the_slot_holds_fails_the_bot(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    bot.handle(paper_fill(bot, 1))
    order = bot.state.slots[1].order
    assert order is not None and order.side is Side.SELL
    too_much = OrderFilled(order.client_order_id, order.qty * 2, order.price, D(0), "KRW", "x", True)
    commands = bot.handle(too_much)
    (status, *_) = of(SetStatus, commands)
    assert status.status is Status.ERROR and "more BTC than slot 1 held" in (status.error_message or "")
    assert bot.state.slots[1].holding_qty == 0


def test_watch_tells_an_index_which_ticks_matter(upbit_config: GridConfig) -> None:
    levels = upbit_config.levels
    bot = started(upbit_config, "10000", 51_500_000, stop_at_max=True)
    watch = bot.watch()
    assert (watch.lowest_buy, watch.highest_buy) == (levels[0], levels[1])
    assert watch.lowest_sell is None and watch.next_arm == levels[2]
    assert watch.stop_price == 70_000_000
    assert not watch.crossed_by(D(51_100_000), D(52_148_000))
    assert watch.crossed_by(D(51_063_000), D(51_500_000))
    assert watch.crossed_by(D(51_100_000), D(52_149_000))
    apply(bot, Stop())
    assert bot.watch().crossed_by(D(1), D(10**9)) is False


def test_snapshot_and_restore_continue_identically(upbit_config: GridConfig) -> None:
    ticks = [tick(51_000_000, 53_500_000, 51_000_000, False), tick(55_000_000, 55_000_000, 50_900_000, True),
             tick(52_000_000, 55_100_000, 51_900_000, False), tick(56_000_000, 56_000_000, 51_800_000, True)]  # fmt: skip
    one = started(upbit_config, "10000", 53_500_000)
    simulate_tick(one, ticks[0])
    two = GridBot.restore(one.snapshot())
    assert two.snapshot() == one.snapshot()
    for t in ticks[1:]:
        assert simulate_tick(one, t) == simulate_tick(two, t)
    assert two.snapshot() == one.snapshot()
    assert not violations(two)


def test_client_order_ids_fit_both_exchanges_and_never_repeat(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 53_500_000)
    ids = [o.client_order_id for _, o in bot.open_orders()]
    apply(bot, Stop())
    ids += [p.client_order_id for p in of(PlaceOrder, bot.handle(Start(D(53_500_000))))]
    assert len(ids) == len(set(ids)) == 8
    assert all(len(cid) <= 36 for cid in ids)
    # Rebuilt from scratch with the same epoch, the same orders get the same ids: a retry cannot duplicate.
    again = started(upbit_config, "10000", 53_500_000)
    assert [o.client_order_id for _, o in again.open_orders()] == ids[:4]


@pytest.mark.parametrize("amount", ["0", "-1"])
def test_config_changes_are_validated(amount: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        ConfigChanged(order_amount=D(amount))


def test_events_are_validated(upbit: MarketRules) -> None:
    with pytest.raises(ValueError, match="low <= last <= high"):
        Tick(D(10), D(9), D(8))
    with pytest.raises(ValueError, match="positive"):
        Start(D(0))
    with pytest.raises(ValueError):
        OrderFilled("x", D(-1), D(1), D(0), "KRW", "f", True)
    with pytest.raises(ValueError, match="increasing"):
        GridConfig("b", (D(2), D(1)), D(2), upbit)


def test_each_halt_records_why_and_a_start_forgets_it(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    assert bot.state.stop_reason is None
    apply(bot, Stop())
    assert bot.state.stop_reason is StopReason.USER
    bot.handle(Start(D(51_500_000)))
    assert bot.state.stop_reason is None
    # A halt under way keeps its cause when a plain stop comes in; an error takes over.
    cancels = of(CancelOrder, bot.handle(Stop(reason=StopReason.CREDENTIAL_REMOVED)))
    bot.handle(Stop())
    assert bot.state.stop_reason is StopReason.CREDENTIAL_REMOVED
    bot.handle(Stop("keys revoked"))
    assert bot.state.stop_reason is StopReason.ERROR
    for cancel in cancels:
        bot.handle(OrderCanceled(cancel.client_order_id))
    assert (bot.state.status, bot.state.stop_reason) == (Status.ERROR, StopReason.ERROR)
    # At rest, a new stop says why it stands now.
    bot.handle(Stop(reason=StopReason.CREDENTIAL_REMOVED))
    assert (bot.state.status, bot.state.stop_reason) == (Status.STOPPED, StopReason.CREDENTIAL_REMOVED)
    at_max = started(upbit_config, "10000", 51_500_000, stop_at_max=True)
    apply(at_max, tick(upbit_config.upper_price, upbit_config.upper_price, 51_500_000))
    assert (at_max.state.status, at_max.state.stop_reason) == (Status.STOPPED, StopReason.STOP_AT_MAX)
    restored = GridBot.restore(at_max.snapshot())
    assert restored.state.stop_reason is StopReason.STOP_AT_MAX
    older = at_max.snapshot()
    del older["stop_reason"]  # a snapshot stored before stop reasons existed
    assert GridBot.restore(older).state.stop_reason is None


def test_abandon_forgets_a_halting_bots_open_orders_and_ends_the_halt(upbit_config: GridConfig) -> None:
    bot = started(upbit_config, "10000", 51_500_000)
    assert bot.handle(Abandon()) == []  # a running bot is stopped first, never abandoned
    assert len(bot.open_orders()) == 2
    cancels = of(CancelOrder, bot.handle(Stop(reason=StopReason.CREDENTIAL_REMOVED)))
    bot.handle(OrderCanceled(cancels[0].client_order_id))  # one cancel got through before the keys went
    commands = bot.handle(Abandon())
    assert of(SetStatus, commands) == [SetStatus(Status.STOPPED)]
    assert [c.state for c in of(SlotChanged, commands)] == [SlotState.IDLE]
    assert bot.open_orders() == [] and bot.state.phase is Phase.HALTED
    assert bot.state.stop_reason is StopReason.CREDENTIAL_REMOVED
    assert not violations(bot)
    # The late answer about an abandoned order changes nothing.
    assert bot.handle(OrderCanceled(cancels[1].client_order_id)) == []
