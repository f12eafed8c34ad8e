"""Paper fill model (pure): which open orders a tick fills, in which order, at what price and fee.

Path: a tick's prices between two updates are unknown. The model walks open → low → high → last when the
tick closed up and open → high → low → last when it closed down (ARCHITECTURE.md; the simulator replays
candles the same way); with direction unknown (`closed_up` None) the price rising over the tick counts as
up and anything else as down, because high-first is the cautious guess: sells come before buys, so no buy
can be followed by its own sell in that tick.

Fills: on a falling leg every open buy priced at or above the leg's end fills (highest first), on a rising
leg every open sell priced at or below its end (lowest first); a touch fills. Each fill is whole, at the
order's own price, with the maker fee, in the currency the exchange charges (Binance: a buy's fee in base).
Orders a fill creates join in from the next leg on, never the leg that created them, so a buy filled on
the way down to the low may see its sell filled on the way up to the high only when the low came first.
Idle slots arm from the Tick event, which is applied after the path: an order armed in a tick cannot fill
in that same tick. With stopAtMax and a high at upperPrice the walk ends at the high and the Tick stops
the bot: what the path would have filled after the high is not filled; likewise at the high for a
take-profit and at the low for a stop-loss (`GridBot.stop_point`). A market sell (sell base on stop)
fills whole at the price the core last saw, with the taker fee in quote (a market order takes liquidity).

Caveats (optimistic): a touch at exactly the order's price fills it whatever its place in the queue, and
a marketable order fills at its limit price with the maker fee (a real one would fill as taker at a price
at least as good).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

from gridcore.commands import CancelOrder, Command, SellMarket
from gridcore.events import Event, OrderCanceled, OrderFilled, Tick
from gridcore.machine import GridBot
from gridcore.state import Side

_CTX = Context(prec=40)


@dataclass(frozen=True, slots=True)
class PaperStep:
    """One event applied to the bot and the commands it returned."""

    event: Event
    commands: tuple[Command, ...]


def tick_path(open_price: Decimal, tick: Tick) -> tuple[Decimal, Decimal, Decimal]:
    """The waypoints the model assumes after `open_price`: (low, high, last) up, (high, low, last) down."""
    closed_up = tick.closed_up if tick.closed_up is not None else tick.last > open_price
    return (tick.low, tick.high, tick.last) if closed_up else (tick.high, tick.low, tick.last)


def paper_fill(bot: GridBot, slot: int) -> OrderFilled:
    """The whole remaining quantity of the slot's open order filled at its price with the maker fee."""
    order = bot.state.slots[slot].order
    if order is None:
        raise ValueError(f"slot {slot} has no open order")
    rules = bot.state.config.rules
    qty = order.remaining_qty
    with localcontext(_CTX):
        if order.side is Side.BUY and rules.buy_fee_in_base:
            fee, currency = qty * rules.maker_fee, rules.base
        else:
            fee, currency = qty * order.price * rules.maker_fee, rules.quote
    return OrderFilled(
        client_order_id=order.client_order_id,
        qty=qty,
        price=order.price,
        fee=fee,
        fee_currency=currency,
        fill_id=f"{order.client_order_id}:p{len(order.fill_ids) + 1}",
        is_final=True,
    )


def market_fill(bot: GridBot, command: SellMarket, price: Decimal) -> OrderFilled:
    """A market sell filled whole at `price` (the tick's) with the taker fee, charged in quote."""
    rules = bot.state.config.rules
    with localcontext(_CTX):
        fee = command.qty * price * rules.taker_fee
    return OrderFilled(
        client_order_id=command.client_order_id,
        qty=command.qty,
        price=price,
        fee=fee,
        fee_currency=rules.quote,
        fill_id=f"{command.client_order_id}:p1",
        is_final=True,
    )


def apply(bot: GridBot, event: Event) -> list[PaperStep]:
    """Apply an event; a paper exchange confirms every cancel it asks for at once, and fills a market sell
    at the last price the core saw (the tick's or the start's)."""
    commands = bot.handle(event)
    steps = [PaperStep(event, tuple(commands))]
    for command in commands:
        if isinstance(command, CancelOrder):
            steps.extend(apply(bot, OrderCanceled(command.client_order_id)))
        elif isinstance(command, SellMarket):
            steps.extend(apply(bot, market_fill(bot, command, command.price)))
    return steps


def simulate_tick(bot: GridBot, tick: Tick, open_price: Decimal | None = None) -> list[PaperStep]:
    """Fill what the tick's assumed path crosses, in path order, then apply the Tick itself."""
    state = bot.state
    previous = open_price or state.last_price or tick.last
    # A stop (stopAtMax, take-profit, stop-loss) ends the walk where the core stops.
    end = bot.stop_point(tick.low, tick.high, tick.closed_up)
    stop_at = None if end is None else tick.high if end == "high" else tick.low
    steps: list[PaperStep] = []
    for point in tick_path(previous, tick):
        if point < previous:
            for slot in bot.buys_at_or_above(point):
                steps.extend(_fill_if_open(bot, slot, Side.BUY))
        elif point > previous:
            for slot in bot.sells_at_or_below(point):
                steps.extend(_fill_if_open(bot, slot, Side.SELL))
        previous = point
        if point == stop_at:
            break
    steps.extend(apply(bot, tick))
    return steps


def _fill_if_open(bot: GridBot, slot: int, side: Side) -> list[PaperStep]:
    # An earlier fill of this leg may have failed the bot and had every order canceled.
    order = bot.state.slots[slot].order
    if order is None or order.side is not side:
        return []
    return apply(bot, paper_fill(bot, slot))


def crossed_fills(bot: GridBot, tick: Tick, filled: set[str]) -> list[OrderFilled]:
    """The fills of the bot's resting orders that the tick's path reaches, in path order.

    The engine's paper broker and the backtest alike: buys at or above the low, sells at or below the high,
    the low's leg first when the tick closed up; orders in `filled` (detected, not yet applied) are skipped;
    with stopAtMax and a high at upperPrice nothing after the sells' leg fills.
    """
    state = bot.state
    end = bot.stop_point(tick.low, tick.high, tick.closed_up)
    legs: tuple[tuple[Side, Decimal], ...] = (
        ((Side.BUY, tick.low), (Side.SELL, tick.high))
        if tick.closed_up
        else ((Side.SELL, tick.high), (Side.BUY, tick.low))
    )
    fills: list[OrderFilled] = []
    for side, point in legs:
        slots = bot.buys_at_or_above(point) if side is Side.BUY else bot.sells_at_or_below(point)
        for slot in slots:
            order = state.slots[slot].order
            if order is None or order.client_order_id in filled:
                continue
            fills.append(paper_fill(bot, slot))
        if (end == "high" and side is Side.SELL) or (end == "low" and side is Side.BUY):
            break
    return fills
