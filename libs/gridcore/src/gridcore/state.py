"""The core's state: plain data (Decimals, strings, ints) that round-trips through JSON.

The machine keeps derived indexes (sorted open buys/sells, armable idle slots) beside this state and
rebuilds them from it on restore, so a stored snapshot is complete without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Any, Literal

from common.grid.rules import MarketRules

ZERO = Decimal(0)
# 2: grid options (trigger, take-profit, stop-loss, sell base on stop, trailing up). A version-1 snapshot
# restores as a bot without options (every new field at its default).
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)
GridKind = Literal["geometric", "arithmetic"]


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class SlotState(StrEnum):
    """ARCHITECTURE.md's slot states."""

    IDLE = "idle"
    BUYING = "buying"
    SELLING = "selling"


class Status(StrEnum):
    """The bot status API.md shows."""

    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


class StopReason(StrEnum):
    """Why a bot halted (API.md `stopReason`)."""

    USER = "user"
    STOP_AT_MAX = "stopAtMax"
    TAKE_PROFIT = "takeProfit"
    STOP_LOSS = "stopLoss"
    CREDENTIAL_REMOVED = "credentialRemoved"
    ERROR = "error"


class Phase(StrEnum):
    """Where the machine is: trading, waiting for cancel confirmations, or at rest (no open orders)."""

    RUNNING = "running"
    HALTING = "halting"
    HALTED = "halted"


def _text(value: Decimal) -> str:
    """Plain notation: "0.00000001", never "1E-8" (a snapshot holds hundreds: str, when it is plain already,
    costs a third of format's)."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def _opt(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


# Restoring 10,000 bots reads ~200,000 of these: a dict lookup is several times cheaper than the enum call
# (which still runs for a value that is not a member, to raise its ValueError).
_SIDES: dict[str, Side] = {member.value: member for member in Side}
_SLOT_STATES: dict[str, SlotState] = {member.value: member for member in SlotState}


@dataclass(frozen=True, slots=True)
class GridConfig:
    """What a run of the grid is built from: bot id, level prices, the user's upperPrice, market rules,
    and the grid options (API.md "Grid options"; every one off by default, which is the plain grid).

    The options live here, not in GridState, because they are settings: fixed for a run (changed only
    while the bot is stopped, like the levels) and never moved by the machine; what they cause at run time
    (triggered, the trailing levels, a market sell under way) is state.
    """

    bot_id: str
    levels: tuple[Decimal, ...]
    upper_price: Decimal
    rules: MarketRules
    # Nothing is placed until a tick trades at or through this price (from the start price's side).
    trigger_price: Decimal | None = None
    # A tick whose high reaches take_profit_price, or whose low reaches stop_loss_price, stops the bot.
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    # On a stop (user, stopAtMax, take-profit, stop-loss; not an error) the slots' base is sold at market.
    sell_base_on_stop: bool = False
    # A tick a full step above the top level adds a slot on top and drops the lowest, up to the limit.
    trailing_up: bool = False
    trailing_up_limit: Decimal | None = None
    # The step trailing extends the grid by (the levels' own kind: API.md gridType).
    kind: GridKind = "geometric"
    # `to_dict` once made: a snapshot is taken at every fill, and the config never changes within a run.
    _dict: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.bot_id:
            raise ValueError("bot_id is required")
        if len(self.levels) < 2:
            raise ValueError("a grid needs at least two levels")
        if self.levels[0] <= 0 or any(a >= b for a, b in pairwise(self.levels)):
            raise ValueError("levels must be positive and strictly increasing")
        if not self.upper_price > 0:
            raise ValueError("upper_price must be positive")
        for name in ("trigger_price", "take_profit_price", "stop_loss_price", "trailing_up_limit"):
            value = getattr(self, name)
            if value is not None and (not value.is_finite() or value <= 0):
                raise ValueError(f"{name} must be a positive price")
        if self.kind not in ("geometric", "arithmetic"):
            raise ValueError(f"unknown grid kind {self.kind!r}")

    @property
    def slot_count(self) -> int:
        """Number of slots the grid is built with (len(levels) − 1); trailing keeps this many active."""
        return len(self.levels) - 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (an option is written only when set, so a plain grid's form is unchanged).

        Made once and shared by every snapshot of the run: read it, never change it in place.
        """
        data = self._dict
        if data is None:
            data = self._make_dict()
            object.__setattr__(self, "_dict", data)  # frozen: only this cache is ever set
        return data

    def _make_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "bot_id": self.bot_id,
            "levels": [_text(p) for p in self.levels],
            "upper_price": _text(self.upper_price),
            "rules": self.rules.to_dict(),
        }
        for name in ("trigger_price", "take_profit_price", "stop_loss_price", "trailing_up_limit"):
            value = getattr(self, name)
            if value is not None:
                data[name] = _text(value)
        if self.sell_base_on_stop:
            data["sell_base_on_stop"] = True
        if self.trailing_up:
            data["trailing_up"] = True
        if self.kind != "geometric":
            data["kind"] = self.kind
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridConfig:
        """The inverse of `to_dict`."""
        return cls(
            bot_id=str(data["bot_id"]),
            levels=tuple(Decimal(p) for p in data["levels"]),
            upper_price=Decimal(data["upper_price"]),
            rules=MarketRules.from_dict(data["rules"]),
            trigger_price=_opt(data.get("trigger_price")),
            take_profit_price=_opt(data.get("take_profit_price")),
            stop_loss_price=_opt(data.get("stop_loss_price")),
            sell_base_on_stop=bool(data.get("sell_base_on_stop", False)),
            trailing_up=bool(data.get("trailing_up", False)),
            trailing_up_limit=_opt(data.get("trailing_up_limit")),
            kind="arithmetic" if data.get("kind") == "arithmetic" else "geometric",
        )


@dataclass(slots=True)
class OpenOrder:
    """An order the core placed and has not yet seen closed (fully filled, canceled or rejected)."""

    client_order_id: str
    side: Side
    price: Decimal
    qty: Decimal
    filled_qty: Decimal = ZERO
    # Fill ids already applied: a redelivered fill is ignored. Dropped with the order when it closes.
    fill_ids: list[str] = field(default_factory=list)
    cancel_requested: bool = False

    @property
    def remaining_qty(self) -> Decimal:
        """Quantity still resting on the book."""
        return max(self.qty - self.filled_qty, ZERO)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "client_order_id": self.client_order_id,
            "side": self.side._value_,
            "price": _text(self.price),
            "qty": _text(self.qty),
            "filled_qty": _text(self.filled_qty),
            "fill_ids": list(self.fill_ids),
            "cancel_requested": self.cancel_requested,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenOrder:
        """The inverse of `to_dict`."""
        return cls(
            client_order_id=str(data["client_order_id"]),
            side=_SIDES.get(data["side"]) or Side(data["side"]),
            price=Decimal(data["price"]),
            qty=Decimal(data["qty"]),
            filled_qty=Decimal(data["filled_qty"]),
            fill_ids=[str(f) for f in data["fill_ids"]],
            cancel_requested=bool(data["cancel_requested"]),
        )


@dataclass(slots=True)
class Slot:
    """Slot i, between levels i and i+1: its state, its one open order, and the base it holds at cost."""

    index: int
    state: SlotState = SlotState.IDLE
    # Orders this slot has placed so far; the next order's id uses seq + 1, so no id is ever reused.
    seq: int = 0
    order: OpenOrder | None = None
    # Base bought and not yet sold (lot-rounding leftovers and partial fills included) and what it cost
    # in quote, fees included: the basis of every sell's profit.
    holding_qty: Decimal = ZERO
    holding_cost: Decimal = ZERO
    # Why an idle slot cannot place its buy (below the exchange minimum); it is not armed until config changes.
    blocked: str | None = None
    round_trips: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "index": self.index,
            "state": self.state._value_,
            "seq": self.seq,
            "order": None if self.order is None else self.order.to_dict(),
            "holding_qty": _text(self.holding_qty),
            "holding_cost": _text(self.holding_cost),
            "blocked": self.blocked,
            "round_trips": self.round_trips,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Slot:
        """The inverse of `to_dict`."""
        order = data.get("order")
        return cls(
            index=int(data["index"]),
            state=_SLOT_STATES.get(data["state"]) or SlotState(data["state"]),
            seq=int(data["seq"]),
            order=None if order is None else OpenOrder.from_dict(order),
            holding_qty=Decimal(data["holding_qty"]),
            holding_cost=Decimal(data["holding_cost"]),
            blocked=data.get("blocked"),
            round_trips=int(data["round_trips"]),
        )


@dataclass(slots=True)
class GridState:
    """Everything the core knows about one bot; `to_dict` is what the persistence layer stores."""

    config: GridConfig
    order_amount: Decimal
    stop_at_max: bool
    slots: list[Slot]
    status: Status = Status.STOPPED
    phase: Phase = Phase.HALTED
    # The status a halt in progress ends in (a stop: stopped; an error or a stop-with-error: error).
    halt_status: Status = Status.STOPPED
    error_message: str | None = None
    # Why the last (or current) halt happened; None while running and before the first halt.
    stop_reason: StopReason | None = None
    # Bumped by every Start; part of every client order id, so a state rebuilt with a higher epoch
    # (e.g. after a grid change) can never reuse an id of an earlier run.
    epoch: int = 0
    last_price: Decimal | None = None
    realized_profit: Decimal = ZERO
    # Trigger: False from a Start until a tick trades at or through config.trigger_price (True without one);
    # trigger_above says from which side the tick must come (decided by the start price).
    triggered: bool = True
    trigger_above: bool | None = None
    # Trailing up: levels added above config.levels (slot i lies between level i and i+1 of both together),
    # the lowest slot still in the grid (slots below it are retired: they only sell what they hold), and
    # new top slots waiting for the cancel of a retired slot's buy (retired → top) before they may buy.
    added_levels: list[Decimal] = field(default_factory=list)
    low_slot: int = 0
    trail_waits: dict[int, int] = field(default_factory=dict)
    # Sell base on stop: the market sell of the halt under way, the count of market sells ever placed
    # (their ids' sequence), and whether the halt under way is still to sell once its cancels are confirmed.
    market_sell: OpenOrder | None = None
    market_seq: int = 0
    sell_pending: bool = False

    def all_levels(self) -> tuple[Decimal, ...]:
        """Every level: the configured ones, then those trailing added (slot i: levels i and i + 1)."""
        return self.config.levels + tuple(self.added_levels)

    @classmethod
    def initial(
        cls, config: GridConfig, order_amount: Decimal, stop_at_max: bool, epoch: int = 0
    ) -> GridState:
        """A stopped bot with every slot idle; `epoch` must exceed any earlier state's of the same bot."""
        if not order_amount > 0:
            raise ValueError("order_amount must be positive")
        slots = [Slot(index=i) for i in range(config.slot_count)]
        return cls(
            config=config,
            order_amount=order_amount,
            stop_at_max=stop_at_max,
            slots=slots,
            epoch=epoch,
            triggered=config.trigger_price is None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (Decimals as strings)."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "order_amount": _text(self.order_amount),
            "stop_at_max": self.stop_at_max,
            "status": self.status._value_,
            "phase": self.phase._value_,
            "halt_status": self.halt_status._value_,
            "error_message": self.error_message,
            "stop_reason": None if self.stop_reason is None else self.stop_reason.value,
            "epoch": self.epoch,
            "last_price": None if self.last_price is None else _text(self.last_price),
            "realized_profit": _text(self.realized_profit),
            "slots": [slot.to_dict() for slot in self.slots],
            "triggered": self.triggered,
            "trigger_above": self.trigger_above,
            "added_levels": [_text(p) for p in self.added_levels],
            "low_slot": self.low_slot,
            "trail_waits": [[retired, top] for retired, top in self.trail_waits.items()],
            "market_sell": None if self.market_sell is None else self.market_sell.to_dict(),
            "market_seq": self.market_seq,
            "sell_pending": self.sell_pending,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridState:
        """The inverse of `to_dict`."""
        if data.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported engine state version {data.get('version')!r}")
        config = GridConfig.from_dict(data["config"])
        slots = [Slot.from_dict(s) for s in data["slots"]]
        # Version 1 has none of the option fields: .get gives each its default (a plain grid).
        added = [Decimal(p) for p in data.get("added_levels", [])]
        if [s.index for s in slots] != list(range(config.slot_count + len(added))):
            raise ValueError("slots do not match the grid's levels")
        last = data.get("last_price")
        market = data.get("market_sell")
        return cls(
            config=config,
            order_amount=Decimal(data["order_amount"]),
            stop_at_max=bool(data["stop_at_max"]),
            slots=slots,
            status=Status(data["status"]),
            phase=Phase(data["phase"]),
            halt_status=Status(data["halt_status"]),
            error_message=data.get("error_message"),
            # Absent from snapshots written before stop reasons existed.
            stop_reason=None if data.get("stop_reason") is None else StopReason(data["stop_reason"]),
            epoch=int(data["epoch"]),
            last_price=None if last is None else Decimal(last),
            realized_profit=Decimal(data["realized_profit"]),
            triggered=bool(data.get("triggered", True)),
            trigger_above=data.get("trigger_above"),
            added_levels=added,
            low_slot=int(data.get("low_slot", 0)),
            trail_waits={int(retired): int(top) for retired, top in data.get("trail_waits", [])},
            market_sell=None if market is None else OpenOrder.from_dict(market),
            market_seq=int(data.get("market_seq", 0)),
            sell_pending=bool(data.get("sell_pending", False)),
        )
