"""What a notification says: which user events become notifications, and how each channel kind reads them.

A notification is stored as its webhook body without the delivery id (`{"event", "userId", "botId"?,
"occurredAt", "data"}`, decimals as exact text as on the bus); the webhook body adds `deliveryId` and writes
the decimals as exact JSON numbers; apprise channels get a title and a line of text.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from common.contracts.events import DECIMAL_FIELDS, EventKind, exact_decimals
from common.web import dumps, iso_utc

TEST = "test"
Note = tuple[str, dict[str, Any]]
"""One notification to write: its event name and its stored form."""


def notification(
    event: str, user_id: str, occurred_at: datetime, data: dict[str, Any], bot_id: str | None = None
) -> dict[str, Any]:
    """The stored form of one notification."""
    body: dict[str, Any] = {"event": event, "userId": user_id}
    if bot_id is not None:
        body["botId"] = bot_id
    body.update(occurredAt=iso_utc(occurred_at), data=data)
    return body


def category(element: dict[str, Any]) -> str | None:
    """The user's event choice a `bot_status` or `trade` element belongs to (None: no notification).

    A bot that stopped (whatever the reason: stop-loss, take-profit, stopAtMax, the user) is `bot_status`; one
    that went to `error` is `error`; a bot starting is news to no one.
    """
    kind = element.get("type")
    if kind == EventKind.TRADE.value:
        return "trade"
    if kind == EventKind.BOT_STATUS.value:
        status = element.get("status")
        if status == "error":
            return "error"
        if status == "stopped":
            return "bot_status"
    return None


def wanted(event: str, chosen: list[str]) -> bool:
    """Whether a user who chose `chosen` gets `event` (an error stop also reaches bot_status subscribers)."""
    if event == "error":
        return "error" in chosen or "bot_status" in chosen
    return event in chosen


def profit_percent(element: dict[str, Any]) -> Decimal | None:
    """A `bot_stats` element's profitPercent as an exact Decimal (None when absent or unreadable)."""
    value = element.get("profitPercent")
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def notes_of(
    elements: list[dict[str, Any]],
    default_bot: str | None,
    user_id: str,
    occurred_at: datetime,
    chosen: list[str],
    target: Decimal | None,
    hits: set[str],
) -> list[Note]:
    """The notifications one message's elements make for a user who chose `chosen`; a bot whose figures reach
    `target` for the first time (not in `hits`) is added to `hits` with its `profit_target` notification."""
    out: list[Note] = []
    for element in elements:
        bot = str(element.get("botId") or default_bot or "")
        if element.get("type") == EventKind.BOT_STATS.value:
            reached = profit_percent(element)
            if target is None or reached is None or reached < target or bot in hits:
                continue
            if "profit_target" in chosen:
                hits.add(bot)
                data = {**element, "profitTargetPercent": str(target)}
                out.append(("profit_target", notification("profit_target", user_id, occurred_at, data, bot)))
            continue
        event = category(element)
        if event is not None and wanted(event, chosen):
            out.append((event, notification(event, user_id, occurred_at, element, bot or None)))
    return out


def _exact(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _exact(v) for k, v in exact_decimals(node).items()}
    if isinstance(node, list):
        return [_exact(v) for v in node]
    return node


def webhook_body(delivery_id: str, stored: dict[str, Any]) -> bytes:
    """The bytes a webhook receives (and its signature covers): decimals as exact JSON numbers."""
    extra = {"profitTargetPercent", "profitPercent"} - DECIMAL_FIELDS  # our own decimals, beyond the bus's
    data = _exact(stored.get("data", {}))
    if isinstance(data, dict):
        for key in extra & data.keys():
            try:
                data[key] = Decimal(str(data[key]))
            except InvalidOperation:
                continue
    return dumps(
        {"deliveryId": delivery_id, **{k: v for k, v in stored.items() if k != "data"}, "data": data}
    )


def text(stored: dict[str, Any]) -> tuple[str, str]:
    """(title, body) of a notification for a chat channel."""
    data: dict[str, Any] = stored.get("data", {})
    bot = stored.get("botId", "")
    event = stored.get("event")
    if event == TEST:
        return "gridbot: test", "This channel receives your gridbot notifications."
    if event == "trade":
        trade = data.get("trade", {})
        return (
            "gridbot: trade",
            f"Bot {bot} {trade.get('type', '')} {trade.get('amount', '')} at {trade.get('price', '')}"
            + (f", profit {trade['profit']}" if trade.get("profit") is not None else ""),
        )
    if event == "profit_target":
        return (
            "gridbot: profit target reached",
            f"Bot {bot} made {data.get('profitPercent')} % (target {data.get('profitTargetPercent')} %)",
        )
    if data.get("type") == "credential_invalid":
        return (
            "gridbot: exchange keys rejected",
            f"Your {data.get('exchange')} API keys were rejected by the exchange; live bots there stopped.",
        )
    reason = data.get("stopReason")
    message = data.get("errorMessage")
    line = f"Bot {bot} is {data.get('status', 'stopped')}" + (f" ({reason})" if reason else "")
    return f"gridbot: bot {data.get('status', 'stopped')}", line + (f": {message}" if message else "")
