"""Events into the core: what happened (a start, a price tick, an order's fate, a stop, a config change)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gridcore.state import StopReason


def _positive(name: str, value: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive number, not {value}")


@dataclass(frozen=True, slots=True)
class Start:
    """Start (or resume) the bot at the current market price."""

    price: Decimal

    def __post_init__(self) -> None:
        _positive("price", self.price)


@dataclass(frozen=True, slots=True)
class Tick:
    """A price update: the last price and the high/low traded since the previous tick (no crossing is lost).

    `closed_up` says whether the price rose over the tick (the paper model's path order); None = unknown.
    """

    last: Decimal
    high: Decimal
    low: Decimal
    closed_up: bool | None = None

    def __post_init__(self) -> None:
        for name, value in (("last", self.last), ("high", self.high), ("low", self.low)):
            _positive(name, value)
        if not self.low <= self.last <= self.high:
            raise ValueError(f"tick needs low <= last <= high, got {self.low} / {self.last} / {self.high}")


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """One fill (partial or final) of an order: quantity, price, fee and the exchange's fill id."""

    client_order_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    fill_id: str
    is_final: bool

    def __post_init__(self) -> None:
        if not self.qty.is_finite() or self.qty < 0:
            raise ValueError(f"fill qty must be >= 0, not {self.qty}")
        _positive("price", self.price)
        if not self.fee.is_finite() or self.fee < 0:
            raise ValueError(f"fee must be >= 0, not {self.fee}")
        if not self.fill_id:
            raise ValueError("fill_id is required")


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    """The exchange confirmed an order canceled (whatever it filled before stays filled)."""

    client_order_id: str


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The exchange refused an order for good (transient errors are retried before this)."""

    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Cancel every open order and stop; with `error_message`, end in status error (a stop-with-error).

    `reason` says why (default: the user asked); a stop with an error message is always `error`.
    """

    error_message: str | None = None
    reason: StopReason = StopReason.USER


@dataclass(frozen=True, slots=True)
class Abandon:
    """The exchange can no longer be reached about a halting bot's open orders (its keys are gone).

    The core forgets them (they may still rest at the exchange; the driver tells the user which) and the
    halt ends. Ignored unless the bot is halting: a running bot is stopped first.
    """


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """A running bot's settings changed: a new order amount (applies to orders placed from now), stopAtMax,
    and `stops` = (take-profit, stop-loss) prices, either None for none (the options a user may move while
    the bot runs); a field left None is unchanged."""

    order_amount: Decimal | None = None
    stop_at_max: bool | None = None
    stops: tuple[Decimal | None, Decimal | None] | None = None

    def __post_init__(self) -> None:
        if self.order_amount is not None:
            _positive("order_amount", self.order_amount)


Event = Start | Tick | OrderFilled | OrderCanceled | OrderRejected | Stop | Abandon | ConfigChanged
