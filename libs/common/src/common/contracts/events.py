"""User events on the durable topic exchange `events`: what the engine tells a user's live sockets.

Routing key `user.<userId>.events`, published after commit (through the engine's outbox), one message per bot
per committed transaction so a bot's events stay in order. Payload `UserEvents`: `{"userId", "botId",
"events": [...]}`, each element one event in order, written with `model_dump(mode="json")` of its model below
(API.md's field names; money and other decimals as exact decimal strings — a JSON float would round them —
integers as JSON numbers, times ISO 8601 UTC; see common.contracts.public):

* `TradeEvent` `{"type": "trade", "botId", "trade": {...}}` — a trade as `GET /bots/:id/trades` shows it;
* `GridLevelEvent` `{"type": "grid_level", "botId", "level": {...}}` — a level as `GET /bots/:id/grid-levels`
  shows it;
* `BotStatusEvent` `{"type": "bot_status", "botId", "status", "errorMessage"?, "stopReason"?}` (why it
  stopped, once not running);
* `BotStatsEvent` `{"type": "bot_stats", "botId", "currentProfit", "profitPercent", "totalTrades",
  "lastExecutedAt"}` — the figures every bot read carries;
* `BacktestEvent` `{"type": "backtest", "backtestId", "status", "progress"}` — published by the backtest
  service (its message has no `botId`).

The gateway binds `user.*.events` on one transient queue per replica and fans each message out to that
user's WebSockets (see docs/api-additions.md for the shape a socket receives); it reads the elements as plain
JSON, so a kind it does not know is skipped rather than refused.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.contracts.public import (
    BotFigures,
    GridLevelRead,
    PublicModel,
    StopReasonName,
    TradeRead,
    money_fields,
)

EVENTS_EXCHANGE = "events"
"""The durable topic exchange carrying user events."""

_PREFIX = "user"
_SUFFIX = "events"
_RESERVED = frozenset(".*#")


# Fields that carry decimals as exact strings on the bus; the gateway writes them as exact JSON numbers.
DECIMAL_FIELDS = money_fields(TradeRead, GridLevelRead, BotFigures)


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
    BACKTEST = "backtest"


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
    """One transaction's events about one bot of one user (no bot for events about a backtest)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    user_id: str = Field(alias="userId", min_length=1, max_length=64)
    bot_id: str | None = Field(default=None, alias="botId", min_length=1, max_length=64)
    events: list[dict[str, Any]] = Field(default_factory=list)


def _absent(value: object) -> bool:
    # Today's events leave out an empty error message as well as a missing one.
    return not value


class UserEvent(PublicModel):
    """What every element of `UserEvents.events` starts with: its kind and the bot it is about."""

    type: EventKind
    bot_id: str


class TradeEvent(UserEvent):
    """A trade was recorded."""

    type: Literal[EventKind.TRADE] = EventKind.TRADE
    trade: TradeRead


class GridLevelEvent(UserEvent):
    """A grid level changed (its side, status, order or fill time)."""

    type: Literal[EventKind.GRID_LEVEL] = EventKind.GRID_LEVEL
    level: GridLevelRead


class BotStatusEvent(UserEvent):
    """The bot's status changed; `stopReason` once it is not running, `errorMessage` when there is one."""

    type: Literal[EventKind.BOT_STATUS] = EventKind.BOT_STATUS
    status: Literal["running", "stopped", "error"]
    error_message: str | None = Field(default=None, exclude_if=_absent)
    stop_reason: StopReasonName | None = Field(default=None, exclude_if=_absent)


class BotStatsEvent(BotFigures, UserEvent):
    """The bot's figures after a trade (the kind and bot id first, then the figures)."""

    type: Literal[EventKind.BOT_STATS] = EventKind.BOT_STATS


class BacktestEvent(PublicModel):
    """A backtest's status or progress changed (`{"type": "backtest", "backtestId", "status", "progress"}`)."""

    type: Literal[EventKind.BACKTEST] = EventKind.BACKTEST
    backtest_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: int = Field(ge=0, le=100)
