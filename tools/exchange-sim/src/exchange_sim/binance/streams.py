"""Binance stream payloads: market streams (trade, aggTrade, tickers, bookTicker, kline) and user data."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exchange_sim.binance.format import KLINE_INTERVALS, STP_MODE, ticker_24hr
from exchange_sim.events import BalanceUpdate, OrderUpdate, PublicTrade
from exchange_sim.marketdata import MarketData
from exchange_sim.orders import OrderType, Status
from exchange_sim.wire import fmt8

ZERO = Decimal(0)


# ---- market streams ----------------------------------------------------------------------------


def trade_event(trade: PublicTrade, now_ms: int) -> dict[str, Any]:
    """<symbol>@trade."""
    return {
        "e": "trade",
        "E": now_ms,
        "s": trade.symbol,
        "t": trade.trade_id,
        "p": fmt8(trade.price),
        "q": fmt8(trade.qty),
        "T": trade.time_ms,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def agg_trade_event(trade: PublicTrade, now_ms: int) -> dict[str, Any]:
    """<symbol>@aggTrade (one trade per aggregate)."""
    return {
        "e": "aggTrade",
        "E": now_ms,
        "s": trade.symbol,
        "a": trade.trade_id,
        "p": fmt8(trade.price),
        "q": fmt8(trade.qty),
        "f": trade.trade_id,
        "l": trade.trade_id,
        "T": trade.time_ms,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def mini_ticker_event(data: MarketData, now_ms: int) -> dict[str, Any]:
    """<symbol>@miniTicker."""
    stats = data.rolling_24h(now_ms)
    return {
        "e": "24hrMiniTicker",
        "E": now_ms,
        "s": data.market.symbol,
        "c": fmt8(data.last_price),
        "o": fmt8(stats.open),
        "h": fmt8(stats.high),
        "l": fmt8(stats.low),
        "v": fmt8(stats.volume),
        "q": fmt8(stats.quote_volume),
    }


def ticker_event(data: MarketData, now_ms: int) -> dict[str, Any]:
    """<symbol>@ticker."""
    full = ticker_24hr(data, now_ms)
    return {
        "e": "24hrTicker",
        "E": now_ms,
        "s": full["symbol"],
        "p": full["priceChange"],
        "P": full["priceChangePercent"],
        "w": full["weightedAvgPrice"],
        "x": full["prevClosePrice"],
        "c": full["lastPrice"],
        "Q": full["lastQty"],
        "b": full["bidPrice"],
        "B": full["bidQty"],
        "a": full["askPrice"],
        "A": full["askQty"],
        "o": full["openPrice"],
        "h": full["highPrice"],
        "l": full["lowPrice"],
        "v": full["volume"],
        "q": full["quoteVolume"],
        "O": full["openTime"],
        "C": full["closeTime"],
        "F": full["firstId"],
        "L": full["lastId"],
        "n": full["count"],
    }


def book_ticker_event(data: MarketData) -> dict[str, Any]:
    """<symbol>@bookTicker."""
    return {
        "u": data.book_update_id,
        "s": data.market.symbol,
        "b": fmt8(data.best_bid),
        "B": fmt8(data.book_size("bid")),
        "a": fmt8(data.best_ask),
        "A": fmt8(data.book_size("ask")),
    }


def kline_event(data: MarketData, interval: str, now_ms: int) -> dict[str, Any] | None:
    """<symbol>@kline_<interval> for the current interval."""
    interval_ms = KLINE_INTERVALS[interval]
    rows = data.candles(interval_ms, None, None, 1, fill_gaps=False)
    if not rows:
        return None
    bucket = rows[-1]
    last_id = data.next_trade_id - 1
    return {
        "e": "kline",
        "E": now_ms,
        "s": data.market.symbol,
        "k": {
            "t": bucket.start_ms,
            "T": bucket.start_ms + interval_ms - 1,
            "s": data.market.symbol,
            "i": interval,
            "f": last_id - bucket.count + 1,
            "L": last_id,
            "o": fmt8(bucket.open),
            "c": fmt8(bucket.close),
            "h": fmt8(bucket.high),
            "l": fmt8(bucket.low),
            "v": fmt8(bucket.volume),
            "n": bucket.count,
            "x": False,
            "q": fmt8(bucket.quote_volume),
            "V": fmt8(bucket.taker_buy_volume),
            "Q": fmt8(bucket.taker_buy_quote),
            "B": "0",
        },
    }


# ---- user data ---------------------------------------------------------------------------------


def execution_report(update: OrderUpdate) -> dict[str, Any]:
    """The executionReport of an order update ("v" only appears on STP expiry: never here)."""
    order, fill = update.order, update.fill
    canceled = update.execution == "CANCELED"
    event: dict[str, Any] = {
        "e": "executionReport",
        "E": update.time_ms,
        "s": order.symbol,
        "c": order.cancel_client_id if canceled else order.client_order_id,
        "S": order.side.value,
        "o": order.type.value,
        "f": order.time_in_force.value,
        "q": fmt8(order.orig_qty or ZERO),
        "p": fmt8(order.price or ZERO),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": order.client_order_id if canceled else "",
        "x": update.execution,
        "X": order.status.value,
        "r": "NONE",
        "i": order.order_id,
        "l": fmt8(fill.qty if fill else ZERO),
        "z": fmt8(order.executed_qty),
        "L": fmt8(fill.price if fill else ZERO),
        "n": fmt8(fill.fee) if fill else "0",
        "N": fill.fee_asset if fill else None,
        "T": fill.time_ms if fill else update.time_ms,
        "t": fill.trade_id if fill else -1,
        "I": update.execution_id,
        "w": order.status is Status.NEW and order.type is not OrderType.MARKET,
        "m": fill.is_maker if fill else False,
        "M": False,
        "O": order.created_ms,
        "Z": fmt8(order.cumulative_quote),
        "Y": fmt8(fill.quote_qty if fill else ZERO),
        "Q": fmt8(order.quote_order_qty or ZERO),
    }
    if order.type is not OrderType.MARKET:
        event["W"] = order.created_ms
    event["V"] = STP_MODE
    return event


def account_position(update: BalanceUpdate) -> dict[str, Any]:
    """outboundAccountPosition for the assets that changed."""
    return {
        "e": "outboundAccountPosition",
        "E": update.time_ms,
        "u": update.time_ms,
        "B": [{"a": asset, "f": fmt8(free), "l": fmt8(locked)} for asset, free, locked in update.assets],
    }
