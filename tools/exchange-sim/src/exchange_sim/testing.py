"""Helpers for tests that drive the simulator: deadlines instead of sleeps, JSON shapes, balances."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import websockets


def json_type(value: Any) -> str:
    """The JSON type of a parsed value: number, string, boolean, null, object or array."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape(obj: dict[str, Any]) -> dict[str, str]:
    """Key -> JSON type of an object."""
    return {key: json_type(value) for key, value in obj.items()}


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 5.0, interval: float = 0.02
) -> None:
    """Poll `check` until it is true, failing after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def recv_json(ws: websockets.ClientConnection, within: float = 5.0) -> Any:
    """The next frame, parsed (binary frames are decoded as UTF-8)."""
    frame = await asyncio.wait_for(ws.recv(), within)
    return json.loads(frame)


async def recv_until(
    ws: websockets.ClientConnection, match: Callable[[Any], bool], within: float = 5.0
) -> Any:
    """Skip frames until one matches, within a deadline."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no matching frame before the deadline")
        message = await recv_json(ws, remaining)
        if match(message):
            return message


def balance_of(balance: dict[str, Any], asset: str) -> tuple[Decimal, Decimal]:
    """(free, used) of a ccxt balance as Decimals (ccxt gives floats; str() keeps their digits)."""
    entry = balance.get(asset) or {"free": 0, "used": 0}
    return Decimal(str(entry["free"] or 0)), Decimal(str(entry["used"] or 0))


async def wait_for_topic(client: httpx.AsyncClient, topic: str, within: float = 5.0) -> None:
    """Wait until some WebSocket on the simulator subscribes to a topic (see GET /_sim/health)."""

    async def subscribed() -> bool:
        health = (await client.get("/_sim/health")).json()
        return topic in health["websocketTopics"]

    await eventually(subscribed, within)


async def recv_frame(ws: websockets.ClientConnection, within: float = 5.0) -> str | bytes:
    """The next raw frame (str for text, bytes for binary), within a deadline."""
    return await asyncio.wait_for(ws.recv(), within)
