"""What a stored snapshot says about a bot without restoring it: its watch, its phase, whether it holds orders.

A driver that takes many bots over at once (an engine replica taking a dead one's partitions) indexes them
by these and restores a core only when something reaches the bot: restoring builds a Decimal of every
slot's figures, the watch needs a handful of level prices. `watch_of(s)` equals
`GridBot.restore(s).watch()` whenever it answers (property-tested); it declines (None) where only the
machine can tell (trailing up's next level) or the snapshot is not one it reads, and the caller restores.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.state import READABLE_VERSIONS, Phase
from gridcore.watch import Watch


def phase_of(snapshot: dict[str, Any]) -> Phase:
    """The snapshot's phase (running, halting, halted)."""
    return Phase(snapshot["phase"])


def has_open_orders(snapshot: dict[str, Any]) -> bool:
    """True when some slot has an order open, or a market sell is under way."""
    return snapshot.get("market_sell") is not None or any(
        slot.get("order") is not None for slot in snapshot["slots"]
    )


def watch_of(snapshot: dict[str, Any]) -> Watch | None:
    """The watch of the bot this snapshot restores to, read off the snapshot; None when it cannot tell."""
    config = snapshot["config"]
    if snapshot.get("version") not in READABLE_VERSIONS or config.get("trailing_up"):
        return None
    running = snapshot["phase"] == Phase.RUNNING.value
    triggered = bool(snapshot.get("triggered", True))
    low_slot = int(snapshot.get("low_slot", 0))
    trail_waiting = {int(top) for _, top in snapshot.get("trail_waits", [])}
    buys: list[int] = []
    sells: list[int] = []
    first_idle: int | None = None
    # As GridBook builds its indexes: slots in order, each with its order's side or (running) armable.
    for position, slot in enumerate(snapshot["slots"]):
        if slot["index"] != position:
            return None
        order = slot.get("order")
        if order is not None:
            side = order["side"]
            if side == "buy":
                buys.append(position)
            elif side == "sell":
                sells.append(position)
            else:
                return None
        elif (
            first_idle is None
            and running
            and triggered
            and slot.get("blocked") is None
            and position >= low_slot
            and position not in trail_waiting
        ):
            first_idle = position
    levels: list[str] = list(config["levels"]) + list(snapshot.get("added_levels", []))
    if len(levels) != len(snapshot["slots"]) + 1:
        return None
    trading = running and triggered
    waiting = running and not triggered
    trigger = _price(config.get("trigger_price"))
    above = snapshot.get("trigger_above")
    return Watch(
        lowest_buy=Decimal(levels[buys[0]]) if buys else None,
        highest_buy=Decimal(levels[buys[-1]]) if buys else None,
        lowest_sell=Decimal(levels[sells[0] + 1]) if sells else None,
        highest_sell=Decimal(levels[sells[-1] + 1]) if sells else None,
        next_arm=Decimal(levels[first_idle]) if running and first_idle is not None else None,
        stop_price=Decimal(config["upper_price"]) if trading and snapshot["stop_at_max"] else None,
        take_profit=_price(config.get("take_profit_price")) if trading else None,
        stop_loss=_price(config.get("stop_loss_price")) if trading else None,
        trigger_above=trigger if waiting and above else None,
        trigger_below=trigger if waiting and above is False else None,
        trail_at=None,
    )


def _price(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
