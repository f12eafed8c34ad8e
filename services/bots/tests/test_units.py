"""Pieces without infrastructure: JSON numbers, trade figures, the market catalog, the credentials client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bots.credentials_client import CredentialsClient
from bots.markets import MarketCatalog
from bots.schemas import CreateBotRequest, UpdateBotRequest, parse_date
from bots.service import initial_buy_cost
from bots.settings import Settings
from bots.stats import TradeStats, base_asset, performance, running_days
from bots.views import number
from common.cache import InMemoryCache
from common.errors import AppError, ErrorCode
from common.exchanges import Exchange, ExchangeBudget, ExchangeSettings
from common.grid import MarketRules
from common.testing.wait import eventually
from common.web import dumps

# The catalogs here get fake clients: nothing reaches an exchange, nothing is charged.
_BUDGET = ExchangeBudget(InMemoryCache())

D = Decimal
BODY: dict[str, Any] = {
    "exchange": "upbit",
    "ticker": "KRW-BTC",
    "lowerPrice": 50000000,
    "upperPrice": 70000000,
    "priceChangePercent": 2,
    "orderAmount": 10000,
}


@pytest.mark.parametrize(
    ("sent", "exact"),
    [
        (0.1, D("0.1")),
        (2.5, D("2.5")),
        (50000000, D(50000000)),
        (1e-7, D("1E-7")),
        (0.30000000000000004, D("0.30000000000000004")),
    ],
)
def test_json_numbers_become_the_decimal_the_client_wrote(sent: float | int, exact: Decimal) -> None:
    body = CreateBotRequest.model_validate({**BODY, "priceChangePercent": sent})
    assert body.price_change_percent == exact


@pytest.mark.parametrize("sent", [True, "2", None, float("nan"), float("inf"), 1e30, [2], 1e-19])
def test_anything_but_a_sane_json_number_is_refused(sent: Any) -> None:
    with pytest.raises(ValidationError):
        CreateBotRequest.model_validate({**BODY, "priceChangePercent": sent})


def test_update_needs_a_field_and_refuses_nulls() -> None:
    assert UpdateBotRequest.model_validate({"stopAtMax": False}).stop_at_max is False
    assert UpdateBotRequest.model_validate({"gridType": "arithmetic"}).changes_geometry
    assert not UpdateBotRequest.model_validate({"orderAmount": 6000}).changes_geometry
    for bad in ({}, {"orderAmount": None}, {"gridType": None}, {"stopAtMax": None}):
        with pytest.raises(ValidationError):
            UpdateBotRequest.model_validate(bad)


def test_dates() -> None:
    assert parse_date("d", "2025-01-23", end=False) == datetime(2025, 1, 23, tzinfo=UTC)
    assert parse_date("d", "2025-01-23", end=True) == datetime(2025, 1, 24, tzinfo=UTC)
    assert parse_date("d", "2025-01-23T10:30:00.000Z", end=False) == datetime(2025, 1, 23, 10, 30, tzinfo=UTC)
    assert parse_date("d", "2025-01-23T10:30:00", end=False) == datetime(2025, 1, 23, 10, 30, tzinfo=UTC)
    assert parse_date("d", None, end=False) is None
    with pytest.raises(AppError) as info:
        parse_date("startDate", "23/01/2025", end=False)
    assert info.value.details == {
        "fields": [{"field": "startDate", "reason": "must be an ISO 8601 date or date-time"}]
    }


def test_wire_numbers() -> None:
    assert number(D("160000.000")) == 160000 and isinstance(number(D("160000.0")), int)
    assert number(D("9.38")) == D("9.38") and number(D("1E+3")) == 1000
    # Written digit for digit: 18 decimals of a profit survive the wire, where a float keeps ~16 digits.
    assert dumps({"p": number(D("1.123456789012345678"))}) == b'{"p":1.123456789012345678}'
    assert dumps([number(D("0.00000001")), D("2.50"), D("160000.000")]) == b"[0.00000001,2.5,160000]"


def test_base_assets() -> None:
    assert base_asset(Exchange.UPBIT, "KRW-BTC") == "BTC"
    assert base_asset(Exchange.BINANCE, "ETHUSDT") == "ETH"


def test_binance_fees_in_base_and_quote() -> None:
    # Binance: the buy's fee is taken in BTC, the sell's in USDT.
    stats = TradeStats()
    stats.add("buy", "base", 1, D("0.001"), D(100), D("0.000001"), D(0), None)
    stats.add("sell", "quote", 1, D("0.000999"), D("101.898"), D("0.101898"), D("1.796102"), None)
    assert stats.held_base == 0
    # Cost of what was sold = 101.898 − 0.101898 − 1.796102 = 100: exactly the buy's quote.
    assert stats.held_cost == 0
    figures = performance(stats, D(1000), None, None, datetime.now(UTC))
    assert figures["currentValue"] == D("1001.796102") and figures["runningDays"] == 1


def test_held_base_needs_a_price() -> None:
    stats = TradeStats()
    stats.add("buy", "quote", 1, D("0.0002"), D(10000), D(5), D(0), None)
    with pytest.raises(ValueError, match="price"):
        performance(stats, D(160000), None, None, datetime.now(UTC))
    figures = performance(stats, D(160000), D(60000000), None, datetime.now(UTC))
    assert figures["currentValue"] == D(160000) + D(12000) - D(10005)


def test_running_days() -> None:
    now = datetime(2025, 1, 30, tzinfo=UTC)
    assert running_days(None, now) == 1
    assert running_days(now - timedelta(hours=3), now) == 1
    assert running_days(now - timedelta(days=2, hours=23), now) == 2


def test_initial_buys_count_slots_strictly_below_the_market() -> None:
    rules = MarketRules.upbit_krw(base="BTC")
    prices = [D(100000), D(102000), D(104000), D(106000)]
    assert initial_buy_cost(rules, prices, D(10000), D(100000)) == 0  # at the market: not below
    one = initial_buy_cost(rules, prices, D(10000), D(100001))
    assert D("9999") < one <= D(10000)
    assert initial_buy_cost(rules, prices, D(10000), D(1000000)) == one + initial_buy_cost(
        rules, prices[1:], D(10000), D(1000000)
    )


class FakeClient:
    """A ccxt client stand-in that counts market loads."""

    def __init__(self, fail: Callable[[], bool] = lambda: False) -> None:
        self.loads = 0
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()
        self.markets_by_id: dict[str, list[dict[str, Any]]] = {}

    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        self.loads += 1
        await self.gate.wait()
        if self.fail():
            import ccxt

            raise ccxt.ExchangeNotAvailable("down")
        self.markets_by_id = {"KRW-BTC": [{"id": "KRW-BTC", "symbol": "BTC/KRW", "spot": True}]}
        return {}

    def market(self, symbol: str) -> dict[str, Any]:
        return {"symbol": symbol}

    async def close(self) -> None:
        return None


async def test_catalog_loads_once_for_concurrent_requests_and_again_after_the_ttl() -> None:
    client = FakeClient()
    now = [0.0]
    catalog = MarketCatalog(
        ExchangeSettings(), 60, _BUDGET, client_factory=lambda e, s: client, clock=lambda: now[0]
    )
    client.gate.clear()
    waiting = [asyncio.create_task(catalog.market(Exchange.UPBIT, "KRW-BTC")) for _ in range(5)]
    # All five are in: the first inside load_markets (held at the gate), the others queued behind it.
    await eventually(lambda: client.loads == 1)
    client.gate.set()
    assert [m["symbol"] for m in await asyncio.gather(*waiting)] == ["BTC/KRW"] * 5
    assert client.loads == 1
    now[0] = 59
    await catalog.market(Exchange.UPBIT, "KRW-BTC")
    assert client.loads == 1
    now[0] = 61
    await catalog.market(Exchange.UPBIT, "KRW-BTC")
    assert client.loads == 2
    with pytest.raises(AppError) as info:
        await catalog.market(Exchange.UPBIT, "KRW-NOPE")
    assert info.value.code is ErrorCode.TICKER_NOT_FOUND


async def test_catalog_keeps_old_markets_when_a_reload_fails_but_not_when_it_has_none() -> None:
    failing = [False]
    client = FakeClient(fail=lambda: failing[0])
    now = [0.0]
    settings = ExchangeSettings(exchange_timeout_seconds=0.5)
    catalog = MarketCatalog(settings, 60, _BUDGET, client_factory=lambda e, s: client, clock=lambda: now[0])
    await catalog.market(Exchange.UPBIT, "KRW-BTC")
    failing[0], now[0] = True, 100
    assert (await catalog.market(Exchange.UPBIT, "KRW-BTC"))["symbol"] == "BTC/KRW"
    cold = MarketCatalog(settings, 60, _BUDGET, client_factory=lambda e, s: FakeClient(fail=lambda: True))
    with pytest.raises(AppError) as info:
        await cold.market(Exchange.BINANCE, "BTCUSDT")
    assert info.value.code is ErrorCode.EXCHANGE_API_ERROR


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> CredentialsClient:
    return CredentialsClient("http://credentials", "token-x", 1.0, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("enveloped", [False, True])
async def test_client_reads_bare_and_enveloped_answers_and_sends_the_token(enveloped: bool) -> None:
    seen: list[httpx.Request] = []
    answer = {"isValid": True, "currency": "USDT", "free": "12.5"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "data": answer} if enveloped else answer)

    client = _client(handler)
    balance = await client.balance("user/1", Exchange.BINANCE)
    assert (balance.is_valid, balance.currency, balance.free) == (True, "USDT", D("12.5"))
    assert seen[0].url.raw_path == b"/internal/credentials/user%2F1/binance/balance"
    assert seen[0].headers["authorization"] == "Bearer token-x"
    await client.close()


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (404, {"success": False}, ErrorCode.CREDENTIAL_NOT_FOUND),
        (401, {"success": False}, ErrorCode.SERVICE_UNAVAILABLE),
        (500, {}, ErrorCode.SERVICE_UNAVAILABLE),
        (502, {}, ErrorCode.EXCHANGE_API_ERROR),
        (200, {"isValid": "yes", "currency": "KRW", "free": "1"}, ErrorCode.SERVICE_UNAVAILABLE),
        (200, {"isValid": True, "currency": "USDT", "free": "1"}, ErrorCode.SERVICE_UNAVAILABLE),
        (200, {"isValid": True, "currency": "KRW", "free": "lots"}, ErrorCode.SERVICE_UNAVAILABLE),
    ],
)
async def test_client_maps_every_failure(status: int, body: dict[str, Any], code: ErrorCode) -> None:
    client = _client(lambda _: httpx.Response(status, json=body))
    with pytest.raises(AppError) as info:
        await client.balance("u", Exchange.UPBIT)
    assert info.value.code is code
    await client.close()


def test_production_refuses_the_development_internal_tokens() -> None:
    strong = "a-production-jwt-secret-0123456789abcdef-0123456789abcdef"
    with pytest.raises(ValidationError, match="internal_balance_token, internal_tickers_token"):
        Settings(environment="production", jwt_secret=strong)
    balance, tickers = "b" * 24 + "9f3k2m1x8q7w", "t" * 24 + "9f3k2m1x8q7w"
    with pytest.raises(
        ValidationError, match="INTERNAL_BALANCE_TOKEN and INTERNAL_TICKERS_TOKEN must differ"
    ):
        Settings(
            environment="production",
            jwt_secret=strong,
            internal_balance_token=balance,
            internal_tickers_token=balance,
        )
    accepted = Settings(
        environment="production",
        jwt_secret=strong,
        internal_balance_token=balance,
        internal_tickers_token=tickers,
    )
    assert accepted.port == 3003 and accepted.default_bot_mode == "paper"
    assert accepted.stop_confirm_timeout_seconds < 10  # the gateway's default upstream timeout
