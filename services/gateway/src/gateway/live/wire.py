"""What a socket receives: the engine's events flattened as API.md shows them, and price events.

API.md writes `{"type": "trade", "botId", …trade}`: the trade's (and a grid level's) own `type` (buy/sell)
would collide with the event's `type`, so it travels as `side`. Every other field keeps its REST name.
"""

from __future__ import annotations

import logging
from typing import Any

from common.contracts.events import EventKind, exact_decimals
from common.contracts.market import PriceTick
from common.web import dumps, iso_utc

log = logging.getLogger(__name__)

PRICE = "price"
PONG = '{"type":"pong"}'

# The key of the nested object each kind carries, flattened into the event.
_NESTED = {EventKind.TRADE: "trade", EventKind.GRID_LEVEL: "level"}


def flatten(element: dict[str, Any], bot_id: str | None) -> dict[str, Any] | None:
    """One socket event from one element of a `UserEvents` message; None for what we do not forward."""
    try:
        kind = EventKind(str(element.get("type")))
    except ValueError:
        # A newer engine's kind: skipped rather than forwarded unreviewed.
        log.debug("skipping user event of type %r", element.get("type"))
        return None
    if kind is EventKind.BACKTEST:
        # About no bot: forwarded with exactly its own fields.
        return {key: element.get(key) for key in ("type", "backtestId", "status", "progress")}
    if bot_id is None:
        return None  # a bot's event whose message names no bot: never guess which
    event: dict[str, Any] = {"type": kind.value, "botId": bot_id}
    nested_key = _NESTED.get(kind)
    if nested_key is None:
        event.update((k, v) for k, v in element.items() if k not in ("type", "botId"))
        return exact_decimals(event)
    nested = element.get(nested_key)
    if not isinstance(nested, dict):
        return None
    for key, value in nested.items():
        event["side" if key == "type" else key] = value
    # Decimals travel the bus as text; the socket gets them as exact JSON numbers, as the REST routes do.
    return exact_decimals(event)


def event_texts(events: list[dict[str, Any]], bot_id: str | None) -> list[str]:
    """The JSON text of each forwarded event (serialised once, sent to every socket of the user)."""
    texts = []
    for element in events:
        if isinstance(element, dict):
            event = flatten(element, bot_id)
            if event is not None:
                texts.append(dumps(event).decode())
    return texts


def price_text(tick: PriceTick) -> str:
    """`{"type": "price", "exchange", "ticker", "price", "timestamp"}`, the price digit for digit."""
    return dumps(
        {
            "type": PRICE,
            "exchange": tick.exchange.value,
            "ticker": tick.ticker,
            "price": tick.last,
            "timestamp": iso_utc(tick.last_trade_at),
        }
    ).decode()
