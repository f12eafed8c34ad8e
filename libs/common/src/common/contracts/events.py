"""User events on the durable topic exchange `events`: what the engine tells a user's live sockets.

Routing key `user.<userId>.events`, published after commit (through the engine's outbox), one message per bot
per committed transaction so a bot's events stay in order. Payload `UserEvents`: `{"userId", "botId",
"events": [...]}`, each element one event in order, in API.md's field names (money and other decimals as
exact decimal strings — a JSON float would round them — integers as JSON numbers, times ISO 8601 UTC):

* `{"type": "trade", "botId", "trade": {...}}` — a trade as `GET /bots/:id/trades` shows it;
* `{"type": "grid_level", "botId", "level": {...}}` — a level as `GET /bots/:id/grid-levels` shows it;
* `{"type": "bot_status", "botId", "status", "errorMessage"?, "stopReason"?}` (why it stopped, once not running);
* `{"type": "bot_stats", "botId", "currentProfit", "profitPercent", "totalTrades", "lastExecutedAt"}`.

The gateway binds `user.*.events` on one transient queue per replica and fans each message out to that
user's WebSockets (see docs/api-additions.md for the shape a socket receives).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

EVENTS_EXCHANGE = "events"
"""The durable topic exchange carrying user events."""

_PREFIX = "user"
_SUFFIX = "events"
_RESERVED = frozenset(".*#")


# Fields that carry decimals as exact strings on the bus; the gateway writes them as exact JSON numbers.
DECIMAL_FIELDS = frozenset({"price", "amount", "total", "fee", "profit", "currentProfit", "profitPercent"})


def wire_decimal(value: Decimal) -> int | str:
    """A decimal as the bus carries it: an integer as a JSON number, anything else digit for digit as text."""
    if value == value.to_integral_value():
        return int(value)
    return format(value.normalize(), "f")


def exact_decimals(fields: dict[str, Any]) -> dict[str, Any]:
    """The same fields with every decimal string of DECIMAL_FIELDS read back as a Decimal."""
    out = dict(fields)
    for key in DECIMAL_FIELDS & out.keys():
        value = out[key]
        if isinstance(value, str):
            try:
                out[key] = Decimal(value)
            except InvalidOperation:
                continue  # not ours to fix: forwarded as it came
    return out


class EventKind(StrEnum):
    """The `type` of one element of `UserEvents.events`."""

    TRADE = "trade"
    GRID_LEVEL = "grid_level"
    BOT_STATUS = "bot_status"
    BOT_STATS = "bot_stats"


def user_events_key(user_id: str) -> str:
    """`user.<userId>.events`, where one user's events are published."""
    if not user_id or _RESERVED & set(user_id):
        # A dot or a wildcard in the id would route the message to other users' bindings.
        raise ValueError(f"not a routable user id: {user_id!r}")
    return f"{_PREFIX}.{user_id}.{_SUFFIX}"


def user_events_binding(user_id: str | None = None) -> str:
    """A binding key for every user's events (`user.*.events`) or one user's."""
    return user_events_key(user_id) if user_id is not None else f"{_PREFIX}.*.{_SUFFIX}"


def user_of(routing_key: str) -> str | None:
    """The user id of a `user.<userId>.events` routing key, None for any other key."""
    prefix, _, rest = routing_key.partition(".")
    user, _, suffix = rest.rpartition(".")
    if prefix != _PREFIX or suffix != _SUFFIX or not user or "." in user:
        return None
    return user


class UserEvents(BaseModel):
    """One transaction's events about one bot of one user."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    user_id: str = Field(alias="userId", min_length=1, max_length=64)
    bot_id: str = Field(alias="botId", min_length=1, max_length=64)
    events: list[dict[str, Any]] = Field(default_factory=list)
