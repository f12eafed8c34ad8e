"""ccxt's async upbit client against the simulator, exactly as our services drive it."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

import ccxt.async_support as ccxt
import jwt
import pytest

from exchange_sim.testing import balance_of

SYMBOL = "BTC/KRW"


async def test_markets_and_the_5000_krw_minimum(clients, new_account) -> None:
    exchange = clients("upbit", await new_account(KRW=100000))
    markets = await exchange.load_markets()
    assert {"BTC/KRW", "ETH/KRW", "XRP/KRW", "SOL/KRW"} <= set(markets)
    assert markets[SYMBOL]["id"] == "KRW-BTC"
    assert markets[SYMBOL]["info"] == {
        "market": "KRW-BTC",
        "korean_name": "비트코인",
        "english_name": "Bitcoin",
    }
    # Upbit's market list has no limits; ccxt reads them from /v1/orders/chance.
    market = await exchange.fetch_market(SYMBOL)
    assert market["limits"]["cost"]["min"] == 5000
    assert market["limits"]["cost"]["max"] == 1_000_000_000
    fee = await exchange.fetch_trading_fee(SYMBOL)
    assert (fee["maker"], fee["taker"]) == (0.0005, 0.0005)


async def test_market_all_with_details(http) -> None:
    response = await http.get("/upbit/v1/market/all", params={"is_details": "true"})
    rows = {row["market"]: row for row in response.json()}
    assert rows["KRW-ETH"]["market_event"]["caution"]["PRICE_FLUCTUATIONS"] is False
    assert set(rows["KRW-XRP"]) == {"market", "korean_name", "english_name", "market_event"}


async def test_fetch_ticker_follows_the_pinned_price(clients, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    ticker = await clients("upbit").fetch_ticker(SYMBOL)
    assert ticker["last"] == 140000000
    assert ticker["info"]["market"] == "KRW-BTC"
    assert ticker["baseVolume"] > 0


async def test_krw_prices_follow_the_usdt_path_through_the_rate(http) -> None:
    # Unpinned, KRW-ETH is ETHUSDT x 1400 rounded to Upbit's KRW unit (1,000 above 2M KRW).
    await http.delete("/_sim/prices/binance/ETHUSDT")
    await http.delete("/_sim/prices/upbit/KRW-ETH")
    await http.post("/_sim/step", json={"candles": 1})
    prices = (await http.get("/_sim/prices")).json()
    usdt = Decimal(prices["binance"]["ETHUSDT"]["price"])
    krw = Decimal(prices["upbit"]["KRW-ETH"]["price"])
    assert krw % 1000 == 0
    assert abs(krw - usdt * 1400) <= 500


async def test_limit_buy_with_identifier_lifecycle(clients, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    exchange = clients("upbit", await new_account(KRW=1000000))
    order = await exchange.create_order(
        SYMBOL, "limit", "buy", 0.001, 139000000, {"clientOrderId": "bot1-s2-c0"}
    )
    assert order["status"] == "open" and order["clientOrderId"] == "bot1-s2-c0"
    # 139,000 KRW plus the 0.05% fee reserved up front.
    assert balance_of(await exchange.fetch_balance(), "KRW") == (Decimal("860930.5"), Decimal("139069.5"))
    by_identifier = await exchange.private_get_order({"identifier": "bot1-s2-c0"})
    assert by_identifier["uuid"] == order["id"] and by_identifier["state"] == "wait"
    assert [o["id"] for o in await exchange.fetch_open_orders(SYMBOL)] == [order["id"]]
    legacy = await exchange.request("orders", ["private"], "GET", {"market": "KRW-BTC", "state": "wait"})
    assert [o["uuid"] for o in legacy] == [order["id"]]

    canceled = await exchange.cancel_order(order["id"])
    # Upbit answers a cancel with the order as it stood ("wait"); the cancel shows on the next read.
    assert canceled["status"] == "open"
    assert (await exchange.fetch_order(order["id"]))["status"] == "canceled"
    assert await exchange.fetch_open_orders(SYMBOL) == []
    assert balance_of(await exchange.fetch_balance(), "KRW") == (Decimal(1000000), Decimal(0))


async def test_resting_buy_fills_when_the_price_moves_through_it(clients, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    exchange = clients("upbit", await new_account(KRW=1000000))
    order = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 139000000)
    await set_price("upbit", "KRW-BTC", "139500000")
    assert (await exchange.fetch_order(order["id"]))["status"] == "open"
    await set_price("upbit", "KRW-BTC", "138000000")
    filled = await exchange.fetch_order(order["id"])
    assert filled["status"] == "closed"
    assert (filled["filled"], filled["average"], filled["cost"]) == (0.001, 139000000, 139000)
    assert filled["fee"]["currency"] == "KRW"
    assert Decimal(str(filled["fee"]["cost"])) == Decimal("69.5")  # 0.05% of 139,000
    assert filled["trades"][0]["price"] == 139000000
    balance = await exchange.fetch_balance()
    assert balance_of(balance, "KRW") == (Decimal("860930.5"), Decimal(0))
    assert balance_of(balance, "BTC") == (Decimal("0.001"), Decimal(0))
    assert balance["info"][1]["avg_buy_price"] == "139069500"


async def test_market_orders_buy_by_amount_and_sell_by_volume(clients, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "100000000")
    exchange = clients("upbit", await new_account(KRW=100000, BTC="0.001"))
    bought = await exchange.create_market_buy_order_with_cost(SYMBOL, 10000)
    assert bought["info"]["ord_type"] == "price"
    detail = await exchange.fetch_order(bought["id"])
    assert detail["filled"] == 0.0001 and detail["cost"] == 10000
    sold = await exchange.create_order(SYMBOL, "market", "sell", 0.0011)
    assert sold["info"]["ord_type"] == "market"
    assert (await exchange.fetch_order(sold["id"]))["status"] == "closed"
    # 100,000 - 10,000 - 5 fee + 110,000 - 55 fee
    assert balance_of(await exchange.fetch_balance(), "KRW") == (Decimal(199940), Decimal(0))


async def test_bad_credentials_raise_authentication_error(clients, new_account) -> None:
    with pytest.raises(ccxt.AuthenticationError, match="invalid_access_key"):
        await clients("upbit", {"apiKey": "nobody", "secretKey": "x" * 40}).fetch_balance()
    keys = await new_account(KRW=1)
    with pytest.raises(ccxt.AuthenticationError, match="jwt_verification"):
        await clients("upbit", {"apiKey": keys["apiKey"], "secretKey": "wrong" * 8}).fetch_balance()


async def test_query_hash_must_match_the_parameters(http, new_account) -> None:
    keys = await new_account(KRW=1)
    claims = {
        "access_key": keys["apiKey"],
        "nonce": str(uuid.uuid4()),
        "query_hash": hashlib.sha512(b"market=KRW-ETH").hexdigest(),
        "query_hash_alg": "SHA512",
    }
    token = jwt.encode(claims, keys["secretKey"], algorithm="HS256")
    response = await http.get(
        "/upbit/v1/orders/chance", params={"market": "KRW-BTC"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["name"] == "invalid_query_payload"


async def test_order_errors_use_upbit_names(clients, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    exchange = clients("upbit", await new_account(KRW=100000, BTC="0.0001"))
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient_funds_bid"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 139000000)
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient_funds_ask"):
        await exchange.create_order(SYMBOL, "limit", "sell", 0.001, 141000000)
    # ccxt has no rule for these names on the real exchange either: a plain ExchangeError.
    with pytest.raises(ccxt.ExchangeError, match="under_min_total_bid"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.00003, 139000000)
    with pytest.raises(ccxt.ExchangeError, match="invalid_price_bid"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.0001, 139000500)
    with pytest.raises(ccxt.OrderNotFound, match="order_not_found"):
        await exchange.fetch_order(str(uuid.uuid4()))
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.cancel_order(str(uuid.uuid4()))


async def test_identifier_is_unique_per_account_forever(clients, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    exchange = clients("upbit", await new_account(KRW=100000))
    first = await exchange.create_order(
        SYMBOL, "limit", "buy", 0.0001, 130000000, {"clientOrderId": "same-id"}
    )
    await exchange.cancel_order(first["id"])
    with pytest.raises(ccxt.ExchangeError, match="duplicated_identifier"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.0001, 130000000, {"clientOrderId": "same-id"})
    other = clients("upbit", await new_account(KRW=100000))
    placed = await other.create_order(SYMBOL, "limit", "buy", 0.0001, 130000000, {"clientOrderId": "same-id"})
    assert placed["clientOrderId"] == "same-id"


async def test_candles_are_newest_first_on_the_minute(clients, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    exchange = clients("upbit")
    candles = await exchange.fetch_ohlcv(SYMBOL, "1m", limit=30)
    assert len(candles) == 30
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)  # ccxt sorts Upbit's newest-first rows
    assert candles[-1][4] == 140000000
    raw = await exchange.public_get_candles_minutes_unit({"unit": 5, "market": "KRW-BTC", "count": 3})
    assert [r["unit"] for r in raw] == [5, 5, 5]
    assert raw[0]["candle_date_time_utc"] > raw[1]["candle_date_time_utc"]
