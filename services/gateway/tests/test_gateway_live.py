"""Live updates (GET /api/ws) through a real uvicorn server, on RabbitMQ and on the in-process bus.

Events are published exactly as the engine publishes them (exchange `events`, key `user.<id>.events`);
revocations are written to the real Redis as auth's logout writes them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from common import metrics
from common.bus import Bus, RabbitBus
from common.cache import Cache
from common.contracts.bots import BOTS_EXCHANGE, BotEvent, BotLifecycle, BotStatus
from common.contracts.events import EVENTS_EXCHANGE, user_events_key
from common.contracts.market import MARKET_EXCHANGE, PriceTick, display_routing_key
from common.exchanges.ids import Exchange
from common.runtime import acquire_bus, release_bus
from common.security import RevocationList, TokenType
from common.testing.wait import eventually
from gateway.live import uvicorn_ws_options
from gateway.live.hub import LiveHub
from gateway.main import create_app
from gateway.testing import Tokens, make_settings, serve

DEADLINE = 10.0
CONSUMED = "gridbot_bus_messages_consumed_total"


@dataclass
class Live:
    """A served gateway, the bus the test publishes on, and the gateway's hub."""

    port: int
    bus: Bus
    hub: LiveHub
    app: Any
    bots: dict[str, list[dict[str, str]]]  # user id -> what the bots stand-in lists

    def url(self, query: str = "") -> str:
        """The socket's URL."""
        return f"ws://127.0.0.1:{self.port}/api/ws{query}"

    async def events(self, user: str, bot: str, *events: dict[str, Any]) -> None:
        """Publish one transaction's events as the engine does."""
        payload = {"userId": user, "botId": bot, "events": list(events)}
        await self.bus.publish(EVENTS_EXCHANGE, user_events_key(user), payload)


def bots_stand_in(live_bots: dict[str, list[dict[str, str]]], tokens: Tokens) -> FastAPI:
    """GET /api/bots answering the bots of the token's user."""
    app = FastAPI()

    @app.get("/api/bots")
    async def bots(request: Request) -> dict[str, Any]:
        token = request.headers["authorization"].removeprefix("Bearer ")
        user = tokens.service.verify(token, TokenType.ACCESS).user_id
        return {"success": True, "data": {"bots": live_bots.get(user, [])}}

    return app


@pytest.fixture(params=["memory", "rabbit"])
def bus_url(request: pytest.FixtureRequest) -> str:
    """Each test on the in-process bus and on the real RabbitMQ."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("rabbitmq_url")
    return url


@asynccontextmanager
async def start_live(
    bus_url: str, namespace: str, redis_url: str, tokens: Tokens, **overrides: Any
) -> AsyncIterator[Live]:
    """Run the gateway with live updates; yields once it serves."""
    bots: dict[str, list[dict[str, str]]] = {}
    values: dict[str, Any] = {
        "rabbitmq_url": bus_url,
        "bus_namespace": namespace,
        "redis_url": redis_url,
        "cache_namespace": namespace,
        "ws_revocation_check_seconds": 0.2,
        **overrides,
    }
    transports = {"bots": httpx.ASGITransport(bots_stand_in(bots, tokens))}
    settings = make_settings(**values)
    app = create_app(settings, transports)
    bus = await acquire_bus(bus_url, namespace)
    try:
        async with (
            LifespanManager(app) as manager,
            serve(manager.app, **uvicorn_ws_options(settings)) as port,
        ):
            yield Live(port, bus, app.state.live, manager.app, bots)
    finally:
        if isinstance(bus, RabbitBus):
            await bus.delete_topology()
        await release_bus(bus)


@pytest.fixture
async def live(bus_url: str, namespace: str, redis_url: str, tokens: Tokens) -> AsyncIterator[Live]:
    """The gateway with default live-update settings."""
    async with start_live(bus_url, namespace, redis_url, tokens) as running:
        yield running


async def next_json(ws: ClientConnection) -> Any:
    """The next message, numbers as exact Decimals."""
    async with asyncio.timeout(DEADLINE):
        return json.loads(await ws.recv(), parse_float=Decimal)


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait for the server to close the socket: (code, reason)."""
    async with asyncio.timeout(DEADLINE):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


def user() -> str:
    """A fresh user id."""
    return str(uuid.uuid4())


def trade(side: str = "buy") -> dict[str, Any]:
    """A trade element as the engine writes it."""
    body = {"_id": str(uuid.uuid4()), "type": side, "price": 51000000, "amount": 0.0002, "total": 10200}
    return body | {
        "fee": 5.1,
        "feeCurrency": "KRW",
        "orderId": "o-1",
        "executedAt": "2025-01-23T10:30:00.000Z",
    }


# --- handshake -------------------------------------------------------------------------------


async def test_refusals_close_with_1008_and_a_short_reason(
    live: Live, tokens: Tokens, redis_cache: Cache
) -> None:
    revoked = tokens.service.issue(TokenType.ACCESS, user_id=user(), email="u@example.com")
    await RevocationList(redis_cache).revoke(revoked.jti, revoked.expires_at)
    cases = {
        "": "UNAUTHORIZED",
        "?token=": "UNAUTHORIZED",
        "?token=not.a.jwt": "INVALID_TOKEN",
        f"?token={tokens.access()}x": "INVALID_TOKEN",
        f"?token={tokens.refresh()}": "INVALID_TOKEN",
        f"?token={revoked.token}": "INVALID_TOKEN",
    }
    for query, reason in cases.items():
        async with connect(live.url(query)) as ws:
            assert await closed(ws) == (1008, reason), query
    assert live.hub.connections == 0


async def test_two_tokens_in_one_handshake_are_refused(live: Live, tokens: Tokens) -> None:
    alice, bob = tokens.access(user()), tokens.access(user())
    async with connect(live.url(f"?token={alice}&token={bob}")) as ws:
        assert await closed(ws) == (1008, "VALIDATION_ERROR")
    offered = [Subprotocol("bearer"), Subprotocol(alice), Subprotocol(bob)]
    async with connect(live.url(), subprotocols=offered) as ws:
        assert await closed(ws) == (1008, "VALIDATION_ERROR")
    async with connect(live.url(f"?token={bob}"), subprotocols=offered[:2]) as ws:
        assert await closed(ws) == (1008, "VALIDATION_ERROR")
    assert live.hub.connections == 0


async def test_a_foreign_origin_is_refused(live: Live, tokens: Tokens) -> None:
    url = live.url(f"?token={tokens.access()}")
    async with connect(url, origin=Origin("https://evil.example")) as ws:
        assert await closed(ws) == (1008, "FORBIDDEN")
    async with connect(url, origin=Origin("http://localhost:3009")) as ws:
        await ws.send('{"type": "ping"}')
        assert await next_json(ws) == {"type": "pong"}


async def test_client_messages_other_than_ping_are_ignored_and_big_ones_refused(
    live: Live, tokens: Tokens
) -> None:
    async with connect(live.url(f"?token={tokens.access()}")) as ws:
        await ws.send('{"subscribe": [{"exchange": "upbit", "ticker": "KRW-BTC"}]}')
        await ws.send('{"type": "ping"}')
        assert await next_json(ws) == {"type": "pong"}
        await ws.send("x" * 5000)
        assert (await closed(ws))[0] == 1009


async def test_the_token_in_the_protocol_header_is_answered_with_the_bearer_subprotocol(
    live: Live, tokens: Tokens
) -> None:
    me = user()
    async with connect(
        live.url(), subprotocols=[Subprotocol("bearer"), Subprotocol(tokens.access(me))]
    ) as ws:
        assert ws.subprotocol == "bearer"
        await live.events(me, "b1", {"type": "bot_status", "botId": "b1", "status": "running"})
        assert await next_json(ws) == {"type": "bot_status", "botId": "b1", "status": "running"}


async def test_frames_are_not_compressed_even_when_the_client_offers_it(live: Live, tokens: Tokens) -> None:
    me = user()
    # The websockets client offers permessage-deflate, as browsers do.
    async with connect(live.url(f"?token={tokens.access(me)}"), compression="deflate") as ws:
        assert (
            ws.request is not None and "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        )
        assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
        await live.events(me, "b1", {"type": "bot_status", "botId": "b1", "status": "running"})
        assert await next_json(ws) == {"type": "bot_status", "botId": "b1", "status": "running"}


async def test_sockets_per_user_are_capped(
    bus_url: str, namespace: str, redis_url: str, tokens: Tokens
) -> None:
    async with start_live(bus_url, namespace, redis_url, tokens, ws_max_connections_per_user=2) as live:
        url = live.url(f"?token={tokens.access('capped')}")
        async with connect(url), connect(url), connect(url) as third:
            assert await closed(third) == (1008, "TOO_MANY_CONNECTIONS")
            assert live.hub.sockets_of("capped") == 2


# --- events ----------------------------------------------------------------------------------


async def test_events_reach_only_their_own_users_sockets(live: Live, tokens: Tokens) -> None:
    alice, bob = user(), user()
    async with (
        connect(live.url(f"?token={tokens.access(alice)}")) as a1,
        connect(live.url(f"?token={tokens.access(alice)}")) as a2,
        connect(live.url(f"?token={tokens.access(bob)}")) as b,
    ):
        # Bob's first, then Alice's: were Bob's delivered to Alice, it would be her first message.
        await live.events(bob, "bob-bot", {"type": "bot_status", "botId": "bob-bot", "status": "stopped"})
        await live.events(
            alice, "alice-bot", {"type": "bot_status", "botId": "alice-bot", "status": "running"}
        )
        for ws in (a1, a2):
            assert (await next_json(ws))["botId"] == "alice-bot"
        assert (await next_json(b))["botId"] == "bob-bot"


def consumed_events() -> float:
    """User-events messages delivered to a consumer of this process (the gateway under test)."""
    return metrics.REGISTRY.get_sample_value(CONSUMED, {"exchange": EVENTS_EXCHANGE}) or 0.0


async def test_a_replica_takes_only_the_events_of_users_with_a_socket_open_on_it(
    live: Live, tokens: Tokens
) -> None:
    alice, bob = user(), user()
    async with connect(live.url(f"?token={tokens.access(alice)}")):
        assert live.hub.routes.bound == {alice}
    await eventually(
        lambda: not live.hub.routes.bound, timeout=DEADLINE, message="alice's events still bound"
    )
    async with connect(live.url(f"?token={tokens.access(bob)}")) as b:
        before = consumed_events()
        # Alice's first: were it routed here, the replica would take it before Bob's (one queue, in order).
        await live.events(
            alice, "alice-bot", {"type": "bot_status", "botId": "alice-bot", "status": "running"}
        )
        await live.events(bob, "bob-bot", {"type": "bot_status", "botId": "bob-bot", "status": "stopped"})
        assert (await next_json(b))["botId"] == "bob-bot"
        assert consumed_events() - before == 1


async def test_a_socket_opened_as_the_users_last_one_closes_still_gets_their_events(
    live: Live, tokens: Tokens
) -> None:
    me = user()
    for n in range(20):
        # Closed without waiting for the unbind it starts: the next handshake races it.
        ws = await connect(live.url(f"?token={tokens.access(me)}"))
        await ws.close()
        async with connect(live.url(f"?token={tokens.access(me)}")) as again:
            await live.events(
                me, f"bot-{n}", {"type": "bot_status", "botId": f"bot-{n}", "status": "running"}
            )
            assert (await next_json(again))["botId"] == f"bot-{n}"


async def test_trades_and_levels_are_flattened_with_their_side(live: Live, tokens: Tokens) -> None:
    me = user()
    sold = trade("sell") | {"profit": 200}
    level = {"_id": "l-3", "price": 50500000.5, "type": "sell", "status": "pending", "orderId": "o-2"}
    stats = {"currentProfit": 200, "profitPercent": 1.25, "totalTrades": 2, "lastExecutedAt": None}
    async with connect(live.url(f"?token={tokens.access(me)}")) as ws:
        await live.events(
            me,
            "b1",
            {"type": "trade", "botId": "b1", "trade": sold},
            {"type": "grid_level", "botId": "b1", "level": level},
            {"type": "something_new", "botId": "b1"},  # a kind we do not know is not forwarded
            {"type": "bot_stats", "botId": "b1", **stats},
            {"type": "bot_status", "botId": "b1", "status": "error", "errorMessage": "잔액이 부족합니다"},
        )
        got = [await next_json(ws) for _ in range(4)]
    expected_trade = {k: v for k, v in sold.items() if k != "type"} | {
        "type": "trade",
        "botId": "b1",
        "side": "sell",
    }
    assert got[0] == json.loads(json.dumps(expected_trade), parse_float=Decimal)
    assert got[1] == {
        "type": "grid_level",
        "botId": "b1",
        "_id": "l-3",
        "price": Decimal("50500000.5"),
        "side": "sell",
        "status": "pending",
        "orderId": "o-2",
    }
    assert got[2] == {
        "type": "bot_stats",
        "botId": "b1",
        **json.loads(json.dumps(stats), parse_float=Decimal),
    }
    assert got[3] == {
        "type": "bot_status",
        "botId": "b1",
        "status": "error",
        "errorMessage": "잔액이 부족합니다",
    }


async def test_a_message_whose_payload_names_another_user_is_dropped(live: Live, tokens: Tokens) -> None:
    me, other = user(), user()
    async with connect(live.url(f"?token={tokens.access(me)}")) as ws:
        forged = {
            "userId": other,
            "botId": "x",
            "events": [{"type": "bot_status", "botId": "x", "status": "stopped"}],
        }
        await live.bus.publish(EVENTS_EXCHANGE, user_events_key(me), forged)
        await live.events(me, "mine", {"type": "bot_status", "botId": "mine", "status": "running"})
        assert (await next_json(ws))["botId"] == "mine"


# --- prices ----------------------------------------------------------------------------------


def tick(exchange: Exchange, ticker: str, price: str, seq: int) -> PriceTick:
    """A price tick as market-data publishes it."""
    now = datetime.now(UTC)
    last = Decimal(price)
    return PriceTick(
        exchange=exchange,
        ticker=ticker,
        last=last,
        high=last,
        low=last,
        seq=seq,
        epoch="e1",
        trades=1,
        first_trade_at=now,
        last_trade_at=now,
        published_at=now,
    )


async def publish_tick(bus: Bus, t: PriceTick) -> None:
    """Publish a display tick as market-data does (non-persistent)."""
    await bus.publish(MARKET_EXCHANGE, display_routing_key(t.exchange, t.ticker), t, persistent=False)


async def test_prices_of_the_users_bots_are_pushed_throttled_to_the_latest(
    live: Live, tokens: Tokens
) -> None:
    me, other = user(), user()
    eth = (Exchange.UPBIT, "KRW-ETH")
    live.bots[me] = [{"_id": "b-eth", "exchange": "upbit", "ticker": "KRW-ETH"}]
    async with (
        connect(live.url(f"?token={tokens.access(me)}")) as ws,
        connect(live.url(f"?token={tokens.access(other)}")) as theirs,
    ):
        await eventually(lambda: eth in live.hub.feeds.active, timeout=DEADLINE, message="never subscribed")
        await publish_tick(live.bus, tick(*eth, "4012345.5", 1))
        first = await next_json(ws)
        assert first["type"] == "price" and (first["exchange"], first["ticker"]) == ("upbit", "KRW-ETH")
        assert first["price"] == Decimal("4012345.5") and first["timestamp"].endswith("Z")
        started = asyncio.get_running_loop().time()
        for seq, price in enumerate(["4012000", "4011000", "4010000.25"], start=2):
            await publish_tick(live.bus, tick(*eth, price, seq))
        second = await next_json(ws)
        # At most one per ticker per second, and the one sent is the newest.
        assert second["price"] == Decimal("4010000.25")
        assert asyncio.get_running_loop().time() - started >= 0.8
        # The other user has no bot on that ticker: their first message is their own event.
        await live.events(other, "theirs", {"type": "bot_status", "botId": "theirs", "status": "running"})
        assert (await next_json(theirs))["type"] == "bot_status"

        # A bot started later (bot lifecycle on the bus) adds its ticker.
        btc = (Exchange.BINANCE, "BTCUSDT")
        started_bot = BotLifecycle(
            bot_id="b-btc", user_id=me, exchange=Exchange.BINANCE, ticker="BTCUSDT", status=BotStatus.RUNNING
        )
        await live.bus.publish(BOTS_EXCHANGE, BotEvent.START.value, started_bot)
        await eventually(lambda: btc in live.hub.feeds.active, timeout=DEADLINE, message="bot.start ignored")
        await publish_tick(live.bus, tick(*btc, "97000.01", 1))
        assert (await next_json(ws))["price"] == Decimal("97000.01")
    # Nobody left who needs a price: the subscriptions go.
    await eventually(lambda: not live.hub.feeds.active, timeout=DEADLINE)


# --- closing ---------------------------------------------------------------------------------


async def test_logout_closes_the_tokens_sockets(live: Live, tokens: Tokens, redis_cache: Cache) -> None:
    me = user()
    issued = tokens.service.issue(TokenType.ACCESS, user_id=me, email="u@example.com")
    async with (
        connect(live.url(f"?token={issued.token}")) as ws,
        connect(live.url(f"?token={tokens.access(me)}")) as other_device,
    ):
        await RevocationList(redis_cache).revoke(issued.jti, issued.expires_at)
        assert await closed(ws) == (1008, "INVALID_TOKEN")
        # The same user's other token (another device) keeps its socket.
        await live.events(me, "b1", {"type": "bot_status", "botId": "b1", "status": "running"})
        assert (await next_json(other_device))["botId"] == "b1"


async def test_a_slow_client_is_disconnected_without_holding_up_the_others(
    bus_url: str, namespace: str, redis_url: str, tokens: Tokens
) -> None:
    async with start_live(bus_url, namespace, redis_url, tokens, ws_send_queue_size=8) as live:
        me = user()
        token = tokens.access(me)
        stuck = StuckClient()
        stuck_task = asyncio.create_task(live.app(stuck.scope(token), stuck.receive, stuck.send))
        await eventually(lambda: stuck.accepted, timeout=DEADLINE)
        async with connect(live.url(f"?token={token}")) as fast:
            for n in range(10):
                await live.events(
                    me,
                    "b1",
                    {"type": "trade", "botId": "b1", "trade": trade() | {"orderId": f"o-{n}"}},
                    {"type": "bot_status", "botId": "b1", "status": "running"},
                )
            got = [await next_json(fast) for _ in range(20)]
            assert [g["orderId"] for g in got if g["type"] == "trade"] == [f"o-{n}" for n in range(10)]
            async with asyncio.timeout(DEADLINE):
                await stuck_task
            assert stuck.closed_with == (1013, "slow consumer")
            assert live.hub.sockets_of(me) == 1
        stuck.leave.set()


class StuckClient:
    """An ASGI WebSocket peer that accepts but never takes a message off the wire."""

    def __init__(self) -> None:
        self.accepted = False
        self.closed_with: tuple[int, str] | None = None
        self.leave = asyncio.Event()
        self._connected = False

    def scope(self, token: str) -> dict[str, Any]:
        """The connection's ASGI scope."""
        return {
            "type": "websocket",
            "path": "/api/ws",
            "raw_path": b"/api/ws",
            "query_string": f"token={token}".encode(),
            "headers": [],
            "client": ("203.0.113.9", 1),
            "server": ("gateway.test", 80),
            "scheme": "ws",
            "subprotocols": [],
        }

    async def receive(self) -> dict[str, Any]:
        """Connect once, then nothing until the test lets it leave."""
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        await self.leave.wait()
        return {"type": "websocket.disconnect", "code": 1001}

    async def send(self, message: dict[str, Any]) -> None:
        """Accept and close are taken; a data frame never leaves (a full TCP window)."""
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.close":
            self.closed_with = (message["code"], message.get("reason", ""))
        else:
            await asyncio.Event().wait()
