"""The REST API: envelopes, codes, and bounded answers when the exchange is down (memory bus and cache)."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from common.security import TokenService, TokenType
from market_data.settings import Settings
from market_data.testing import error_code

pytestmark = pytest.mark.settings(redis_url="memory://", rabbitmq_url="memory://")

ROUTES = (
    "/api/exchange/tickers/upbit",
    "/api/exchange/price/upbit/KRW-BTC",
    "/api/exchange/candles/binance/BTCUSDT",
)


@pytest.mark.parametrize("path", ROUTES)
async def test_every_route_needs_a_valid_token(
    path: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    anonymous = await client.get(path, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and error_code(anonymous) == "UNAUTHORIZED"
    other = TokenService.from_settings(
        settings.model_copy(update={"jwt_secret": settings.jwt_secret.__class__("x" * 64)})
    )
    forged = other.issue(TokenType.ACCESS, user_id="u", email="u@example.com").token
    bad = await client.get(path, headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and error_code(bad) == "INVALID_TOKEN"
    assert "x-request-id" in bad.headers


async def test_ticker_lists(client: httpx.AsyncClient) -> None:
    upbit = (await client.get("/api/exchange/tickers/upbit")).json()
    assert upbit["success"] is True
    rows = upbit["data"]["tickers"]
    assert {"symbol": "KRW-BTC", "koreanName": "비트코인", "englishName": "Bitcoin"} in rows
    assert all(row["symbol"].startswith("KRW-") for row in rows)
    binance = (await client.get("/api/exchange/tickers/binance")).json()["data"]["tickers"]
    assert {"symbol": "SOLUSDT", "koreanName": "Solana", "englishName": "Solana"} in binance
    assert all(row["koreanName"] == row["englishName"] for row in binance)


@pytest.mark.parametrize("path", [
    "/api/exchange/tickers/bithumb",
    "/api/exchange/price/kraken/BTCUSD",
    "/api/exchange/candles/ftx/BTCUSDT",
])  # fmt: skip
async def test_unsupported_exchange(path: str, client: httpx.AsyncClient) -> None:
    response = await client.get(path)
    assert response.status_code == 400 and error_code(response) == "UNSUPPORTED_EXCHANGE"


@pytest.mark.parametrize("path", [
    "/api/exchange/price/upbit/KRW-NOPE",
    "/api/exchange/price/binance/BTCUSD",
    "/api/exchange/price/binance/BTC.USDT",
    "/api/exchange/candles/upbit/KRW-NOPE",
    "/api/exchange/candles/binance/NOPEUSDT?interval=1h",
])  # fmt: skip
async def test_unknown_ticker(path: str, client: httpx.AsyncClient) -> None:
    response = await client.get(path)
    assert response.status_code == 404 and error_code(response) == "TICKER_NOT_FOUND"


@pytest.mark.parametrize("query", ["count=0", "count=1001", "count=abc", "interval=2m", "interval=1w"])
async def test_bad_candle_queries(query: str, client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/exchange/candles/upbit/KRW-BTC?{query}")
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    assert response.json()["error"]["details"]["fields"][0]["field"] in ("count", "interval")


async def test_price_envelope(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/exchange/price/binance/ETHUSDT")).json()
    assert body["success"] is True
    data = body["data"]
    assert data["ticker"] == "ETHUSDT"
    assert isinstance(data["currentPrice"], float) and data["currentPrice"] > 0
    assert isinstance(data["change24h"], float) and data["volume24h"] > 0
    datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))


async def test_one_minute_candles_oldest_first(client: httpx.AsyncClient) -> None:
    for exchange, ticker in (("upbit", "KRW-ETH"), ("binance", "BTCUSDT")):
        response = await client.get(f"/api/exchange/candles/{exchange}/{ticker}?interval=1m&count=30")
        candles = response.json()["data"]["candles"]
        assert len(candles) == 30, response.text
        starts = [datetime.fromisoformat(c["timestamp"].replace("Z", "+00:00")).timestamp() for c in candles]
        assert starts == sorted(starts) and all(int(s) % 60 == 0 for s in starts)
        assert all(
            c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"] for c in candles
        )
        assert set(candles[0]) == {"timestamp", "open", "high", "low", "close", "volume"}
    # Served again from the cache, the same history.
    again = (await client.get("/api/exchange/candles/binance/BTCUSDT?count=5")).json()["data"]["candles"]
    assert again == candles[-5:] or again[:-1] == candles[-4:]  # (unless a minute just closed)
    # More than the cache keeps (CANDLE_CACHE_SIZE 500) comes from the exchange.
    many = (await client.get("/api/exchange/candles/binance/BTCUSDT?count=800")).json()["data"]["candles"]
    assert len(many) == 800 and len({c["timestamp"] for c in many}) == 800


async def test_other_intervals(client: httpx.AsyncClient) -> None:
    for interval, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400)):
        candles = (
            await client.get(f"/api/exchange/candles/upbit/KRW-BTC?interval={interval}&count=3")
        ).json()["data"]["candles"]
        starts = [datetime.fromisoformat(c["timestamp"].replace("Z", "+00:00")).timestamp() for c in candles]
        assert 1 <= len(candles) <= 3 and starts == sorted(starts)
        assert all(int(s) % seconds == 0 for s in starts)


@pytest.mark.settings(candles_ttl_seconds=3600)
async def test_walking_every_count_costs_the_exchange_one_fetch(
    client: httpx.AsyncClient, sim_http: httpx.AsyncClient
) -> None:
    async def fetched(exchange: str, prefix: str) -> int:
        query = {"exchange": exchange, "path_prefix": prefix}
        return int((await sim_http.get("/_sim/requests", params=query)).json()["total"])

    counts = [1, 2, 3, 5, 8, 13, 50, 99, 100, 150, 199, 200]
    walks = (
        ("binance", "SOLUSDT", "4h", "/api/v3/klines", [*counts, 499, 500, 999, 1000, 7]),
        ("binance", "ETHUSDT", "1m", "/api/v3/klines", [*counts, 300, 499, 500, 4]),  # the 1m cache (500)
        ("upbit", "KRW-SOL", "1h", "/v1/candles/minutes/60", counts),  # Upbit's page is 200
    )
    for exchange, ticker, interval, prefix, walk in walks:
        before = await fetched(exchange, prefix)
        for count in walk:
            response = await client.get(
                f"/api/exchange/candles/{exchange}/{ticker}?interval={interval}&count={count}"
            )
            assert response.status_code == 200, response.text
            assert 1 <= len(response.json()["data"]["candles"]) <= count
        assert await fetched(exchange, prefix) - before == 1, (
            f"{exchange} {interval}: one fetch for every count"
        )


async def test_more_upbit_candles_than_one_page(client: httpx.AsyncClient) -> None:
    candles = (await client.get("/api/exchange/candles/upbit/KRW-XRP?interval=5m&count=250")).json()["data"][
        "candles"
    ]
    starts = [c["timestamp"] for c in candles]
    # Upbit leaves out intervals without trades (the paused simulator has some): more than one page of 200.
    assert 200 < len(starts) <= 250 and len(set(starts)) == len(starts) and starts == sorted(starts)
    newest = datetime.fromisoformat(starts[-1].replace("Z", "+00:00")).timestamp()
    assert time.time() - newest < 600  # the newest 250, not some older page


@pytest.mark.settings(exchange_timeout_seconds=1.0)
@pytest.mark.parametrize(("kind", "bound"), [("http_500", 1.0), ("http_429", 1.0), ("timeout", 2.0)])
async def test_exchange_outage_is_a_bounded_502(
    kind: str, bound: float, client: httpx.AsyncClient, sim_http: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/exchange/tickers/upbit")).status_code == 200  # markets loaded
    fault = {"kind": kind, "count": 20, "exchange": "upbit", "path_prefix": "/v1/ticker"}
    assert (await sim_http.post("/_sim/faults", json=fault)).status_code == 201
    started = time.monotonic()
    response = await client.get("/api/exchange/price/upbit/KRW-SOL")
    assert response.status_code == 502 and error_code(response) == "EXCHANGE_API_ERROR"
    assert time.monotonic() - started < bound  # EXCHANGE_TIMEOUT_SECONDS is 1 s here


@pytest.mark.settings(exchange_timeout_seconds=1.0)
async def test_markets_unreachable_is_a_bounded_502(
    client: httpx.AsyncClient, sim_http: httpx.AsyncClient
) -> None:
    fault = {"kind": "timeout", "count": 20, "exchange": "binance", "path_prefix": "/api/v3/exchangeInfo"}
    assert (await sim_http.post("/_sim/faults", json=fault)).status_code == 201
    started = time.monotonic()
    response = await client.get("/api/exchange/tickers/binance")
    assert response.status_code == 502 and error_code(response) == "EXCHANGE_API_ERROR"
    assert time.monotonic() - started < 2.0
    await sim_http.delete("/_sim/faults")
    assert (await client.get("/api/exchange/tickers/binance")).status_code == 200


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"success": True, "data": {"status": "ok"}}
    ready = (await client.get("/health/ready")).json()
    assert ready["data"]["checks"] == {
        "cache": "ok",
        "bus": "ok",
        "stream:upbit": "ok",
        "stream:binance": "ok",
    }
