"""The exchange adapter against the simulator with real ccxt: URLs, ids, and error classification."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt.async_support as ccxt_async
import httpx
import pytest

from common.errors import AppError, ErrorCode
from common.exchanges import (
    ErrorKind,
    Exchange,
    ExchangeSettings,
    PermanentExchangeError,
    TransientExchangeError,
    call,
    ccxt_config,
    classify,
    native_ticker,
    parse_exchange,
    quote_currency,
    sim_exchange_env,
    to_app_error,
    unified_symbol,
)

pytestmark = pytest.mark.usefixtures("clean_faults")
Make = Callable[..., Any]


async def _fail(awaitable: Awaitable[Any]) -> PermanentExchangeError | TransientExchangeError:
    """The domain error an exchange call ends with (through `call`, without retries)."""

    async def invoke() -> Any:
        return await awaitable

    with pytest.raises((PermanentExchangeError, TransientExchangeError)) as info:
        await call(invoke, attempts=1)
    error = info.value
    assert isinstance(error, PermanentExchangeError | TransientExchangeError)
    return error


def test_exchange_ids_and_quotes() -> None:
    assert parse_exchange("upbit") is Exchange.UPBIT
    assert parse_exchange(" Binance ") is Exchange.BINANCE
    assert quote_currency(Exchange.UPBIT) == "KRW" and quote_currency(Exchange.BINANCE) == "USDT"
    with pytest.raises(AppError) as info:
        parse_exchange("bithumb")
    assert info.value.code is ErrorCode.UNSUPPORTED_EXCHANGE


def test_settings_default_to_the_real_exchanges_and_name_the_simulator() -> None:
    real = ExchangeSettings()
    assert real.rest_url(Exchange.UPBIT) == "https://api.upbit.com"
    assert real.ws_url(Exchange.BINANCE) == "wss://stream.binance.com:9443"
    assert real.binance_ws_api_url == "wss://ws-api.binance.com:443/ws-api/v3"
    assert real.uses_real_exchange(Exchange.BINANCE)
    # The real URLs need no overrides; Binance still stays on spot endpoints.
    config = ccxt_config(Exchange.BINANCE, real)
    assert "urls" not in config and config["options"]["defaultType"] == "spot"
    assert config["enableRateLimit"] is True and config["timeout"] == 5000
    assert (
        sim_exchange_env("http://127.0.0.1:8900")
        == ExchangeSettings.simulator()
        == {
            "UPBIT_REST_URL": "http://127.0.0.1:8900/upbit",
            "UPBIT_WS_URL": "ws://127.0.0.1:8900/upbit/websocket/v1",
            "BINANCE_REST_URL": "http://127.0.0.1:8900/binance",
            "BINANCE_WS_URL": "ws://127.0.0.1:8900/binance",
            "BINANCE_WS_API_URL": "ws://127.0.0.1:8900/binance/ws-api/v3",
        }
    )


def test_overrides_move_every_rest_url_onto_the_configured_base(exchange_settings: ExchangeSettings) -> None:
    config = ccxt_config(Exchange.BINANCE, exchange_settings, api_key="k" * 20, secret="s" * 20)
    base = exchange_settings.binance_rest_url
    urls = [u for u in config["urls"]["api"].values() if isinstance(u, str)]
    assert urls and all(u.startswith(base + "/") for u in urls)
    assert config["urls"]["api"]["public"] == base + "/api/v3"
    assert config["urls"]["api"]["ws"]["spot"] == exchange_settings.binance_ws_url + "/ws"
    spot_table = ccxt_async.binance().describe()["exceptions"]["spot"]["exact"]
    assert set(spot_table) <= set(config["exceptions"]["exact"])  # the spot error table, merged
    upbit = ccxt_config(Exchange.UPBIT, exchange_settings)
    assert upbit["urls"]["api"]["public"] == exchange_settings.upbit_rest_url


async def test_tickers_map_to_unified_symbols_through_loaded_markets(ccxt_client: Make) -> None:
    for exchange, ticker, symbol in (
        (Exchange.UPBIT, "KRW-BTC", "BTC/KRW"),
        (Exchange.BINANCE, "ETHUSDT", "ETH/USDT"),
    ):
        client = ccxt_client(exchange)
        await client.load_markets()
        assert unified_symbol(client, ticker) == symbol
        assert native_ticker(client, symbol) == ticker
        with pytest.raises(AppError) as info:
            unified_symbol(client, "NOPE")
        assert info.value.code is ErrorCode.TICKER_NOT_FOUND


async def test_bad_keys_are_authentication_errors(ccxt_client: Make) -> None:
    keys = {"apiKey": "A" * 32, "secretKey": "B" * 32}
    for exchange in Exchange:
        error = await _fail(ccxt_client(exchange, keys).fetch_balance())
        assert isinstance(error, PermanentExchangeError) and error.kind is ErrorKind.AUTHENTICATION
        assert to_app_error(error).code is ErrorCode.INVALID_CREDENTIALS
        assert "B" * 32 not in str(error)


async def test_a_key_deleted_after_it_worked_is_refused_for_good(
    ccxt_client: Make, new_account: Callable[..., Awaitable[dict[str, str]]], http: httpx.AsyncClient
) -> None:
    keys = await new_account(KRW=10_000, USDT=10)
    clients = {exchange: ccxt_client(exchange, keys) for exchange in Exchange}
    for client in clients.values():
        await client.fetch_balance()  # signed in once: ccxt reads Binance's -2015 differently afterwards
    await http.post(f"/_sim/accounts/{keys['apiKey']}/revoke")
    for exchange, client in clients.items():
        error = await _fail(client.fetch_balance())
        assert isinstance(error, PermanentExchangeError), (exchange, error)
        assert error.kind is ErrorKind.AUTHENTICATION


async def test_insufficient_funds(
    ccxt_client: Make, new_account: Callable[..., Awaitable[dict[str, str]]], set_price: Any
) -> None:
    keys = await new_account(KRW=10_000, USDT=10)
    await set_price("binance", "BTCUSDT", "100000")
    await set_price("upbit", "KRW-BTC", "140000000")
    for exchange, symbol, amount, price in (
        (Exchange.BINANCE, "BTC/USDT", 0.001, 90000),
        (Exchange.UPBIT, "BTC/KRW", 0.001, 130000000),
    ):
        error = await _fail(ccxt_client(exchange, keys).create_order(symbol, "limit", "buy", amount, price))
        assert isinstance(error, PermanentExchangeError) and error.kind is ErrorKind.INSUFFICIENT_FUNDS
        assert to_app_error(error).code is ErrorCode.INSUFFICIENT_BALANCE


async def test_below_the_minimum_order_value_is_an_invalid_order(
    ccxt_client: Make, new_account: Callable[..., Awaitable[dict[str, str]]], set_price: Any
) -> None:
    keys = await new_account(KRW=1_000_000, USDT=1000)
    await set_price("binance", "BTCUSDT", "100000")
    await set_price("upbit", "KRW-BTC", "140000000")
    # ccxt: Binance NOTIONAL -> BadRequest; Upbit under_min_total_bid -> plain ExchangeError.
    binance = await _fail(
        ccxt_client(Exchange.BINANCE, keys).create_order("BTC/USDT", "limit", "buy", 0.00002, 90000)
    )
    upbit = await _fail(
        ccxt_client(Exchange.UPBIT, keys).create_order("BTC/KRW", "limit", "buy", 0.00001, 130000000)
    )
    for error, source in ((binance, "BadRequest"), (upbit, "ExchangeError")):
        assert isinstance(error, PermanentExchangeError), error
        assert (error.kind, error.reason, error.source) == (ErrorKind.INVALID_ORDER, "min_notional", source)
        assert to_app_error(error).code is ErrorCode.INVALID_ORDER_AMOUNT


async def test_upbit_price_off_its_unit_is_classified_by_error_name(
    ccxt_client: Make, new_account: Callable[..., Awaitable[dict[str, str]]], set_price: Any
) -> None:
    keys = await new_account(KRW=1_000_000)
    await set_price("upbit", "KRW-BTC", "140000000")
    client = ccxt_client(Exchange.UPBIT, keys)
    await client.load_markets()
    # Past ccxt's own rounding: the raw endpoint with a price between two KRW units.
    error = await _fail(
        client.privatePostOrders(
            {"market": "KRW-BTC", "side": "bid", "volume": "0.001", "price": "130000500", "ord_type": "limit"}
        )
    )
    assert isinstance(error, PermanentExchangeError)
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ORDER, "price")
    assert to_app_error(error).code is ErrorCode.ORDER_FAILED


async def test_unknown_orders(
    ccxt_client: Make, new_account: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    keys = await new_account(KRW=10_000, USDT=10)
    binance = await _fail(ccxt_client(Exchange.BINANCE, keys).fetch_order("123456", "BTC/USDT"))
    upbit = await _fail(
        ccxt_client(Exchange.UPBIT, keys).fetch_order("00000000-0000-0000-0000-000000000000", "BTC/KRW")
    )
    for error in (binance, upbit):
        assert isinstance(error, PermanentExchangeError) and error.kind is ErrorKind.ORDER_NOT_FOUND


async def test_unknown_symbols(ccxt_client: Make) -> None:
    binance, upbit = ccxt_client(Exchange.BINANCE), ccxt_client(Exchange.UPBIT)
    await binance.load_markets()
    errors = [
        await _fail(binance.fetch_ticker("NOPE/USDT")),  # refused by ccxt itself
        await _fail(binance.publicGetTicker24hr({"symbol": "NOPEUSDT"})),  # -1121 from the exchange
        await _fail(upbit.publicGetTicker({"markets": "KRW-NOPE"})),  # {"name": 404}: a plain ExchangeError
    ]
    for error in errors:
        assert isinstance(error, PermanentExchangeError) and error.kind is ErrorKind.BAD_SYMBOL, error
        assert to_app_error(error).code is ErrorCode.TICKER_NOT_FOUND


@pytest.mark.parametrize("kind", ["http_500", "http_429", "timeout"])
@pytest.mark.parametrize("exchange", list(Exchange))
async def test_outages_are_transient_and_retried(
    kind: str, exchange: Exchange, ccxt_client: Make, http: httpx.AsyncClient
) -> None:
    client = ccxt_client(exchange)
    symbol = "BTC/USDT" if exchange is Exchange.BINANCE else "BTC/KRW"
    await client.load_markets()
    prefix = "/api/v3/ticker" if exchange is Exchange.BINANCE else "/v1/ticker"
    fault = {"kind": kind, "count": 2, "exchange": exchange.value, "path_prefix": prefix}
    assert (await http.post("/_sim/faults", json=fault)).status_code == 201
    error = await _fail(client.fetch_ticker(symbol))
    assert isinstance(error, TransientExchangeError)
    assert to_app_error(error).code is ErrorCode.EXCHANGE_API_ERROR
    # The second failure is retried away; the third attempt reaches the exchange.
    ticker = await call(client.fetch_ticker, symbol, attempts=3, base_delay=0.01)
    assert ticker["last"] > 0
    assert (await http.get("/_sim/faults")).json() == []


async def test_permanent_errors_are_not_retried(ccxt_client: Make) -> None:
    keys = {"apiKey": "C" * 32, "secretKey": "D" * 32}
    client = ccxt_client(Exchange.BINANCE, keys)
    await client.load_markets()
    calls = 0

    async def balance() -> Any:
        nonlocal calls
        calls += 1
        return await client.fetch_balance()

    with pytest.raises(PermanentExchangeError):
        await call(balance, attempts=5, base_delay=0.01)
    assert calls == 1


async def test_total_timeout_bounds_a_hanging_exchange(ccxt_client: Make, http: httpx.AsyncClient) -> None:
    client = ccxt_client(Exchange.UPBIT)
    await client.load_markets()
    fault = {"kind": "timeout", "count": 5, "exchange": "upbit", "path_prefix": "/v1/ticker"}
    assert (await http.post("/_sim/faults", json=fault)).status_code == 201
    started = time.monotonic()
    with pytest.raises(TransientExchangeError):
        await call(client.fetch_ticker, "BTC/KRW", attempts=5, base_delay=0.01, total_timeout=1.5)
    assert time.monotonic() - started < 2.5


def test_classification_of_names_ccxt_leaves_generic() -> None:
    def upbit(name: str) -> Exception:
        error: Exception = ccxt_async.ExchangeError(f'upbit {{"error":{{"name":"{name}","message":"..."}}}}')
        return error

    assert isinstance(classify(upbit("nonce_used")), TransientExchangeError)
    for name, reason in (
        ("invalid_volume_ask", "quantity"),
        ("duplicated_identifier", "duplicate"),
        ("under_min_total_ask", "min_notional"),
    ):
        error = classify(upbit(name))
        assert isinstance(error, PermanentExchangeError) and (error.kind, error.reason) == (
            ErrorKind.INVALID_ORDER,
            reason,
        )
        assert error.exchange == "upbit"
    assert classify(upbit("out_of_scope")).kind is ErrorKind.PERMISSION  # type: ignore[attr-defined]
    assert isinstance(classify(ccxt_async.OnMaintenance("binance maintenance")), TransientExchangeError)
    assert isinstance(classify(ccxt_async.InvalidNonce("binance -1021")), TransientExchangeError)
    assert isinstance(classify(ConnectionResetError("reset")), TransientExchangeError)
    other = classify(ccxt_async.ExchangeError("binance something new"))
    assert isinstance(other, PermanentExchangeError) and other.kind is ErrorKind.OTHER
    assert to_app_error(other).code is ErrorCode.EXCHANGE_API_ERROR
    leaked = classify(
        ccxt_async.ExchangeError("binance GET https://x/api?timestamp=1&signature=abcdef0123 failed")
    )
    assert "abcdef0123" not in str(leaked)
