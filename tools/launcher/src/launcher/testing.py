"""Helpers for whole-system tests and scripts that drive a running system over HTTP only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from common.testing.infra import free_port
from launcher.dev import wait_healthy

# Polls go through the gateway and count against the user's 100 requests a minute: one request a second
# stays within it however long a wait runs, and leaves room for the test's own requests. A poll that makes
# n requests a round waits n × POLL between rounds.
POLL = 1.0


@dataclass(frozen=True)
class System:
    """Where a running system answers: the gateway (the only public port) and the exchange simulator."""

    gateway: str
    sim: str


# What the embedded process must not inherit from the test run: it brings its own of each.
_OWN_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "RABBITMQ_URL",
    "SERVICES",
    "READINESS_CHECKS",
    "CREDENTIALS_URL",
    "BOTS_URL",
)


# The e2e stacks' administrator (ADMIN_EMAILS): whoever registers with it first in a stack is one.
ADMIN_EMAIL = "admin-e2e@example.com"


@contextmanager
def embedded(workdir: Path, root: Path, **env: str) -> Iterator[System]:
    """`make run`'s one process (scratch SQLite in `workdir`, free ports), `env` added; stopped on exit."""
    port, sim_port = free_port(), free_port()
    child_env = {k: v for k, v in os.environ.items() if k not in _OWN_ENV}
    child_env.update(PORT=str(port), SIM_PORT=str(sim_port), GRIDBOT_DB_PATH=str(workdir / "gridbot.db"))
    child_env.update(env)
    log = workdir / "embedded.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.embedded"],
            cwd=root,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(
                f"http://127.0.0.1:{port}/health",
                proc,
                # Generous: a loaded machine can take long to import, migrate and start everything.
                timeout=120,
                describe=lambda: log.read_text(errors="replace")[-4000:],
            )
            yield System(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def register(client: httpx.AsyncClient) -> dict[str, str]:
    """A fresh user; returns the Authorization header of its access token."""
    address = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post("/api/auth/register", json={"email": address, "password": "securePassword123"})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['data']['token']}"}


async def sim_account(sim: str, **balances: str) -> dict[str, str]:
    """Keys of a fresh simulator account (valid on both exchanges)."""
    async with httpx.AsyncClient(base_url=sim, timeout=10) as c:
        r = await c.post("/_sim/accounts", json={"balances": balances})
        assert r.status_code in (200, 201), r.text
        keys = r.json()
        return {"apiKey": keys["apiKey"], "secretKey": keys["secretKey"]}


def body(response: httpx.Response) -> Any:
    """The envelope's data, numbers as exact Decimals (the API writes money digit for digit)."""
    parsed = json.loads(response.text, parse_float=Decimal)
    assert response.status_code < 300 and parsed["success"] is True, response.text
    return parsed["data"]


@asynccontextmanager
async def clients(
    system: System, client_ip: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A gateway client (its own client IP) and a simulator control client."""
    async with (
        httpx.AsyncClient(base_url=system.gateway, headers={"x-forwarded-for": client_ip}, timeout=20) as api,
        httpx.AsyncClient(base_url=system.sim, timeout=10) as sim,
    ):
        yield api, sim


async def sim_price(sim: httpx.AsyncClient, exchange: str, symbol: str) -> Decimal:
    """The simulator's last price of a market."""
    return Decimal((await sim.get("/_sim/prices")).json()[exchange][symbol]["price"])


async def move(sim: httpx.AsyncClient, exchange: str, symbol: str, price: Decimal) -> None:
    """A trade at this price, and the market pinned there."""
    r = await sim.put(f"/_sim/prices/{exchange}/{symbol}", json={"price": str(price)})
    assert r.status_code == 200, r.text


async def sim_orders(sim: httpx.AsyncClient, api_key: str, exchange: str) -> list[dict[str, Any]]:
    """The simulator's record of every order of that account on that exchange."""
    r = await sim.get("/_sim/orders", params={"apiKey": api_key, "exchange": exchange})
    assert r.status_code == 200, r.text
    orders: list[dict[str, Any]] = r.json()
    return orders


def grid_around(
    exchange: str, ticker: str, price: Decimal, width: str, percent: float, amount: int, **extra: Any
) -> dict[str, Any]:
    """A POST /api/bots body whose range is `price` ± `width` (a fraction), running at once."""
    spread = Decimal(width)
    return {
        "exchange": exchange,
        "ticker": ticker,
        "lowerPrice": int(price * (1 - spread)),
        "upperPrice": int(price * (1 + spread)),
        "priceChangePercent": percent,
        "orderAmount": amount,
        "stopAtMax": False,
        "autoStart": True,
        **extra,
    }


async def pending(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str, side: str) -> int:
    """How many of the bot's grid levels show a resting order on that side."""
    shown = body(await api.get(f"/api/bots/{bot_id}/grid-levels?status=pending", headers=auth))
    return sum(1 for level in shown["gridLevels"] if level["type"] == side)


def refusal(response: httpx.Response) -> tuple[int, str, Any]:
    """(status, error code, details) of an error envelope, numbers as exact Decimals."""
    parsed = json.loads(response.text, parse_float=Decimal)
    assert parsed["success"] is False and set(parsed["error"]) == {"code", "message", "details"}, (
        response.text
    )
    return response.status_code, parsed["error"]["code"], parsed["error"]["details"]


async def connect_keys(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, auth: dict[str, str], exchange: str, **balances: str
) -> str:
    """A fresh simulator account (2,000,000 KRW and 5,000 USDT unless told) stored as the user's credential
    for `exchange`; returns its API key."""
    keys = await sim_account(str(sim.base_url), **(balances or {"KRW": "2000000", "USDT": "5000"}))
    r = await api.post("/api/credentials", headers=auth, json={"exchange": exchange, **keys})
    assert r.status_code == 201, r.text
    return keys["apiKey"]


async def trades_of(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str) -> list[dict[str, Any]]:
    """Every trade of the bot, oldest first."""
    data = body(await api.get(f"/api/bots/{bot_id}/trades?limit=500", headers=auth))
    assert data["pagination"]["hasMore"] is False
    return list(reversed(data["trades"]))


async def level_prices(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str) -> list[Decimal]:
    """The prices of the bot's grid levels, ascending."""
    shown = body(await api.get(f"/api/bots/{bot_id}/grid-levels", headers=auth))
    return [level["price"] for level in shown["gridLevels"]]


def upbit_buy_qty(order_amount: Decimal, price: Decimal, fee: Decimal = Decimal("0.0005")) -> Decimal:
    """What a grid buy of `order_amount` KRW at `price` asks for on Upbit: the bid locks its fee too, so
    price·qty·(1+fee) stays within the amount, cut to Upbit's 8 decimals."""
    return (order_amount / (price * (1 + fee))).quantize(Decimal("1e-8"), rounding="ROUND_DOWN")


def as_fills(trades: list[dict[str, Any]]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(exchange order id, price, amount, fee) of our trades, sorted."""
    return sorted((t["orderId"], t["price"], t["amount"], t["fee"]) for t in trades)


def exchange_fills(orders: list[dict[str, Any]]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The same tuples from the simulator's fills."""
    return sorted(
        (o["orderId"], Decimal(f["price"]), Decimal(f["quantity"]), Decimal(f["fee"]))
        for o in orders
        for f in o["fills"]
    )


def random_client_ip() -> str:
    """A client address of its own (sent as X-Forwarded-For through the trusted proxy), never x.x.x.0."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def window_left(response: httpx.Response) -> float:
    """Seconds until the rate-limit window this response was counted in resets (X-RateLimit-Reset)."""
    return int(response.headers["x-ratelimit-reset"]) - time.time()


async def until(
    ws: ClientConnection, seen: list[dict[str, Any]], done: Any, within: float, what: str
) -> None:
    """Collect messages into `seen` until `done(seen)` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not done(seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{what}; received {seen}")
        try:
            async with asyncio.timeout(remaining):
                seen.append(json.loads(await ws.recv(), parse_float=Decimal))
        except TimeoutError:
            continue
