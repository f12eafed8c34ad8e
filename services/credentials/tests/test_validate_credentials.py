"""POST /exchange/validate-credentials and the exchange failures of every validating route."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import pytest

from common.cache import InMemoryCache
from common.exchanges import Exchange, ExchangeBudget, create_ccxt
from common.metrics import REGISTRY
from credentials.settings import Settings
from credentials.testing import SimKeys, User, error_code

Mint = Callable[..., Awaitable[SimKeys]]
VALIDATE = "/api/exchange/validate-credentials"


@pytest.mark.parametrize(
    ("exchange", "currency", "balance"), [("upbit", "KRW", 1_234_567), ("binance", "USDT", 4321.5)]
)
async def test_valid_keys_report_the_quote_balance(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    exchange: str,
    currency: str,
    balance: float,
) -> None:
    user = new_user()
    keys = await mint(krw="1234567", usdt="4321.5")
    response = await client.post(VALIDATE, json=keys.body(exchange), headers=user.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "API 인증 정보가 유효합니다"
    assert body["data"] == {
        "isValid": True,
        "accountInfo": {"currency": currency, "balance": balance, "locked": 0, "avgBuyPrice": 0},
    }
    # Validation stores nothing.
    assert (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"] == []


async def test_locked_funds_are_reported(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint, settings: Settings
) -> None:
    keys = await mint(usdt="1000")
    budget = ExchangeBudget(InMemoryCache())
    exchange = create_ccxt(
        Exchange.BINANCE, settings, budget=budget, api_key=keys.api_key, secret=keys.secret_key
    )
    exchange.logger = _quiet_ccxt_logger()
    try:
        # A resting buy far below the market locks price x quantity of USDT.
        await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 10000)
    finally:
        await exchange.close()
    response = await client.post(VALIDATE, json=keys.body("binance"), headers=new_user().auth)
    info = response.json()["data"]["accountInfo"]
    assert Decimal(str(info["balance"])) == Decimal("990")
    assert Decimal(str(info["locked"])) == Decimal("10")


@pytest.mark.parametrize("exchange", ["upbit", "binance"])
async def test_rejected_keys_are_invalid_credentials_and_nothing_is_stored(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint, exchange: str
) -> None:
    user = new_user()
    keys, other = await mint(), await mint()
    wrong_secret = SimKeys(keys.api_key, other.secret_key)
    unknown_key = SimKeys("A" * 64, keys.secret_key)
    refused = {"exchange": exchange, "outcome": "INVALID_CREDENTIALS"}
    before = REGISTRY.get_sample_value("gridbot_credentials_validations_total", refused) or 0.0
    for bad in (wrong_secret, unknown_key):
        validated = await client.post(VALIDATE, json=bad.body(exchange), headers=user.auth)
        assert validated.status_code == 400
        assert error_code(validated) == "INVALID_CREDENTIALS"
        assert validated.json()["error"]["message"] == "잘못된 API 인증 정보입니다"
        stored = await client.post("/api/credentials", json=bad.body(exchange), headers=user.auth)
        assert stored.status_code == 400 and error_code(stored) == "INVALID_CREDENTIALS"
        assert bad.secret_key not in stored.text
    assert (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"] == []
    # Two validations and two stores, each refused: counted by outcome (GET /metrics of the service).
    assert REGISTRY.get_sample_value("gridbot_credentials_validations_total", refused) == before + 4


@pytest.mark.settings(exchange_timeout_seconds=1.0)
@pytest.mark.parametrize(
    ("fault", "exchange", "prefix"),
    [
        ("http_500", "upbit", "/v1/accounts"),
        ("http_429", "binance", "/api/v3/account"),
        ("timeout", "binance", "/api/v3/account"),
    ],
)
async def test_exchange_trouble_is_502_within_bounded_time(
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    settings: Settings,
    fault: str,
    exchange: str,
    prefix: str,
) -> None:
    user = new_user()
    keys = await mint()
    injected = await sim_http.post(
        "/_sim/faults", json={"kind": fault, "count": 20, "exchange": exchange, "path_prefix": prefix}
    )
    assert injected.status_code == 201, injected.text
    for path in (VALIDATE, "/api/credentials"):
        started = time.monotonic()
        response = await client.post(path, json=keys.body(exchange), headers=user.auth)
        elapsed = time.monotonic() - started
        assert response.status_code == 502, response.text
        assert error_code(response) == "EXCHANGE_API_ERROR"
        assert response.json()["error"]["message"] == "거래소 API 오류가 발생했습니다"
        assert elapsed < settings.exchange_timeout_seconds + 1.5
    assert (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"] == []


async def test_a_single_transient_error_is_retried(
    client: httpx.AsyncClient, sim_http: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    keys = await mint()
    await sim_http.post(
        "/_sim/faults",
        json={"kind": "http_500", "count": 1, "exchange": "upbit", "path_prefix": "/v1/accounts"},
    )
    response = await client.post(VALIDATE, json=keys.body("upbit"), headers=new_user().auth)
    assert response.status_code == 200, response.text
    assert (await sim_http.get("/_sim/faults")).json() == []  # the one fault was consumed


def _quiet_ccxt_logger() -> object:
    import logging

    quiet = logging.getLogger("tests.ccxt")
    quiet.setLevel(logging.WARNING)
    return quiet


async def test_markets_are_loaded_once_per_exchange(
    client: httpx.AsyncClient, sim_http: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    user = new_user()
    keys = await mint()
    assert (await client.post(VALIDATE, json=keys.body("binance"), headers=user.auth)).status_code == 200
    # exchangeInfo now fails: a validation that needed it again would fail too.
    await sim_http.post(
        "/_sim/faults",
        json={"kind": "http_500", "count": 10, "exchange": "binance", "path_prefix": "/api/v3/exchangeInfo"},
    )
    assert (await client.post(VALIDATE, json=keys.body("binance"), headers=user.auth)).status_code == 200
    assert (await sim_http.get("/_sim/faults")).json()[0]["remaining"] == 10


BUDGET_WEIGHT = 100  # Binance weight per minute in this test: five /account calls (20 each)


@pytest.mark.settings(
    exchange_budget_limits={"binance.weight": BUDGET_WEIGHT}, exchange_budget_wait_seconds=0
)
async def test_a_burst_of_validations_is_bounded_at_the_exchange(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint, sim_http: httpx.AsyncClient
) -> None:
    """Twenty validations at once: the exchange sees what the shared budget allows, the rest answer 503."""
    weights = {"/api/v3/account": 20, "/api/v3/exchangeInfo": 20}

    async def weight_received() -> int:
        counts = (await sim_http.get("/_sim/requests", params={"exchange": "binance"})).json()["requests"]
        return sum(n * weights.get(key.split(" ", 2)[2], 1) for key, n in counts.items())

    before = await weight_received()
    user = new_user()
    # Markets loaded once (exchangeInfo, 20) by a first validation, as a running service has them.
    first = await client.post(VALIDATE, json=(await mint()).body("binance"), headers=user.auth)
    assert first.status_code == 200, first.text
    keys = [await mint() for _ in range(20)]
    responses = await asyncio.gather(
        *(client.post(VALIDATE, json=k.body("binance"), headers=user.auth) for k in keys)
    )
    refused = [r for r in responses if r.status_code != 200]
    assert refused, "every validation reached the exchange"
    for response in refused:
        assert response.status_code == 503 and error_code(response) == "SERVICE_UNAVAILABLE", response.text
        assert response.json()["error"]["details"] == {"exchange": "binance", "reason": "exchange_budget"}
        assert 1 <= int(response.headers["retry-after"]) <= 60
    # A minute boundary may fall inside the burst: never more than two windows' worth.
    assert await weight_received() - before <= 2 * BUDGET_WEIGHT
