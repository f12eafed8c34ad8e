"""Raw REST bodies (through ccxt's signed implicit API) against the real samples in shared/wire."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt
import pytest

from exchange_sim.testing import shape


def _keys_of_sample_filters(entry: dict[str, Any]) -> dict[str, set[str]]:
    return {f["filterType"]: set(f) for f in entry["filters"]}


async def test_binance_exchange_info_entry_matches_the_real_btcusdt(clients, wire) -> None:
    exchange = clients("binance")
    info = await exchange.public_get_exchangeinfo({"symbol": "BTCUSDT"})
    docs = wire.json("binance_rest_exchangeInfo.json")
    assert set(docs) - {"sors"} <= set(info)  # "sors" only appears where smart order routing exists
    entry = info["symbols"][0]
    real = wire.json("binance_exchangeInfo_symbol_BTCUSDT_ccxt.json")
    assert set(real) <= set(entry)
    assert set(entry) <= set(real) | set(docs["symbols"][0])  # newer fields come from the current docs
    assert _keys_of_sample_filters(entry) == _keys_of_sample_filters(real)
    filters = {f["filterType"]: f for f in entry["filters"]}
    assert (filters["PRICE_FILTER"]["tickSize"], filters["LOT_SIZE"]["stepSize"]) == (
        "0.01000000",
        "0.00001000",
    )
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    # ccxt's fixture stringified integers; on the wire (and in the docs sample) they are numbers.
    assert isinstance(entry["baseAssetPrecision"], int) and isinstance(
        filters["MAX_NUM_ORDERS"]["maxNumOrders"], int
    )


async def test_binance_ticker_and_account_bodies(clients, wire, new_account) -> None:
    exchange = clients("binance", await new_account(USDT=100, BTC=1))
    single = await exchange.public_get_ticker_24hr({"symbol": "BTCUSDT"})
    assert shape(single) == shape(wire.json("binance_rest_ticker_24hr_full_single.json"))
    many = await exchange.public_get_ticker_24hr()
    assert [shape(row) for row in many] == [
        shape(wire.json("binance_rest_ticker_24hr_full_multi.json")[0])
    ] * 4
    account = await exchange.private_get_account()
    assert shape(account) == shape(wire.json("binance_rest_account.json"))
    assert {b["asset"]: b["free"] for b in account["balances"]}["USDT"] == "100.00000000"


async def test_binance_order_bodies(clients, wire, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=10000, BTC=1))
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001"}
    ack = await exchange.private_post_order({**base, "price": "90000", "newOrderRespType": "ACK"})
    assert shape(ack) == shape(wire.json("binance_rest_order_post_ACK.json"))
    result = await exchange.private_post_order({**base, "price": "90001", "newOrderRespType": "RESULT"})
    assert shape(result) == shape(wire.json("binance_rest_order_post_RESULT.json"))
    full = await exchange.private_post_order(
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "MARKET",
            "quantity": "0.001",
            "newOrderRespType": "FULL",
        }
    )
    sample_full = wire.json("binance_rest_order_post_FULL.json")
    assert shape(full) == shape(sample_full)
    assert shape(full["fills"][0]) == shape(sample_full["fills"][0])
    fetched = await exchange.private_get_order({"symbol": "BTCUSDT", "orderId": ack["orderId"]})
    assert shape(fetched) == shape(wire.json("binance_rest_order_get.json"))
    open_orders = await exchange.private_get_openorders({"symbol": "BTCUSDT"})
    assert [shape(o) for o in open_orders] == [shape(wire.json("binance_rest_openOrders_get.json")[0])] * 2
    canceled = await exchange.private_delete_order(
        {"symbol": "BTCUSDT", "origClientOrderId": ack["clientOrderId"]}
    )
    assert shape(canceled) == shape(wire.json("binance_rest_order_delete.json"))
    assert canceled["origClientOrderId"] == ack["clientOrderId"] and canceled["status"] == "CANCELED"
    trades = await exchange.private_get_mytrades({"symbol": "BTCUSDT"})
    assert [shape(t) for t in trades] == [shape(wire.json("binance_rest_myTrades.json")[0])]


async def test_binance_error_bodies(http) -> None:
    response = await http.get("/binance/api/v3/ticker/24hr", params={"symbol": "NOPE"})
    assert (response.status_code, response.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    response = await http.get("/binance/api/v3/account", headers={"X-MBX-APIKEY": "A" * 64})
    assert (response.status_code, response.json()["code"]) == (401, -2015)


async def test_upbit_account_and_order_bodies(clients, wire, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    exchange = clients("upbit", await new_account(KRW=1000000, BTC="0.01"))
    accounts = await exchange.private_get_accounts()
    sample_accounts = wire.json("upbit_rest_accounts_doc.json")
    assert [shape(a) for a in accounts] == [shape(a) for a in sample_accounts]
    examples = wire.json("upbit_rest_order_get_doc.json")

    placed = await exchange.private_post_orders(
        {"market": "KRW-BTC", "side": "ask", "ord_type": "limit", "price": "141000000", "volume": "0.001"}
    )
    assert shape(placed) == shape(wire.json("upbit_rest_orders_post_201_doc.json"))
    waiting = await exchange.private_get_order({"uuid": placed["uuid"]})
    limit_sample = {**examples["Successful Example(limit)"]}
    assert shape(waiting) == shape(limit_sample)

    sold = await exchange.private_post_orders(
        {"market": "KRW-BTC", "side": "ask", "ord_type": "market", "volume": "0.001"}
    )
    market_sample = examples["Successful Example(market)"]
    done = await exchange.private_get_order({"uuid": sold["uuid"]})
    assert shape(done) == shape(market_sample)
    assert shape(done["trades"][0]) == shape(market_sample["trades"][0])
    assert done["state"] == "done"

    bought = await exchange.private_post_orders(
        {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "6000"}
    )
    price_sample = examples["Successful Example(price)"]
    by_amount = await exchange.private_get_order({"uuid": bought["uuid"]})
    assert shape(by_amount) == shape(price_sample)
    assert by_amount["state"] == "cancel"  # 6,000 KRW does not buy a whole number of satoshi-units

    with pytest.raises(ccxt.OrderNotFound) as missing:
        await exchange.private_get_order({"uuid": "5d303952-8be9-41e6-915b-121a90026248"})
    assert examples["404 not found order error"]["error"]["name"] in str(missing.value)


async def test_upbit_quotation_bodies(clients, wire, set_price) -> None:
    for price in ("140000000", "140001000", "139999000"):
        await set_price("upbit", "KRW-BTC", price)
    exchange = clients("upbit")
    markets = await exchange.public_get_market_all({"is_details": "true"})
    assert {shape(m)["market_event"] for m in markets} == {"object"}
    assert set(markets[0]) == set(wire.json("upbit_rest_market_all_isDetails_doc.json")[0])
    tickers = await exchange.public_get_ticker({"markets": "KRW-BTC"})
    assert set(tickers[0]) == set(wire.json("upbit_rest_ticker_ccxt_USDT-BTC.json")[0])
    assert isinstance(tickers[0]["trade_price"], int | float)  # ccxt's fixture stringified numbers
    candles = await exchange.public_get_candles_minutes_unit({"unit": 60, "market": "KRW-BTC", "count": 2})
    assert set(candles[0]) == set(wire.json("upbit_rest_candles_minutes60_ccxt_USDT-BTC.json")[0])
    ticks = await exchange.public_get_trades_ticks({"market": "KRW-BTC", "count": 3})
    assert [set(t) for t in ticks] == [set(wire.json("upbit_rest_trades_ticks_ccxt_USDT-BTC.json")[0])] * 3


async def test_upbit_error_bodies(http, wire) -> None:
    response = await http.get("/upbit/v1/ticker", params={"markets": "KRW-NOPE"})
    assert response.status_code == 404
    assert shape(response.json()) == shape(wire.json("upbit_rest_error_400_type_mismatch_doc.json"))
    response = await http.get("/upbit/v1/accounts")
    assert response.status_code == 401
    assert shape(response.json()) == shape(wire.json("upbit_rest_error_401_no_authorization_ip_doc.json"))
