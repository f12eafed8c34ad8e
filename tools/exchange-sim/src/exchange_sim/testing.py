"""Helpers for tests that drive the simulator: deadlines instead of sleeps, JSON shapes, balances."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
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


def sim_fixtures(client: str = "sim_http", **settings: Any) -> tuple[Any, Any]:
    """The session's `sim` (paused: prices move only through the control API) and its control client.

    In a conftest: `sim, sim_http = sim_fixtures(fault_timeout_seconds=3)`; `settings` override SimSettings.
    """
    from exchange_sim.server import SimServer
    from exchange_sim.settings import SimSettings

    # A day of history, not the product's 30 days: no suite needs more, and long candles build faster.
    values: dict[str, Any] = {
        "port": 0,
        "replay_speed": 0,
        "log_level": "WARNING",
        "history_minutes": 1440,
        **settings,
    }

    @pytest.fixture(scope="session", name="sim")
    async def sim() -> AsyncIterator[SimServer]:
        """The exchange simulator on a free loopback port, paused."""
        server = SimServer(SimSettings(**values))
        await server.start()
        yield server
        await server.stop()

    @pytest.fixture(scope="session", name=client)
    async def control(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
        """The simulator's control API."""
        async with httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
            yield http

    return sim, control


def control_fixtures(client: str = "http") -> tuple[Any, Any]:
    """`new_account` (keys of an account with the given balances on both venues) and `set_price` (pin a
    market's price: a trade there, resting orders match), over the control client fixture named `client`."""

    @pytest.fixture(name="new_account")
    def new_account(request: pytest.FixtureRequest) -> Callable[..., Awaitable[dict[str, str]]]:
        """An account with the given balances on both venues."""
        http: httpx.AsyncClient = request.getfixturevalue(client)

        async def create(**balances: str | int) -> dict[str, str]:
            body = {"balances": {k: str(v) for k, v in balances.items()}}
            response = await http.post("/_sim/accounts", json=body)
            assert response.status_code == 201, response.text
            keys: dict[str, str] = response.json()
            return keys

        return create

    @pytest.fixture(name="set_price")
    def set_price(request: pytest.FixtureRequest) -> Callable[[str, str, str], Awaitable[None]]:
        """Pin a market's price through the control API."""
        http: httpx.AsyncClient = request.getfixturevalue(client)

        async def move(exchange: str, symbol: str, price: str) -> None:
            response = await http.put(f"/_sim/prices/{exchange}/{symbol}", json={"price": price})
            assert response.status_code == 200, response.text

        return move

    return new_account, set_price
