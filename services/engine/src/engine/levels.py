"""The grid-level read model (API.md's grid levels) derived from the core's slots.

Level j is the buy level of slot j and the sell level of slot j−1. A level is `pending` while an order
rests at its price (slot j's buy, or slot j−1's sell), `filled` once an order there filled (until another
order rests there), and `available` otherwise; its `type` is the side of the order it shows last. Levels
below the lowest slot still in the grid (trailing up retired it) are inactive unless an order rests there.
"""

from __future__ import annotations

from datetime import datetime

from engine.model import LevelView
from gridcore import GridBot, Side

PENDING = "pending"
FILLED = "filled"
AVAILABLE = "available"


def resting_at(core: GridBot, index: int) -> tuple[Side, str] | None:
    """The side and client order id of the order resting at level `index`, if any (a sell shows first)."""
    slots = core.state.slots
    if index >= 1:
        below = slots[index - 1].order
        if below is not None and below.side is Side.SELL:
            return Side.SELL, below.client_order_id
    if index < len(slots):
        own = slots[index].order
        if own is not None and own.side is Side.BUY:
            return Side.BUY, own.client_order_id
    return None


def refresh(
    core: GridBot,
    level: LevelView,
    filled: tuple[Side, str] | None,
    now: datetime,
) -> bool:
    """Bring one level row in line with the core; `filled` is a fill at this level in this step. True if changed."""
    before = level.key()
    resting = resting_at(core, level.index)
    # Trailing up moved the grid past the level: gone from the read unless an order still rests there.
    level.active = level.index >= core.state.low_slot or resting is not None
    if resting is not None:
        side, cid = resting
        level.type, level.status, level.order_id = side.value, PENDING, cid
    elif filled is not None:
        side, cid = filled
        level.type, level.status, level.order_id, level.filled_at = side.value, FILLED, cid, now
    elif level.status == PENDING:
        level.status, level.order_id = AVAILABLE, None
    return level.key() != before
