"""What a replay is given (ReplaySpec) and what it gives back (Replay, its Trades)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise

from common.grid.rules import MarketRules
from gridcore.state import GridKind, GridState, Side, StopReason

# The core's bot id for every replay: it only seeds the client order ids, which a backtest never shows.
BACKTEST_BOT_ID = "backtest"
# The simulator (exchange-sim replay.py) replays a candle as four trades; a backtest stamps them at these
# offsets into the candle's minute, so trades keep their order and fall on their candle's UTC day.
TICK_OFFSETS_MS = (0, 15_000, 30_000, 45_000)


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """One grid to replay: level prices, the user's upperPrice, quote per slot, stopAtMax, market rules.

    A backtest's fee override is `dataclasses.replace(rules, maker_fee=…)`: paper fills pay the maker fee.
    """

    levels: tuple[Decimal, ...]
    upper_price: Decimal
    order_amount: Decimal
    stop_at_max: bool
    rules: MarketRules
    # The grid options (GridConfig's; off by default). A market sell on stop pays the taker fee.
    trigger_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    sell_base_on_stop: bool = False
    trailing_up: bool = False
    trailing_up_limit: Decimal | None = None
    kind: GridKind = "geometric"

    def __post_init__(self) -> None:
        if len(self.levels) < 2:
            raise ValueError("a grid needs at least two levels")
        if not self.levels[0] > 0 or any(a >= b for a, b in pairwise(self.levels)):
            raise ValueError("levels must be positive and strictly increasing")
        if not self.upper_price > 0:
            raise ValueError("upper_price must be positive")
        if not self.order_amount > 0:
            raise ValueError("order_amount must be positive")

    @property
    def grid_count(self) -> int:
        """Slots (len(levels) − 1)."""
        return len(self.levels) - 1

    @property
    def investment_amount(self) -> Decimal:
        """gridCount × orderAmount (API.md)."""
        return self.grid_count * self.order_amount


@dataclass(frozen=True, slots=True)
class Trade:
    """One paper fill as the core recorded it (RecordTrade), stamped with its simulated trade's time."""

    timestamp: int  # ms since the epoch, UTC: the candle's open time + TICK_OFFSETS_MS[position]
    slot: int
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    profit: Decimal | None  # sells only: the round trip's profit net of fees


@dataclass(frozen=True, slots=True)
class Replay:
    """The outcome of one replay: every trade, whether and when the bot stopped, what it held at the end."""

    trades: tuple[Trade, ...]
    realized_profit: Decimal
    # Base the slots still hold (bought, not yet sold) and what it cost in quote, fees included.
    held_qty: Decimal
    held_cost: Decimal
    stop_reason: StopReason | None  # stopAtMax, takeProfit or stopLoss, or None: still running at the end
    stopped_at: int | None  # ms of the simulated trade whose price stopped the bot
    state: GridState  # the core's state after the last candle
    # How many candles the replay handed to the core (the fast path skips the rest): a measure, not a result.
    visited: int = field(default=0, compare=False)
