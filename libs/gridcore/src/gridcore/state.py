"""The core's state: plain data (Decimals, strings, ints) that round-trips through JSON.

The machine keeps derived indexes (sorted open buys/sells, armable idle slots) beside this state and
rebuilds them from it on restore, so a stored snapshot is complete without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Any

from common.grid.rules import MarketRules

ZERO = Decimal(0)
STATE_VERSION = 1


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
    CREDENTIAL_REMOVED = "credentialRemoved"
    ERROR = "error"


class Phase(StrEnum):
    """Where the machine is: trading, waiting for cancel confirmations, or at rest (no open orders)."""

    RUNNING = "running"
    HALTING = "halting"
    HALTED = "halted"


def _text(value: Decimal) -> str:
    return format(value, "f")  # plain notation: "0.00000001", never "1E-8"


# Restoring 10,000 bots reads ~200,000 of these: a dict lookup is several times cheaper than the enum call
# (which still runs for a value that is not a member, to raise its ValueError).
_SIDES: dict[str, Side] = {member.value: member for member in Side}
_SLOT_STATES: dict[str, SlotState] = {member.value: member for member in SlotState}


@dataclass(frozen=True, slots=True)
class GridConfig:
    """What a run of the grid is built from: bot id, level prices, the user's upperPrice, market rules."""

    bot_id: str
    levels: tuple[Decimal, ...]
    upper_price: Decimal
    rules: MarketRules

    def __post_init__(self) -> None:
        if not self.bot_id:
            raise ValueError("bot_id is required")
        if len(self.levels) < 2:
            raise ValueError("a grid needs at least two levels")
        if self.levels[0] <= 0 or any(a >= b for a, b in pairwise(self.levels)):
            raise ValueError("levels must be positive and strictly increasing")
        if not self.upper_price > 0:
            raise ValueError("upper_price must be positive")

    @property
    def slot_count(self) -> int:
        """Number of slots (len(levels) − 1)."""
        return len(self.levels) - 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "bot_id": self.bot_id,
            "levels": [_text(p) for p in self.levels],
            "upper_price": _text(self.upper_price),
            "rules": self.rules.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridConfig:
        """The inverse of `to_dict`."""
        return cls(
            bot_id=str(data["bot_id"]),
            levels=tuple(Decimal(p) for p in data["levels"]),
            upper_price=Decimal(data["upper_price"]),
            rules=MarketRules.from_dict(data["rules"]),
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
            "side": self.side.value,
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
            "state": self.state.value,
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

    @classmethod
    def initial(
        cls, config: GridConfig, order_amount: Decimal, stop_at_max: bool, epoch: int = 0
    ) -> GridState:
        """A stopped bot with every slot idle; `epoch` must exceed any earlier state's of the same bot."""
        if not order_amount > 0:
            raise ValueError("order_amount must be positive")
        slots = [Slot(index=i) for i in range(config.slot_count)]
        return cls(
            config=config, order_amount=order_amount, stop_at_max=stop_at_max, slots=slots, epoch=epoch
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (Decimals as strings)."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "order_amount": _text(self.order_amount),
            "stop_at_max": self.stop_at_max,
            "status": self.status.value,
            "phase": self.phase.value,
            "halt_status": self.halt_status.value,
            "error_message": self.error_message,
            "stop_reason": None if self.stop_reason is None else self.stop_reason.value,
            "epoch": self.epoch,
            "last_price": None if self.last_price is None else _text(self.last_price),
            "realized_profit": _text(self.realized_profit),
            "slots": [slot.to_dict() for slot in self.slots],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridState:
        """The inverse of `to_dict`."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported engine state version {data.get('version')!r}")
        config = GridConfig.from_dict(data["config"])
        slots = [Slot.from_dict(s) for s in data["slots"]]
        if [s.index for s in slots] != list(range(config.slot_count)):
            raise ValueError("slots do not match the grid's levels")
        last = data.get("last_price")
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
        )
