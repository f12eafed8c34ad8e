"""Grid geometry (API.md "② Bots"): slot count, level prices on the exchange's tick grid, validation.

gridCount = floor(ln(upper/lower) / ln(1 + pct/100)), exact at exact powers (100→121 at 10 % is 2);
levels i = 0..gridCount, geometric lower·(upper/lower)^(i/gridCount) or arithmetic
lower + i·(upper − lower)/gridCount, each rounded to the exchange's price grid; a level that rounds onto
its neighbour is dropped, so the reported gridCount (len(levels) − 1) counts the slots that remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from fractions import Fraction
from itertools import pairwise
from typing import Any, Literal

from common.errors import AppError, ErrorCode
from common.grid.rules import MarketRules

MAX_GRID_COUNT = 200
GridKind = Literal["geometric", "arithmetic"]

# ln() at 60 digits is off by far less than any real count's distance from an integer; only exact powers
# sit on an integer, and those are settled with exact rational arithmetic below.
_CTX = Context(prec=60)
# The exact check only matters where it can change a verdict: counts up to just past MAX_GRID_COUNT, and
# inputs short enough that step^count stays cheap (a 100,000-digit percentage would cost minutes).
_EXACT_CHECK_LIMIT = MAX_GRID_COUNT + 1
_EXACT_CHECK_DIGITS = 1000


class GridError(AppError):
    """A grid API.md refuses; `code` is INVALID_PRICE_RANGE or INVALID_ORDER_AMOUNT, `details` says why."""

    def __init__(self, code: ErrorCode, reason: str, **details: Any) -> None:
        super().__init__(code, {"reason": reason, **details})
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code.value}: {self.reason}"


def _range_error(reason: str, **details: Any) -> GridError:
    return GridError(ErrorCode.INVALID_PRICE_RANGE, reason, **details)


def _check_range(lower: Decimal, upper: Decimal) -> None:
    if not (lower.is_finite() and upper.is_finite()):
        raise _range_error("prices must be finite numbers")
    if not 0 < lower < upper:
        raise _range_error("0 < lowerPrice < upperPrice is required")


def grid_count(lower: Decimal, upper: Decimal, pct: Decimal) -> int:
    """floor(ln(upper/lower) / ln(1 + pct/100)): how many pct steps fit in the range (exact at exact powers)."""
    _check_range(lower, upper)
    if not pct.is_finite() or pct <= 0:
        raise _range_error("priceChangePercent must be positive")
    with localcontext(_CTX):
        estimate = (upper / lower).ln() / (1 + pct / 100).ln()
        count = int(estimate.to_integral_value(rounding=ROUND_FLOOR))
    if (
        count > _EXACT_CHECK_LIMIT
        or max(len(d.as_tuple().digits) for d in (lower, upper, pct)) > _EXACT_CHECK_DIGITS
    ):
        return count
    ratio = Fraction(upper) / Fraction(lower)
    step = 1 + Fraction(pct) / 100
    # The count is the largest k with step^k <= ratio; the estimate is at most one off, and only at powers.
    while count > 0 and step**count > ratio:
        count -= 1
    while step ** (count + 1) <= ratio:
        count += 1
    return count


def _check_count(count: int) -> None:
    if count < 1:
        raise _range_error("the range holds no full price step (gridCount < 1)", gridCount=count)
    if count > MAX_GRID_COUNT:
        raise _range_error("too many grid levels", gridCount=count, max=MAX_GRID_COUNT)


def levels(
    lower: Decimal,
    upper: Decimal,
    count: int,
    kind: GridKind = "geometric",
    *,
    rules: MarketRules,
) -> list[Decimal]:
    """The grid's level prices L0 < … < Ln on the exchange's price grid (colliding levels dropped).

    Rounding: L0 up and Ln down, so no level leaves the user's range; interior levels to the nearest valid
    price (ties up), which moves each level by at most half a tick in either direction and so distorts no
    step systematically (flooring everything would shift every buy and sell alike but bias the band's
    ends). Interior levels are then clamped into [L0, Ln]; rounding and clamping are monotonic, so the
    result is non-decreasing and dropping equal neighbours leaves it strictly increasing.
    """
    _check_range(lower, upper)
    _check_count(count)
    if kind not in ("geometric", "arithmetic"):
        raise ValueError(f"unknown grid kind {kind!r}")
    first = rules.round_price(lower, "up")
    last = rules.round_price(upper, "down")
    if last <= 0 or first >= last:
        raise _range_error("the range is narrower than one price tick")
    if rules.min_price is not None and first < rules.min_price:
        raise _range_error("lowerPrice is below the exchange's minimum price", minPrice=rules.min_price)
    if rules.max_price is not None and last > rules.max_price:
        raise _range_error("upperPrice is above the exchange's maximum price", maxPrice=rules.max_price)
    result = [first]
    with localcontext(_CTX):
        ratio = upper / lower
        span = upper - lower
        for i in range(1, count):
            raw = lower * ratio ** (Decimal(i) / count) if kind == "geometric" else lower + span * i / count
            price = min(max(rules.round_price(raw, "nearest"), first), last)
            if price > result[-1]:
                result.append(price)
    if last > result[-1]:
        result.append(last)
    return result


def validate_order_amount(order_amount: Decimal, grid_levels: Sequence[Decimal], rules: MarketRules) -> None:
    """Refuse (INVALID_ORDER_AMOUNT) an amount whose buy or follow-up sell misses a minimum at any level."""
    if not order_amount.is_finite() or order_amount <= 0:
        raise GridError(ErrorCode.INVALID_ORDER_AMOUNT, "orderAmount must be positive")
    if order_amount < rules.min_notional:
        raise GridError(
            ErrorCode.INVALID_ORDER_AMOUNT,
            "orderAmount is below the exchange's minimum order",
            minimum=rules.min_notional,
            currency=rules.quote,
        )
    # Lot rounding (and a base-asset fee) shrink quantities unevenly, so every level is checked, both legs.
    for buy_price, sell_price in pairwise(grid_levels):
        qty = rules.buy_qty(order_amount, buy_price)
        if not rules.meets_minimum(buy_price, qty):
            raise GridError(
                ErrorCode.INVALID_ORDER_AMOUNT,
                "the buy at a grid level would be below the exchange's minimum order",
                price=buy_price,
                qty=qty,
                minQty=rules.min_qty,
                minNotional=rules.min_notional,
                currency=rules.quote,
            )
        sell_qty = rules.sell_qty_after_buy(qty)
        if not rules.meets_minimum(sell_price, sell_qty):
            raise GridError(
                ErrorCode.INVALID_ORDER_AMOUNT,
                "the sell after a grid buy would be below the exchange's minimum order",
                price=sell_price,
                qty=sell_qty,
                minQty=rules.min_qty,
                minNotional=rules.min_notional,
                currency=rules.quote,
            )


def investment_amount(count: int, order_amount: Decimal) -> Decimal:
    """investmentAmount = gridCount × orderAmount."""
    return count * order_amount


@dataclass(frozen=True, slots=True)
class GridPlan:
    """A validated grid: its level prices and the figures API.md reports for it."""

    levels: tuple[Decimal, ...]
    kind: GridKind
    order_amount: Decimal
    formula_count: int

    @property
    def grid_count(self) -> int:
        """The slots that remain after colliding levels were dropped (len(levels) − 1)."""
        return len(self.levels) - 1

    @property
    def investment_amount(self) -> Decimal:
        """gridCount × orderAmount."""
        return investment_amount(self.grid_count, self.order_amount)


def plan_grid(
    lower: Decimal,
    upper: Decimal,
    pct: Decimal,
    order_amount: Decimal,
    rules: MarketRules,
    kind: GridKind = "geometric",
) -> GridPlan:
    """Validate a bot's grid as API.md does and build it: count, levels, order amount against minimums."""
    count = grid_count(lower, upper, pct)
    _check_count(count)
    grid = levels(lower, upper, count, kind, rules=rules)
    validate_order_amount(order_amount, grid, rules)
    return GridPlan(levels=tuple(grid), kind=kind, order_amount=order_amount, formula_count=count)
