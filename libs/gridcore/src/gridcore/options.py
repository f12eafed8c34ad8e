"""The grid options' pure rules (API.md "Grid options"): where a tick stops the bot, where trailing puts the
next level, how a market sell's fill is shared among the slots whose base it sold. The machine applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Literal

from gridcore.state import ZERO, GridConfig, Slot, StopReason

StopEnd = Literal["high", "low"]
# The machine's arithmetic context: every decimal operation of the core runs in it.
CTX = Context(prec=40, traps=[InvalidOperation, DivisionByZero, Overflow])
# Money columns are NUMERIC(38, 18): a cost share (the one inexact division) is rounded to 18 decimals so
# what is stored adds up to exactly what the core added up.
MONEY_QUANTUM = Decimal("1e-18")


def money(value: Decimal) -> Decimal:
    """Rounded to 18 decimals when finer (money columns are NUMERIC(38, 18))."""
    exponent = value.as_tuple().exponent
    return value.quantize(MONEY_QUANTUM) if isinstance(exponent, int) and exponent < -18 else value


def take_cost(slot: Slot, base_out: Decimal) -> Decimal:
    """Take `base_out` base out of the slot's holdings; its cost (the held cost's share, all of it when
    that empties the holdings). Callers run in the machine's context."""
    if base_out >= slot.holding_qty:
        cost = slot.holding_cost
        slot.holding_qty, slot.holding_cost = ZERO, ZERO
    else:
        cost = money(slot.holding_cost * base_out / slot.holding_qty)
        slot.holding_qty -= base_out
        slot.holding_cost -= cost
    return cost


def stop_hit(
    config: GridConfig, stop_at_max: bool, low: Decimal, high: Decimal, closed_up: bool | None
) -> tuple[StopReason, StopEnd] | None:
    """The stop a tick (or a start price: low = high) reaches, and at which end of its path; None if none.

    On the way up the lower of upperPrice (stopAtMax) and takeProfitPrice is met first (a tie: stopAtMax);
    when the tick reaches both a high stop and stopLossPrice, the end its path visits first wins: the low
    when it closed up (the paper path's order), else the high.
    """
    at_high: tuple[StopReason, Decimal] | None = None
    if stop_at_max and high >= config.upper_price:
        at_high = (StopReason.STOP_AT_MAX, config.upper_price)
    take = config.take_profit_price
    if take is not None and high >= take and (at_high is None or take < at_high[1]):
        at_high = (StopReason.TAKE_PROFIT, take)
    loss = config.stop_loss_price
    at_low = loss is not None and low <= loss
    if at_low and (at_high is None or closed_up is True):
        return StopReason.STOP_LOSS, "low"
    return None if at_high is None else (at_high[0], "high")


def trail_step(config: GridConfig) -> Decimal:
    """The step trailing extends the grid by: the ratio of a geometric grid, the difference of an arithmetic
    one, from the configured first and last levels (so added levels never drift with rounding)."""
    first, last, count = config.levels[0], config.levels[-1], len(config.levels) - 1
    if config.kind == "geometric":
        return (last / first) ** (Decimal(1) / count)
    return (last - first) / count


def next_level(config: GridConfig, step: Decimal, top: Decimal) -> Decimal | None:
    """The level one step above `top` on the exchange's price grid; None beyond trailingUpLimit (or the
    exchange's maximum price)."""
    rules = config.rules
    raw = top * step if config.kind == "geometric" else top + step
    level = rules.round_price(raw, "nearest")
    if level <= top:  # a step finer than the tick: one tick up
        level = rules.round_price(top + rules.tick_at(top), "up")
    limit = config.trailing_up_limit
    if (limit is not None and level > limit) or (rules.max_price is not None and level > rules.max_price):
        return None
    return level


def share_fill(slots: Sequence[Slot], qty: Decimal, fee: Decimal) -> list[tuple[Slot, Decimal, Decimal]]:
    """(slot, qty, fee) shares of a market sell's fill: the slots' holdings taken lowest slot first, the fee
    in proportion to quantity (the last share takes the rounding, so the shares add up exactly); base
    beyond what the slots hold (an exchange overfill) is put on the last share."""
    shares: list[tuple[Slot, Decimal]] = []
    remaining = qty
    for slot in slots:
        if remaining <= 0:
            break
        if slot.holding_qty > 0:
            take = min(remaining, slot.holding_qty)
            shares.append((slot, take))
            remaining -= take
    if not shares:
        return []
    if remaining > 0:
        last_slot, last_take = shares[-1]
        shares[-1] = (last_slot, last_take + remaining)
    out: list[tuple[Slot, Decimal, Decimal]] = []
    fee_left = fee
    for n, (slot, take) in enumerate(shares):
        part = fee_left if n == len(shares) - 1 else money(fee * take / qty)
        fee_left -= part
        out.append((slot, take, part))
    return out
