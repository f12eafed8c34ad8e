"""Grid geometry and exchange rounding, shared by the bots service (validation) and the engine (orders)."""

from common.grid.geometry import (
    MAX_GRID_COUNT,
    GridError,
    GridKind,
    GridPlan,
    grid_count,
    investment_amount,
    levels,
    plan_grid,
    validate_order_amount,
)
from common.grid.rules import (
    UPBIT_KRW_MIN_TOTAL,
    UPBIT_KRW_PRICE_UNITS,
    MarketRules,
    Rounding,
)

__all__ = [
    "MAX_GRID_COUNT",
    "UPBIT_KRW_MIN_TOTAL",
    "UPBIT_KRW_PRICE_UNITS",
    "GridError",
    "GridKind",
    "GridPlan",
    "MarketRules",
    "Rounding",
    "grid_count",
    "investment_amount",
    "levels",
    "plan_grid",
    "validate_order_amount",
]
