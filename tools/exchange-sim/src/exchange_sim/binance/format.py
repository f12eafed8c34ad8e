"""Binance's JSON shapes: exchangeInfo, tickers, klines, orders, trades, account, streams."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exchange_sim.accounts import Wallet
from exchange_sim.marketdata import Bucket, MarketData
from exchange_sim.markets import Market
from exchange_sim.orders import Fill, Order, OrderType
from exchange_sim.wire import fmt8

ZERO = Decimal(0)
STP_MODE = "EXPIRE_MAKER"
KLINE_INTERVALS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
RATE_LIMITS: list[dict[str, Any]] = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def symbol_info(market: Market) -> dict[str, Any]:
    """One exchangeInfo.symbols entry, shaped like the real BTCUSDT one (integers as numbers)."""
    tick = market.tick_at(market.min_price)
    return {
        "symbol": market.symbol,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt8(market.min_price),
                "maxPrice": fmt8(market.max_price),
                "tickSize": fmt8(tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt8(market.min_qty),
                "maxQty": fmt8(market.max_qty),
                "stepSize": fmt8(market.step_size),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": fmt8(market.max_qty / 70),
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt8(market.min_notional),
                "applyMinToMarket": True,
                "maxNotional": fmt8(market.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": STP_MODE,
        "allowedSelfTradePreventionModes": [
            "EXPIRE_TAKER",
            "EXPIRE_MAKER",
            "EXPIRE_BOTH",
            "DECREMENT",
        ],
    }


def exchange_info(markets: list[Market], now_ms: int) -> dict[str, Any]:
    """GET /api/v3/exchangeInfo."""
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbol_info(m) for m in markets],
    }


def ticker_24hr(data: MarketData, now_ms: int) -> dict[str, Any]:
    """One GET /api/v3/ticker/24hr entry (FULL)."""
    stats = data.rolling_24h(now_ms)
    change = data.last_price - stats.open
    percent = (change / stats.open * 100).quantize(Decimal("0.001")) if stats.open else ZERO
    weighted = stats.quote_volume / stats.volume if stats.volume else data.last_price
    last_id = data.next_trade_id - 1
    return {
        "symbol": data.market.symbol,
        "priceChange": fmt8(change),
        "priceChangePercent": f"{percent:f}",
        "weightedAvgPrice": fmt8(weighted),
        "prevClosePrice": fmt8(stats.prev_close),
        "lastPrice": fmt8(data.last_price),
        "lastQty": fmt8(data.last_qty),
        "bidPrice": fmt8(data.best_bid),
        "bidQty": fmt8(data.book_size("bid")),
        "askPrice": fmt8(data.best_ask),
        "askQty": fmt8(data.book_size("ask")),
        "openPrice": fmt8(stats.open),
        "highPrice": fmt8(stats.high),
        "lowPrice": fmt8(stats.low),
        "volume": fmt8(stats.volume),
        "quoteVolume": fmt8(stats.quote_volume),
        "openTime": stats.open_ms,
        "closeTime": now_ms,
        "firstId": last_id - stats.count + 1,
        "lastId": last_id,
        "count": stats.count,
    }


def kline(bucket: Bucket, interval_ms: int) -> list[Any]:
    """One GET /api/v3/klines row."""
    return [
        bucket.start_ms,
        fmt8(bucket.open),
        fmt8(bucket.high),
        fmt8(bucket.low),
        fmt8(bucket.close),
        fmt8(bucket.volume),
        bucket.start_ms + interval_ms - 1,
        fmt8(bucket.quote_volume),
        bucket.count,
        fmt8(bucket.taker_buy_volume),
        fmt8(bucket.taker_buy_quote),
        "0",
    ]


def _working(order: Order) -> bool:
    return order.is_open


def order_json(order: Order) -> dict[str, Any]:
    """GET /api/v3/order and /api/v3/openOrders entries."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": fmt8(order.price or ZERO),
        "origQty": fmt8(order.orig_qty or ZERO),
        "executedQty": fmt8(order.executed_qty),
        "cummulativeQuoteQty": fmt8(order.cumulative_quote),
        "status": order.status.value,
        "timeInForce": order.time_in_force.value,
        "type": order.type.value,
        "side": order.side.value,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.created_ms,
        "updateTime": order.updated_ms,
        "isWorking": order.type is not OrderType.MARKET,
        "workingTime": order.created_ms,
        "origQuoteOrderQty": fmt8(order.quote_order_qty or ZERO),
        "selfTradePreventionMode": STP_MODE,
    }


def order_fill(fill: Fill) -> dict[str, Any]:
    """One element of a FULL order response's "fills"."""
    return {
        "price": fmt8(fill.price),
        "qty": fmt8(fill.qty),
        "commission": fmt8(fill.fee),
        "commissionAsset": fill.fee_asset,
        "tradeId": fill.trade_id,
    }


def order_post(order: Order, response_type: str) -> dict[str, Any]:
    """POST /api/v3/order in ACK, RESULT or FULL form."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.created_ms,
    }
    if response_type == "ACK":
        return body
    body.update(
        {
            "price": fmt8(order.price or ZERO),
            "origQty": fmt8(order.orig_qty or ZERO),
            "executedQty": fmt8(order.executed_qty),
            "origQuoteOrderQty": fmt8(order.quote_order_qty or ZERO),
            "cummulativeQuoteQty": fmt8(order.cumulative_quote),
            "status": order.status.value,
            "timeInForce": order.time_in_force.value,
            "type": order.type.value,
            "side": order.side.value,
            "workingTime": order.created_ms,
            "selfTradePreventionMode": STP_MODE,
        }
    )
    if response_type == "FULL":
        body["fills"] = [order_fill(fill) for fill in order.fills]
    return body


def order_cancel(order: Order) -> dict[str, Any]:
    """DELETE /api/v3/order."""
    return {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.cancel_client_id,
        "transactTime": order.updated_ms,
        "price": fmt8(order.price or ZERO),
        "origQty": fmt8(order.orig_qty or ZERO),
        "executedQty": fmt8(order.executed_qty),
        "origQuoteOrderQty": fmt8(order.quote_order_qty or ZERO),
        "cummulativeQuoteQty": fmt8(order.cumulative_quote),
        "status": order.status.value,
        "timeInForce": order.time_in_force.value,
        "type": order.type.value,
        "side": order.side.value,
        "selfTradePreventionMode": STP_MODE,
    }


def my_trade(order: Order, fill: Fill) -> dict[str, Any]:
    """One GET /api/v3/myTrades entry."""
    return {
        "symbol": order.symbol,
        "id": fill.trade_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "price": fmt8(fill.price),
        "qty": fmt8(fill.qty),
        "quoteQty": fmt8(fill.quote_qty),
        "commission": fmt8(fill.fee),
        "commissionAsset": fill.fee_asset,
        "time": fill.time_ms,
        "isBuyer": order.side.value == "BUY",
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def account_json(
    wallet: Wallet,
    assets: tuple[str, ...],
    maker: Decimal,
    taker: Decimal,
    omit_zero: bool,
    uid: int,
) -> dict[str, Any]:
    """GET /api/v3/account."""
    balances = []
    for asset in dict.fromkeys((*assets, *wallet.balances)):
        balance = wallet.get(asset)
        if omit_zero and balance.free == 0 and balance.locked == 0:
            continue
        balances.append({"asset": asset, "free": fmt8(balance.free), "locked": fmt8(balance.locked)})
    return {
        "makerCommission": int(maker * 10_000),
        "takerCommission": int(taker * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt8(maker),
            "taker": fmt8(taker),
            "buyer": fmt8(ZERO),
            "seller": fmt8(ZERO),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": wallet.updated_ms,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": uid,
    }
