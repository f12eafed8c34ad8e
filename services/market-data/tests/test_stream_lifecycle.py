"""Stream lifecycle: rotation without a gap, silent connections, request rate limits, the bots start-up query."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from common.contracts.market import PriceTick
from common.exchanges.ids import Exchange
from common.testing.infra import free_port
from common.testing.wait import eventually
from market_data.main import Runtime
from market_data.streams.base import RateLimiter
from market_data.testing import PriceMover, TickSink, wait_for_topics

SILENT_PORT = free_port()
BOTS_PORT = free_port()
INTERNAL_TOKEN = "market-data-tests-internal-token-0123456789abcdef"


def _priced(ticker: str, price: Decimal) -> Callable[[PriceTick], bool]:
    return lambda t: t.ticker == ticker and t.last == price


@pytest.mark.settings(binance_rotate_seconds=1.0)
async def test_binance_connection_is_rotated_without_losing_or_doubling_trades(
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    ticks: TickSink,
    set_price: PriceMover,
    runtime: Runtime,
) -> None:
    assert (await client.get("/api/exchange/price/binance/XRPUSDT")).status_code == 200
    await wait_for_topics(sim_http, "binance:xrpusdt@trade")
    stream = runtime.streams[Exchange.BINANCE]
    sent = 0
    deadline = time.monotonic() + 10
    # Keep trading across at least two rotations.
    while stream.state.rotations < 2:
        assert time.monotonic() < deadline, "no rotation"
        sent += 1
        price = Decimal(f"2.{1000 + sent}")
        await set_price("binance", "XRPUSDT", str(price))
        await ticks.wait_for(_priced("XRPUSDT", price))
    assert stream.state.reconnects == 0 and stream.state.status == "connected"
    mine = ticks.of("binance", "XRPUSDT")
    assert sum(t.trades for t in mine) == sent  # every trade once: none lost, overlap deduplicated
    assert [t.seq for t in mine] == list(range(1, len(mine) + 1))
    topics = (await sim_http.get("/_sim/health")).json()["websocketTopics"]
    assert topics.get("binance:xrpusdt@trade") == 1  # the old connection is gone


@pytest.fixture
async def silent_server() -> AsyncIterator[list[str]]:
    """A WebSocket server that accepts, records what it is sent, and never answers."""
    received: list[str] = []

    async def handler(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            received.append(message if isinstance(message, str) else message.decode())

    async with websockets.serve(handler, "127.0.0.1", SILENT_PORT, ping_interval=None):
        yield received


@pytest.mark.settings(
    upbit_ws_url=f"ws://127.0.0.1:{SILENT_PORT}/upbit/websocket/v1",
    stream_silent_seconds=0.3,
    stream_probe_timeout_seconds=0.3,
    stream_backoff_initial_seconds=0.05,
)
async def test_a_silent_connection_is_probed_then_replaced(
    silent_server: list[str], client: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert (await client.get("/api/exchange/price/upbit/KRW-XRP")).status_code == 200
    stream = runtime.streams[Exchange.UPBIT]
    await eventually(lambda: stream.state.reconnects >= 2, timeout=10)
    assert "PING" in silent_server
    assert any('"codes":["KRW-XRP"]' in message for message in silent_server)
    assert stream.state.last_error == "silent connection"


@pytest.mark.settings(stream_silent_seconds=0.3, stream_probe_timeout_seconds=1.0)
async def test_a_quiet_but_alive_connection_is_kept(
    client: httpx.AsyncClient, sim_http: httpx.AsyncClient, runtime: Runtime
) -> None:
    for path in ("/api/exchange/price/upbit/KRW-SOL", "/api/exchange/price/binance/SOLUSDT"):
        assert (await client.get(path)).status_code == 200
    await wait_for_topics(sim_http, "upbit:trade:KRW-SOL", "binance:solusdt@trade")
    upbit = runtime.streams[Exchange.UPBIT]
    frames = upbit.state.frames
    # The paused market sends nothing: Upbit's PING is answered ({"status":"UP"}), Binance's ping ponged.
    await eventually(lambda: upbit.state.frames >= frames + 3, timeout=5)
    assert all(s.state.reconnects == 0 and s.state.status == "connected" for s in runtime.streams.values())


async def test_the_request_rate_limiter_spaces_messages() -> None:
    limiter = RateLimiter([(3, 0.2), (5, 1.0)])
    started = time.monotonic()
    stamps = []
    for _ in range(6):
        await limiter.acquire()
        stamps.append(time.monotonic() - started)
    assert stamps[2] < 0.1 <= stamps[3]  # the 4th waits for the 0.2 s window
    assert stamps[5] >= 1.0  # the 6th waits for the 1 s window


@pytest.fixture
async def bots_service() -> AsyncIterator[list[int]]:
    """A stand-in for the bots service's internal route (counts the queries)."""
    queries: list[int] = []

    async def running(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {INTERNAL_TOKEN}":
            return JSONResponse({"success": False}, status_code=401)
        queries.append(1)
        return JSONResponse(
            {"tickers": [{"exchange": "binance", "ticker": "ETHUSDT"}, {"exchange": "nope", "ticker": "X"}]}
        )

    app = Starlette(routes=[Route("/internal/bots/running-tickers", running)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=BOTS_PORT, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=5)
    yield queries
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.settings(bots_url=f"http://127.0.0.1:{BOTS_PORT}", internal_tickers_token=INTERNAL_TOKEN)
async def test_running_tickers_are_asked_for_at_start_up(
    bots_service: list[int], sim_http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await wait_for_topics(sim_http, "binance:ethusdt@trade", "binance:ethusdt@miniTicker")
    assert bots_service and runtime.registry.wanted(Exchange.BINANCE) == frozenset({"ETHUSDT"})


@pytest.mark.settings(bots_url="http://127.0.0.1:9")
async def test_an_unreachable_bots_service_is_not_fatal(client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert (await client.get("/health")).status_code == 200
    assert runtime.registry.wanted(Exchange.BINANCE) == frozenset()
