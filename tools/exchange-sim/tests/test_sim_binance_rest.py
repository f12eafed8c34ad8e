"""ccxt's async binance client against the simulator, exactly as our services drive it."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from exchange_sim.testing import balance_of

SYMBOL = "BTC/USDT"


async def test_load_markets_gives_real_precision_and_limits(clients) -> None:
    exchange = clients("binance")
    markets = await exchange.load_markets()
    btc = markets[SYMBOL]
    assert btc["id"] == "BTCUSDT"
    assert btc["active"] is True and btc["spot"] is True
    assert btc["precision"]["price"] == 0.01
    assert btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert btc["limits"]["amount"]["max"] == 9000
    assert btc["limits"]["cost"]["min"] == 5
    assert btc["limits"]["price"] == {"min": 0.01, "max": 1000000}
    assert markets["XRP/USDT"]["precision"] == {"amount": 0.1, "price": 0.0001, "base": 1e-08, "quote": 1e-08}
    assert {"ETH/USDT", "XRP/USDT", "SOL/USDT"} <= set(markets)


async def test_fetch_ticker_reports_the_pinned_price(clients, set_price) -> None:
    exchange = clients("binance")
    await set_price("binance", "BTCUSDT", "101234.56")
    ticker = await exchange.fetch_ticker(SYMBOL)
    assert ticker["last"] == 101234.56
    assert ticker["bid"] <= ticker["last"] <= ticker["ask"]
    assert ticker["baseVolume"] > 0
    assert ticker["high"] >= ticker["last"] >= ticker["low"]


async def test_fetch_balance_shows_the_created_balances(clients, new_account) -> None:
    keys = await new_account(USDT=10000, BTC="0.5")
    balance = await clients("binance", keys).fetch_balance()
    assert balance_of(balance, "USDT") == (Decimal(10000), Decimal(0))
    assert balance_of(balance, "BTC") == (Decimal("0.5"), Decimal(0))


async def test_limit_buy_locks_then_cancel_releases(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=10000))
    order = await exchange.create_order(
        SYMBOL, "limit", "buy", 0.01, 95000, {"clientOrderId": "grid-b1-s3-c0"}
    )
    assert order["status"] == "open" and order["clientOrderId"] == "grid-b1-s3-c0"
    assert balance_of(await exchange.fetch_balance(), "USDT") == (Decimal(9050), Decimal(950))

    by_id = await exchange.fetch_order(order["id"], SYMBOL)
    by_client_id = await exchange.fetch_order(None, SYMBOL, {"clientOrderId": "grid-b1-s3-c0"})
    assert by_id["id"] == by_client_id["id"] == order["id"]
    assert [o["id"] for o in await exchange.fetch_open_orders(SYMBOL)] == [order["id"]]

    canceled = await exchange.cancel_order(order["id"], SYMBOL)
    assert canceled["status"] == "canceled"
    assert (await exchange.fetch_order(order["id"], SYMBOL))["status"] == "canceled"
    assert await exchange.fetch_open_orders(SYMBOL) == []
    assert balance_of(await exchange.fetch_balance(), "USDT") == (Decimal(10000), Decimal(0))


async def test_resting_buy_fills_when_the_price_moves_through_it(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=10000))
    order = await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 99000, {"clientOrderId": "fill-1"})
    await set_price("binance", "BTCUSDT", "99500")
    assert (await exchange.fetch_order(order["id"], SYMBOL))["status"] == "open"

    await set_price("binance", "BTCUSDT", "98900")
    filled = await exchange.fetch_order(order["id"], SYMBOL)
    assert filled["status"] == "closed"
    assert filled["filled"] == 0.01 and filled["average"] == 99000 and filled["cost"] == 990
    balance = await exchange.fetch_balance()
    # 0.1% taker/maker fee is taken from the asset received: 0.01 BTC - 0.00001 BTC.
    assert balance_of(balance, "USDT") == (Decimal(9010), Decimal(0))
    assert balance_of(balance, "BTC") == (Decimal("0.00999"), Decimal(0))
    trades = await exchange.fetch_my_trades(SYMBOL)
    assert [(t["order"], t["price"], t["amount"], t["fee"]["currency"]) for t in trades] == [
        (order["id"], 99000, 0.01, "BTC")
    ]
    assert trades[0]["takerOrMaker"] == "maker"


async def test_resting_sell_fills_and_pays_the_fee_in_quote(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(BTC="0.02"))
    order = await exchange.create_order(SYMBOL, "limit", "sell", 0.02, 101000)
    assert balance_of(await exchange.fetch_balance(), "BTC") == (Decimal(0), Decimal("0.02"))
    await set_price("binance", "BTCUSDT", "101500")
    assert (await exchange.fetch_order(order["id"], SYMBOL))["status"] == "closed"
    balance = await exchange.fetch_balance()
    assert balance_of(balance, "USDT") == (Decimal("2017.98"), Decimal(0))  # 2020 - 0.1%
    assert balance_of(balance, "BTC") == (Decimal(0), Decimal(0))


async def test_marketable_limit_and_market_orders_fill_at_once(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=1000))
    taker = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 100500)
    assert taker["status"] == "closed" and taker["average"] == 100000  # filled at the market, not the limit
    bought = await exchange.create_market_buy_order_with_cost(SYMBOL, 200)
    assert bought["status"] == "closed" and bought["amount"] == 0.002 and bought["cost"] == 200
    assert balance_of(await exchange.fetch_balance(), "USDT") == (Decimal(700), Decimal(0))


async def test_bad_keys_raise_authentication_error(clients, new_account) -> None:
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        await clients("binance", {"apiKey": "A" * 64, "secretKey": "B" * 64}).fetch_balance()
    keys = await new_account(USDT=1)
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        await clients("binance", {"apiKey": keys["apiKey"], "secretKey": "wrong" * 10}).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2014"):
        await clients("binance", {"apiKey": "not a key!", "secretKey": "x"}).fetch_balance()


async def test_stale_timestamp_is_rejected_like_binance(clients, new_account) -> None:
    exchange = clients("binance", await new_account(USDT=1))
    exchange.options["timeDifference"] = 120_000  # ccxt signs with a timestamp 2 minutes old
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await exchange.fetch_balance()


async def test_insufficient_balance_raises_insufficient_funds(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=100))
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 90000)
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order(SYMBOL, "limit", "sell", 0.01, 110000)


async def test_filter_failures_map_as_on_the_real_exchange(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=100000, BTC=10000))
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await exchange.create_order(SYMBOL, "limit", "sell", 9500, 110000)
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await exchange.create_order(SYMBOL, "limit", "sell", 0.001, 2000000)
    # ccxt has no message rule for NOTIONAL: -1013 maps to BadRequest on api.binance.com too.
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.00001, 99000)


async def test_unknown_orders_raise_order_not_found(clients, new_account) -> None:
    exchange = clients("binance", await new_account(USDT=1))
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await exchange.fetch_order("12345", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await exchange.cancel_order("12345", SYMBOL)


async def test_duplicate_client_order_id_is_refused_while_open(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=10000))
    first = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 90000, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 91000, {"clientOrderId": "dup-1"})
    await exchange.cancel_order(first["id"], SYMBOL)
    # Binance only refuses a client order id that an open order holds.
    again = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 91000, {"clientOrderId": "dup-1"})
    assert again["id"] != first["id"] and again["status"] == "open"


async def test_ohlcv_comes_from_the_replayed_history(clients, set_price) -> None:
    exchange = clients("binance")
    await set_price("binance", "BTCUSDT", "100100")
    candles = await exchange.fetch_ohlcv(SYMBOL, "1m", limit=50)
    assert len(candles) == 50
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)
    assert all(c[0] % 60_000 == 0 and c[2] >= max(c[1], c[4]) and c[3] <= min(c[1], c[4]) for c in candles)
    assert candles[-1][4] == 100100


async def test_post_only_that_would_take_is_rejected_like_binance(clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    exchange = clients("binance", await new_account(USDT=1000))
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 100100, {"postOnly": True})
    maker = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, 99900, {"postOnly": True})
    assert maker["status"] == "open" and maker["info"]["type"] == "LIMIT_MAKER"
