"""Grid recommendations: a sweep of ranges and steps around recent prices, ranked by realised profit.

Ranges come from the window's own distribution of closes (its full range and its central 90/80/60 %),
widened to contain the last price, so they follow the market's recent volatility; steps start at 3.75× the fee
(a round trip must clear both fees with room to spare) and grow. Every candidate is planned exactly as
`POST /bots` plans a grid (tick-rounded prices, the exchange's minimum order), so each one a client is shown
can be created as it stands. A plain sweep of a few dozen candidates answers well within the time a request
has; an optimiser (optuna) would pay off only with many more dimensions than range × step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from common.errors import AppError
from common.grid import GridKind, GridPlan, MarketRules, plan_grid

# Central shares of the window's closes the ranges span (1 = from its lowest to its highest close).
RANGE_SHARES = (Decimal(1), Decimal("0.9"), Decimal("0.8"), Decimal("0.6"))
# Steps as multiples of the smallest one (2.5 × the fee, as a percentage). Not the smallest itself: a round
# trip there nets a quarter of a fee, and its many fills made it the sweep's most expensive candidate.
STEP_MULTIPLES = (Decimal("1.5"), Decimal(2), Decimal(3), Decimal(4), Decimal(6))
MIN_STEP_PERCENT = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One configuration to try: what `POST /bots` would be sent, and the grid it plans."""

    lower: Decimal
    upper: Decimal
    pct: Decimal
    order_amount: Decimal
    kind: GridKind
    plan: GridPlan


def _quantile(ordered: Sequence[Decimal], share: Decimal) -> Decimal:
    index = int((share * (len(ordered) - 1)).to_integral_value(ROUND_FLOOR))
    return ordered[max(0, min(index, len(ordered) - 1))]


def _amount_step(rules: MarketRules) -> Decimal:
    # Whole KRW on Upbit, cents elsewhere: what a person would type as an order amount.
    return Decimal(1) if rules.quote == "KRW" else Decimal("0.01")


def candidates(
    closes: Sequence[Decimal], rules: MarketRules, investment: Decimal, kind: GridKind
) -> list[Candidate]:
    """The configurations to sweep (each already planned and valid on the exchange's rules)."""
    if not closes:
        return []
    ordered = sorted(closes)
    last = closes[-1]
    fee_percent = rules.maker_fee * 100
    smallest = max(MIN_STEP_PERCENT, (fee_percent * Decimal("2.5")).quantize(Decimal("0.01")))
    steps = [(smallest * m).quantize(Decimal("0.01")) for m in STEP_MULTIPLES]
    found: dict[tuple[Decimal, Decimal, Decimal], Candidate] = {}
    for share in RANGE_SHARES:
        tail = (1 - share) / 2
        low = min(_quantile(ordered, tail), last)
        high = max(_quantile(ordered, 1 - tail), last)
        lower = rules.round_price(low, "down")
        upper = rules.round_price(high, "up")
        if not 0 < lower < upper:
            continue
        for pct in steps:
            candidate = _planned(lower, upper, pct, investment, rules, kind)
            if candidate is not None:
                found.setdefault((candidate.lower, candidate.upper, candidate.pct), candidate)
    return list(found.values())


def _planned(
    lower: Decimal, upper: Decimal, pct: Decimal, investment: Decimal, rules: MarketRules, kind: GridKind
) -> Candidate | None:
    try:
        count = plan_grid(lower, upper, pct, investment, rules, kind).grid_count
    except AppError:
        return None
    amount = (investment / count).quantize(_amount_step(rules), ROUND_FLOOR)
    if amount <= 0:
        return None
    try:
        plan = plan_grid(lower, upper, pct, amount, rules, kind)
    except AppError:
        return None  # too little per grid for the exchange's minimum order, or a range too narrow
    return Candidate(lower, upper, pct, amount, kind, plan)
