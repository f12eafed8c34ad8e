"""Property-based tests of the core: random price paths, a random exchange, and the real December 2024 candles.

Invariants checked after every event: at most one open order per slot, never more base offered or sold than
bought, open buys commit at most the investment, realised profit equals the round trips recomputed here
from the RecordTrade commands alone, client order ids unique over a whole run, no open order once a stop
has been confirmed, and the same events always give the same commands (also after a snapshot/restore, and
when the recorded events are replayed into a fresh bot without the paper model).
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from itertools import pairwise

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.grid import MarketRules, Rounding, plan_grid
from common.testing.shared import shared_file
from gridcore import (
    CancelOrder,
    Command,
    ConfigChanged,
    Event,
    GridBot,
    GridConfig,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PaperStep,
    Phase,
    PlaceOrder,
    RecordTrade,
    SellMarket,
    SetStatus,
    Side,
    Start,
    Status,
    Stop,
    Tick,
    apply,
    paper_fill,
    simulate_tick,
    violations,
)
from gridcore.dormant import has_open_orders, phase_of, watch_of

D = Decimal
CANDLES = ("data", "binance_BTCUSDT_1m_2024-12.csv")
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Ledger:
    """Books the RecordTrade commands on its own and checks the core's figures against them."""

    base: str
    quote: str
    holdings: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    profit: Decimal = Decimal(0)
    round_trips: int = 0
    placed: set[str] = field(default_factory=set)
    stop_reason: object = None  # why the bot stopped before the run's final Stop, if it did

    def feed(self, commands: list[Command] | tuple[Command, ...]) -> None:
        for command in commands:
            if isinstance(command, PlaceOrder):
                assert command.client_order_id not in self.placed, "a client order id was used twice"
                assert len(command.client_order_id) <= 36
                self.placed.add(command.client_order_id)
            elif isinstance(command, RecordTrade):
                self._book(command)

    def _book(self, trade: RecordTrade) -> None:
        qty, cost = self.holdings.get(trade.slot, (D(0), D(0)))
        base_fee = trade.fee if trade.fee_currency == self.base else D(0)
        quote_fee = trade.fee if trade.fee_currency == self.quote else D(0)
        with localcontext(prec=40):
            if trade.side is Side.BUY:
                assert trade.profit is None
                self.holdings[trade.slot] = (
                    qty + trade.qty - base_fee,
                    cost + trade.qty * trade.price + quote_fee,
                )
                return
            sold = trade.qty + base_fee
            assert sold <= qty, f"slot {trade.slot} sold {sold}, holding {qty}"
            share = cost if sold == qty else cost * sold / qty
            if share.as_tuple().exponent < -18:  # type: ignore[operator]
                share = share.quantize(D("1e-18"))
            expected = trade.qty * trade.price - quote_fee - share
        assert trade.profit == expected
        self.holdings[trade.slot] = (qty - sold, cost - share)
        self.profit += expected
        self.round_trips += 1

    def check(self, bot: GridBot, investment: Decimal) -> None:
        assert violations(bot, investment) == []
        assert bot.state.realized_profit == self.profit
        for slot in bot.state.slots:
            assert (slot.holding_qty, slot.holding_cost) == self.holdings.get(slot.index, (D(0), D(0)))
        check_dormant(bot)


def check_dormant(bot: GridBot) -> None:
    """What a driver reads off a snapshot without restoring it is what the restored bot says."""
    snapshot = bot.snapshot()
    restored = GridBot.restore(snapshot)
    cheap = watch_of(snapshot)
    assert cheap is None or cheap == restored.watch() == bot.watch()
    # It declines only where trailing's next level needs the machine.
    assert cheap is not None or bot.state.config.trailing_up
    assert phase_of(snapshot) is bot.state.phase
    assert has_open_orders(snapshot) == bool(bot.open_orders())


def run_steps(bot: GridBot, ledger: Ledger, steps: list[PaperStep], investment: Decimal) -> None:
    for step in steps:
        ledger.feed(step.commands)
    ledger.check(bot, investment)


def replay(bot: GridBot, steps: list[PaperStep]) -> None:
    """Feed the recorded events straight into a fresh bot: it must answer with the very same commands."""
    for step in steps:
        assert tuple(bot.handle(step.event)) == step.commands


# --- random price paths through the paper model -------------------------------------------------------


def _round(rules: MarketRules, price: Decimal, direction: Rounding) -> Decimal:
    return rules.round_price(max(price, D("0.01")), direction)


@st.composite
def paths(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, int, bool | None]], list[tuple[int, str]]]:
    start = draw(st.integers(min_value=-15, max_value=115))  # % of the way from lowerPrice to upperPrice
    moves = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=-300, max_value=300),  # last vs previous, basis points
                st.integers(min_value=0, max_value=150),  # wick above
                st.integers(min_value=0, max_value=150),  # wick below
                st.sampled_from([True, False, None]),
            ),
            min_size=1,
            max_size=60,
        )
    )
    interrupts = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=60), st.sampled_from(["restart", "more", "less", "tiny"])
            ),
            max_size=3,
        )
    )
    return start, moves, interrupts


AMOUNTS = {"upbit": {"base": D(10_000), "more": D(20_000), "less": D(6_000), "tiny": D(4_000)},
           "binance": {"base": D(20), "more": D(40), "less": D(10), "tiny": D(5)}}  # fmt: skip


def run_path(
    config: GridConfig,
    venue: str,
    stop_at_max: bool,
    path: tuple[int, list[tuple[int, int, int, bool | None]], list[tuple[int, str]]],
    restore_at: int | None = None,
    restore_each: bool = False,
) -> tuple[list[PaperStep], GridBot, Ledger]:
    rules, levels = config.rules, config.levels
    amounts = AMOUNTS[venue]
    start_pct, moves, interrupts = path
    price = _round(rules, levels[0] + (levels[-1] - levels[0]) * start_pct / 100, "nearest")
    bot = GridBot.new(config, amounts["base"], stop_at_max)
    ledger = Ledger(rules.base, rules.quote)
    investment = max(amounts.values()) * config.slot_count
    steps = apply(bot, Start(price))
    run_steps(bot, ledger, steps, investment)
    for n, (bps, wick_up, wick_down, closed_up) in enumerate(moves):
        if n == restore_at or restore_each:
            bot = GridBot.restore(bot.snapshot())
        for at, what in interrupts:
            if at != n:
                continue
            if what == "restart":
                more = apply(bot, Stop()) + apply(bot, Start(price))
            else:
                more = apply(bot, ConfigChanged(order_amount=amounts[what]))
            run_steps(bot, ledger, more, investment)
            steps += more
        last = _round(rules, price * (1 + D(bps) / 10_000), "nearest")
        high = _round(rules, max(price, last) * (1 + D(wick_up) / 10_000), "up")
        low = _round(rules, min(price, last) * (1 - D(wick_down) / 10_000), "down")
        more = simulate_tick(bot, Tick(last, high, low, closed_up))
        run_steps(bot, ledger, more, investment)
        if bot.state.triggered and (
            (stop_at_max and high >= config.upper_price)
            or (config.take_profit_price is not None and high >= config.take_profit_price)
            or (config.stop_loss_price is not None and low <= config.stop_loss_price)
        ):
            assert bot.state.phase is Phase.HALTED and bot.open_orders() == []
            assert bot.state.market_sell is None
        steps += more
        price = last
    ledger.stop_reason = None if bot.state.phase is Phase.RUNNING else bot.state.stop_reason
    more = apply(bot, Stop())
    run_steps(bot, ledger, more, investment)
    steps += more
    assert bot.open_orders() == []
    assert bot.state.status is Status.STOPPED
    return steps, bot, ledger


@settings(SETTINGS, max_examples=200)
@given(path=paths(), venue=st.sampled_from(["upbit", "binance"]), stop_at_max=st.booleans())
def test_random_paths_keep_every_invariant(
    upbit_config: GridConfig,
    binance_config: GridConfig,
    path: tuple[int, list[tuple[int, int, int, bool | None]], list[tuple[int, str]]],
    venue: str,
    stop_at_max: bool,
) -> None:
    config = upbit_config if venue == "upbit" else binance_config
    steps, _, ledger = run_path(config, venue, stop_at_max, path)
    event(f"round trips: {min(ledger.round_trips, 5)}+")
    # Same events, same commands: again through the paper model with a snapshot/restore half way, and
    # replayed event by event into a fresh bot.
    again, _, _ = run_path(config, venue, stop_at_max, path, restore_at=len(path[1]) // 2)
    assert again == steps
    replay(GridBot.new(config, AMOUNTS[venue]["base"], stop_at_max), steps)


# --- a random exchange: partial fills, redeliveries, races, outside cancels, rejections -----------------


MARKET_ACTIONS = ["market_fill", "market_fill", "market_reject"]
ACTIONS = ["tick", "fill", "fill", "fill", "redeliver", "confirm", "race", "outside_cancel", "reject", "stop",
           "start", "config"]  # fmt: skip


@settings(SETTINGS, max_examples=300)
@given(data=st.data(), venue=st.sampled_from(["upbit", "binance"]))
def test_a_random_exchange_keeps_every_invariant(
    upbit_config: GridConfig, binance_config: GridConfig, data: st.DataObject, venue: str
) -> None:
    random_exchange(upbit_config if venue == "upbit" else binance_config, venue, data)


@settings(SETTINGS, max_examples=300)
@given(data=st.data(), venue=st.sampled_from(["upbit", "binance"]))
def test_a_random_exchange_with_options_keeps_every_invariant(
    upbit_config: GridConfig, binance_config: GridConfig, data: st.DataObject, venue: str
) -> None:
    opts = data.draw(options(), "options")
    # Mostly no trigger here (a trigger far from the random ticks would leave nothing to trade), and
    # mostly selling on stop.
    opts["trigger"] = opts["trigger"] if data.draw(st.integers(0, 3), "trigger?") == 0 else None
    opts["sell"] = opts["sell"] or data.draw(st.integers(0, 3), "sell?") > 0
    config = with_options(upbit_config if venue == "upbit" else binance_config, opts)
    bot = random_exchange(config, venue, data, markets=True)
    event(f"market sells: {min(bot.state.market_seq, 3)}")


def random_exchange(config: GridConfig, venue: str, data: st.DataObject, markets: bool = False) -> GridBot:
    """Random events against the core: ticks, partial fills, redeliveries, races, cancels, rejections, stops,
    starts, config changes; with `markets`, the market sells of sell-base-on-stop filled in parts or refused."""
    rules, amounts = config.rules, AMOUNTS[venue]
    investment = max(amounts.values()) * config.slot_count
    price = _round(rules, (config.levels[0] + config.levels[-1]) / 2, "nearest")
    bot = GridBot.new(config, amounts["base"], data.draw(st.booleans(), label="stop_at_max"))
    ledger = Ledger(rules.base, rules.quote)
    pending: set[str] = set()
    fills: list[OrderFilled] = []
    counter = 0

    def feed(event: Event) -> list[Command]:
        commands = bot.handle(event)
        if not markets:
            assert not any(isinstance(c, SellMarket) for c in commands)
        ledger.feed(commands)
        pending.update(c.client_order_id for c in commands if isinstance(c, CancelOrder))
        pending.intersection_update(o.client_order_id for _, o in bot.open_orders())
        ledger.check(bot, investment)
        return commands

    def pick(cids: list[str]) -> str | None:
        return data.draw(st.sampled_from(sorted(cids)), label="order") if cids else None

    feed(Start(price))
    for _ in range(data.draw(st.integers(min_value=5, max_value=50), label="length")):
        action = data.draw(st.sampled_from(ACTIONS + (MARKET_ACTIONS if markets else [])), label="action")
        open_ids = [o.client_order_id for _, o in bot.open_orders()]
        market = bot.state.market_sell
        if action.startswith("market"):
            if market is None:
                continue
            counter += 1
            if action == "market_reject":
                feed(OrderRejected(market.client_order_id, "insufficient balance"))
                continue
            share = data.draw(st.sampled_from([1, 2, 3]), label="share")
            qty = rules.floor_qty(market.remaining_qty / share) or market.remaining_qty
            final = qty == market.remaining_qty
            fee = (qty * market.price * rules.taker_fee).quantize(D("1e-12"))
            fill = OrderFilled(
                market.client_order_id, qty, market.price, fee, rules.quote, f"x{counter}", final
            )
            fills.append(fill)
            event("market sell filled" if final else "market sell filled in part")
            feed(fill)
            continue
        if action == "tick":
            bps = data.draw(st.integers(min_value=-400, max_value=400), label="bps")
            last = _round(rules, price * (1 + D(bps) / 10_000), "nearest")
            feed(Tick(last, max(last, price), min(last, price)))
            price = last
        elif action in ("fill", "race"):
            cid = pick(open_ids if action == "fill" else sorted(pending))
            if cid is None:
                continue
            found = bot.open_order(cid)
            assert found is not None
            slot, order = found
            share = data.draw(st.sampled_from([1, 2, 3]), label="share")
            qty = rules.floor_qty(order.remaining_qty / share) or order.remaining_qty
            full = paper_fill(bot, slot)
            counter += 1
            fee = (full.fee * qty / full.qty).quantize(D("1e-12")) if full.qty else D(0)
            fill = OrderFilled(
                cid, qty, order.price, fee, full.fee_currency, f"x{counter}", qty == order.remaining_qty
            )
            fills.append(fill)
            event("race won by a fill" if action == "race" else "fill")
            feed(fill)
        elif action == "redeliver":
            if fills:
                assert feed(data.draw(st.sampled_from(fills), label="again")) == []
        elif action == "confirm":
            cid = pick(sorted(pending))
            if cid is not None:
                feed(OrderCanceled(cid))
        elif action == "outside_cancel":
            cid = pick([c for c in open_ids if c not in pending])
            if cid is not None:
                feed(OrderCanceled(cid))
        elif action == "reject":
            cid = pick([c for c in open_ids if c not in pending])
            if cid is not None:
                feed(OrderRejected(cid, "insufficient balance"))
                assert bot.state.status is Status.ERROR or bot.state.phase is not Phase.RUNNING
        elif action == "stop":
            feed(Stop())
        elif action == "start":
            feed(Start(price))
        else:
            amount = data.draw(st.sampled_from(sorted(amounts.values())), label="amount")
            feed(ConfigChanged(order_amount=amount, stop_at_max=data.draw(st.booleans(), label="sam")))
    feed(Stop())
    for cid in sorted(pending):
        feed(OrderCanceled(cid))
    while (market := bot.state.market_sell) is not None:
        assert markets
        if data.draw(st.integers(0, 3), label="end market") == 0:
            feed(OrderCanceled(market.client_order_id))
            continue
        counter += 1
        final = data.draw(st.booleans(), label="whole")
        qty = (
            market.remaining_qty
            if final
            else rules.floor_qty(market.remaining_qty / 2) or market.remaining_qty
        )
        fee = (qty * market.price * rules.taker_fee).quantize(D("1e-12"))
        event("market sell filled at the end")
        feed(OrderFilled(market.client_order_id, qty, market.price, fee, rules.quote, f"x{counter}", final))
    assert bot.open_orders() == []
    assert bot.state.phase is Phase.HALTED and bot.state.status is Status.STOPPED
    event(f"round trips: {min(ledger.round_trips, 3)}+")
    return bot


# --- the real December 2024 BTC/USDT minutes ------------------------------------------------------------


def _candles(start: int, count: int) -> list[tuple[Decimal, Decimal, Decimal, Decimal]]:
    with shared_file(*CANDLES).open() as handle:
        rows = list(csv.DictReader(handle))[start : start + count]
    return [(D(r["open"]), D(r["high"]), D(r["low"]), D(r["close"])) for r in rows]


def _run_candles(
    config: GridConfig,
    amount: Decimal,
    candles: list[tuple[Decimal, Decimal, Decimal, Decimal]],
    stop_at_max: bool,
) -> tuple[GridBot, Ledger, list[PaperStep]]:
    bot = GridBot.new(config, amount, stop_at_max)
    ledger = Ledger(config.rules.base, config.rules.quote)
    investment = amount * config.slot_count
    steps = apply(bot, Start(candles[0][0]))
    run_steps(bot, ledger, steps, investment)
    for open_, high, low, close in candles:
        # Tick(closed_up) and open_price follow the simulator's candle path: rising (close >= open) low first.
        more = simulate_tick(bot, Tick(close, high, low, close >= open_), open_price=open_)
        run_steps(bot, ledger, more, investment)
        steps += more
    more = apply(bot, Stop())
    run_steps(bot, ledger, more, investment)
    steps += more
    assert bot.open_orders() == [] and bot.state.status is Status.STOPPED
    return bot, ledger, steps


def _config(
    rules: MarketRules, lower: Decimal, upper: Decimal, pct: str, amount: Decimal, top: Decimal
) -> GridConfig:
    plan = plan_grid(lower, upper, D(pct), amount, rules)
    return GridConfig(bot_id="candles", levels=plan.levels, upper_price=top, rules=rules)


def test_real_candles_binance(binance: MarketRules) -> None:
    candles = _candles(0, 8000)
    lower = min(c[2] for c in candles).to_integral_value(rounding=ROUND_FLOOR) * D("0.99")
    upper = max(c[1] for c in candles).to_integral_value(rounding=ROUND_CEILING) * D("1.01")
    config = _config(binance, lower, upper, "0.25", D(25), upper)
    bot, ledger, steps = _run_candles(config, D(25), candles, stop_at_max=False)
    assert ledger.round_trips >= 100
    assert bot.state.realized_profit > 0
    _, _, again = _run_candles(config, D(25), candles, stop_at_max=False)
    assert again == steps


DIRECTIONS: tuple[Rounding, ...] = ("nearest", "up", "down", "nearest")


def test_real_candles_upbit_with_stop_at_max(upbit: MarketRules) -> None:
    # The simulator's KRW markets follow the USDT ones at 1,400 KRW per USDT, on Upbit's price units.
    krw = [
        tuple(upbit.round_price(p * 1400, d) for p, d in zip(c, DIRECTIONS, strict=True))
        for c in _candles(10_000, 2500)
    ]
    candles = [(o, max(h, o, c), min(low, o, c), c) for o, h, low, c in krw]
    lower = min(c[2] for c in candles) * D("0.99")
    top = max(c[1] for c in candles)
    reach = max(c[1] for c in candles[: len(candles) // 2])  # reached in the first half: the bot stops there
    config = _config(upbit, lower, top * D("1.01"), "0.3", D(10_000), reach)
    _, ledger, steps = _run_candles(config, D(10_000), candles, stop_at_max=True)
    stopped_at = next(i for i, s in enumerate(steps) if isinstance(s.event, Tick) and s.event.high >= reach)
    assert all(not isinstance(c, PlaceOrder) for s in steps[stopped_at + 1 :] for c in s.commands)
    assert ledger.round_trips > 0
    replay(GridBot.new(config, D(10_000), True), steps)


# --- the grid options: trigger, take-profit, stop-loss, sell base on stop, trailing up ---------------------


@st.composite
def options(draw: st.DrawFn) -> dict[str, object]:
    """Grid options as % of the grid's range (None: off); at least one option is on."""
    return {
        "trigger": draw(st.one_of(st.none(), st.integers(min_value=-10, max_value=110))),
        "take_profit": draw(st.one_of(st.none(), st.integers(min_value=1, max_value=10))),
        "stop_loss": draw(st.one_of(st.none(), st.integers(min_value=1, max_value=10))),
        "sell": draw(st.booleans()),
        "trailing": draw(st.booleans()),
        "limit": draw(st.one_of(st.none(), st.integers(min_value=0, max_value=60))),
        "arithmetic": draw(st.booleans()),
    }


def with_options(config: GridConfig, opts: dict[str, object]) -> GridConfig:
    rules, lower, upper = config.rules, config.levels[0], config.levels[-1]
    span = upper - lower

    def at(pct: object) -> Decimal | None:
        return None if pct is None else _round(rules, lower + span * D(pct) / 100, "nearest")  # type: ignore[arg-type]

    return dataclasses.replace(
        config,
        trigger_price=at(opts["trigger"]),
        take_profit_price=None if opts["take_profit"] is None else at(100 + opts["take_profit"]),  # type: ignore[operator]
        stop_loss_price=None if opts["stop_loss"] is None else at(-opts["stop_loss"]),  # type: ignore[operator]
        sell_base_on_stop=bool(opts["sell"]),
        trailing_up=bool(opts["trailing"]),
        trailing_up_limit=None if opts["limit"] is None else at(100 + opts["limit"]),  # type: ignore[operator]
        kind="arithmetic" if opts["arithmetic"] else "geometric",
    )


@settings(SETTINGS, max_examples=200)
@given(path=paths(), venue=st.sampled_from(["upbit", "binance"]), stop_at_max=st.booleans(), opts=options())
def test_random_paths_with_options_keep_every_invariant(
    upbit_config: GridConfig,
    binance_config: GridConfig,
    path: tuple[int, list[tuple[int, int, int, bool | None]], list[tuple[int, str]]],
    venue: str,
    stop_at_max: bool,
    opts: dict[str, object],
) -> None:
    config = with_options(upbit_config if venue == "upbit" else binance_config, opts)
    steps, bot, ledger = run_path(config, venue, stop_at_max, path)
    event(f"round trips: {min(ledger.round_trips, 5)}+")
    event(f"stop: {ledger.stop_reason}")
    event(f"trailed: {min(len(bot.state.added_levels), 3)}")
    event(f"market sells: {min(bot.state.market_seq, 2)}")
    if config.sell_base_on_stop:
        # Every stop sold what could be sold: what is left is below one lot or the exchange minimum.
        held = config.rules.floor_qty(sum((s.holding_qty for s in bot.state.slots), D(0)))
        assert held == 0 or not config.rules.meets_minimum(bot.state.last_price or D(1), held)
    again, _, _ = run_path(config, venue, stop_at_max, path, restore_each=True)
    assert again == steps
    replay(GridBot.new(config, AMOUNTS[venue]["base"], stop_at_max), steps)


@settings(SETTINGS, max_examples=20)
@given(
    start=st.integers(min_value=0, max_value=40_000),
    opts=options(),
    stop_at_max=st.booleans(),
)
def test_real_candle_windows_with_options(
    binance: MarketRules, start: int, opts: dict[str, object], stop_at_max: bool
) -> None:
    candles = _candles(start, 1500)
    lower = min(c[2] for c in candles[:300])
    upper = max(c[1] for c in candles[:300])
    if upper <= lower * D("1.002"):
        upper = lower * D("1.01")
    config = with_options(_config(binance, lower, upper, "0.1", D(25), upper), opts)
    bot, _, steps = _run_candles(config, D(25), candles, stop_at_max)
    final = max(i for i, step in enumerate(steps) if isinstance(step.event, Stop))
    early = any(
        isinstance(c, SetStatus) and c.status is Status.STOPPED
        for step in steps[:final]
        for c in step.commands
    )
    event(f"stopped before the end: {early}")
    event(f"market sells: {sum(isinstance(c, SellMarket) for step in steps for c in step.commands)}")
    event(f"trailed: {min(len(bot.state.added_levels), 3)}")
    _, _, again = _run_candles(config, D(25), candles, stop_at_max)
    assert again == steps


@st.composite
def rising_paths(
    draw: st.DrawFn,
) -> tuple[int, list[tuple[int, int, int, bool | None]], list[tuple[int, str]]]:
    start = draw(st.integers(min_value=70, max_value=110))
    moves = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=-150, max_value=400),
                st.integers(min_value=0, max_value=150),
                st.integers(min_value=0, max_value=150),
                st.sampled_from([True, False, None]),
            ),
            min_size=5,
            max_size=60,
        )
    )
    return start, moves, []


@settings(SETTINGS, max_examples=150)
@given(path=rising_paths(), venue=st.sampled_from(["upbit", "binance"]), opts=options())
def test_trailing_up_keeps_every_invariant(
    upbit_config: GridConfig,
    binance_config: GridConfig,
    path: tuple[int, list[tuple[int, int, int, bool | None]], list[tuple[int, str]]],
    venue: str,
    opts: dict[str, object],
) -> None:
    opts = {**opts, "trailing": True, "take_profit": None if opts["take_profit"] is None else 40}
    config = with_options(upbit_config if venue == "upbit" else binance_config, opts)
    steps, bot, _ = run_path(config, venue, False, path)
    trailed = len(bot.state.added_levels)
    event(f"trailed: {min(trailed, 5)}")
    assert len(bot.state.slots) == config.slot_count + trailed
    levels = bot.state.all_levels()
    assert all(a < b for a, b in pairwise(levels))
    assert all(config.rules.is_valid_price(level) for level in bot.state.added_levels)
    if config.trailing_up_limit is not None:
        assert all(level <= config.trailing_up_limit for level in bot.state.added_levels)
    again, _, _ = run_path(config, venue, False, path, restore_each=True)
    assert again == steps
