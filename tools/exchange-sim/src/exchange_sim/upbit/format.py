"""Upbit's JSON shapes: orders, accounts, tickers, trades, candles, and the WebSocket frames."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exchange_sim.accounts import Wallet
from exchange_sim.events import BalanceUpdate, OrderUpdate, PublicTrade
from exchange_sim.http import kst, kst_iso, utc
from exchange_sim.marketdata import DAY_MS, Bucket, MarketData
from exchange_sim.orders import Fill, Order, Side, Status, TimeInForce
from exchange_sim.wire import fmt_plain

ZERO = Decimal(0)
_KST_OFFSET_MS = 9 * 3600 * 1000
_RATE_PLACES = Decimal("0.0000000001")

# DEFAULT -> SIMPLE keys from Upbit's field tables
# (shared/wire/upbit_ws_simple_field_map_from_docs.json; myOrder/myAsset from the docs pages).
SIMPLE_KEYS: dict[str, dict[str, str]] = {
    "ticker": {
        "type": "ty", "code": "cd", "opening_price": "op", "high_price": "hp", "low_price": "lp",
        "trade_price": "tp", "prev_closing_price": "pcp", "change": "c", "change_price": "cp",
        "signed_change_price": "scp", "change_rate": "cr", "signed_change_rate": "scr",
        "trade_volume": "tv", "acc_trade_volume": "atv", "acc_trade_volume_24h": "atv24h",
        "acc_trade_price": "atp", "acc_trade_price_24h": "atp24h", "trade_date": "tdt",
        "trade_time": "ttm", "trade_timestamp": "ttms", "ask_bid": "ab", "acc_ask_volume": "aav",
        "acc_bid_volume": "abv", "highest_52_week_price": "h52wp", "highest_52_week_date": "h52wdt",
        "lowest_52_week_price": "l52wp", "lowest_52_week_date": "l52wdt", "market_state": "ms",
        "is_trading_suspended": "its", "delisting_date": "dd", "market_warning": "mw",
        "timestamp": "tms", "stream_type": "st",
    },
    "trade": {
        "type": "ty", "code": "cd", "trade_price": "tp", "trade_volume": "tv", "ask_bid": "ab",
        "prev_closing_price": "pcp", "change": "c", "change_price": "cp", "trade_date": "td",
        "trade_time": "ttm", "trade_timestamp": "ttms", "timestamp": "tms", "sequential_id": "sid",
        "best_ask_price": "bap", "best_ask_size": "bas", "best_bid_price": "bbp",
        "best_bid_size": "bbs",
        "stream_type": "st",
    },
    "myOrder": {
        "type": "ty", "code": "cd", "uuid": "uid", "ask_bid": "ab", "order_type": "ot",
        "state": "s",
        "trade_uuid": "tuid", "price": "p", "avg_price": "ap", "volume": "v",
        "remaining_volume": "rv",
        "executed_volume": "ev", "trades_count": "tc", "reserved_fee": "rsf",
        "remaining_fee": "rmf",
        "paid_fee": "pf", "locked": "l", "executed_funds": "ef", "time_in_force": "tif",
        "trade_fee": "tf", "is_maker": "im", "identifier": "id", "smp_type": "smpt",
        "prevented_volume": "pv", "prevented_locked": "pl", "trade_timestamp": "ttms",
        "order_timestamp": "otms", "timestamp": "tms", "stream_type": "st",
    },
    "myAsset": {
        "type": "ty", "asset_uuid": "astuid", "assets": "ast", "currency": "cu", "balance": "b",
        "locked": "l", "asset_timestamp": "asttms", "timestamp": "tms", "stream_type": "st",
    },
}  # fmt: skip


def to_simple(kind: str, frame: dict[str, Any]) -> dict[str, Any]:
    """The SIMPLE form of a DEFAULT frame."""
    keys = SIMPLE_KEYS[kind]
    result: dict[str, Any] = {}
    for key, value in frame.items():
        if isinstance(value, list):
            value = [
                {keys.get(k, k): v for k, v in item.items()} if isinstance(item, dict) else item
                for item in value
            ]
        result[keys.get(key, key)] = value
    return result


def state_of(order: Order) -> str:
    """Upbit's order state: wait, done or cancel."""
    if order.is_open:
        return "wait"
    if order.status is Status.FILLED:
        # A market buy by amount that could not spend every won ends as "cancel", as on Upbit.
        if order.upbit_ord_type == "price" and order.quote_order_qty is not None:
            spent = order.cumulative_quote + order.fees_paid
            if spent < order.quote_order_qty + order.reserved_fee:
                return "cancel"
        return "done"
    return "cancel"


def _side(order: Order) -> str:
    return "bid" if order.side is Side.BUY else "ask"


def _remaining_fee(order: Order) -> Decimal:
    if not order.is_open or order.side is Side.SELL or order.orig_qty in (None, ZERO):
        return ZERO
    return order.reserved_fee * order.remaining_qty / order.orig_qty


def _time_in_force(order: Order) -> str | None:
    if order.time_in_force is TimeInForce.GTC:
        return "post_only" if order.type.value == "LIMIT_MAKER" else None
    return order.time_in_force.value.lower()


def order_trade(order: Order, fill: Fill) -> dict[str, Any]:
    """One element of an order's "trades"."""
    return {
        "market": order.symbol,
        "uuid": fill.trade_uuid,
        "price": fmt_plain(fill.price),
        "volume": fmt_plain(fill.qty),
        "funds": fmt_plain(fill.quote_qty),
        "trend": "up" if order.side is Side.BUY else "down",
        "created_at": kst_iso(fill.time_ms, micros=True),
        "side": _side(order),
    }


def order_json(order: Order, with_trades: bool) -> dict[str, Any]:
    """GET /v1/order (with trades), POST /v1/orders and list endpoints (without)."""
    body: dict[str, Any] = {"market": order.symbol, "uuid": order.uuid, "side": _side(order)}
    body["ord_type"] = order.upbit_ord_type
    if order.upbit_ord_type == "price":
        body["price"] = fmt_plain(order.quote_order_qty or ZERO)
    elif order.price is not None:
        body["price"] = fmt_plain(order.price)
    body["state"] = state_of(order)
    body["created_at"] = kst_iso(order.created_ms)
    if order.orig_qty is not None:
        body["volume"] = fmt_plain(order.orig_qty)
        body["remaining_volume"] = fmt_plain(order.remaining_qty if order.is_open else ZERO)
    body["executed_volume"] = fmt_plain(order.executed_qty)
    body["reserved_fee"] = fmt_plain(order.reserved_fee)
    body["remaining_fee"] = fmt_plain(_remaining_fee(order))
    body["paid_fee"] = fmt_plain(order.fees_paid)
    body["locked"] = fmt_plain(order.locked_amount if order.is_open else ZERO)
    if order.orig_qty is not None:
        body["prevented_volume"] = "0"
    body["prevented_locked"] = "0"
    body["trades_count"] = len(order.fills)
    tif = _time_in_force(order)
    if tif is not None:
        body["time_in_force"] = tif
    if order.client_order_id is not None:
        body["identifier"] = order.client_order_id
    if with_trades:
        body["trades"] = [order_trade(order, fill) for fill in order.fills]
    return body


def accounts_json(wallet: Wallet, quote: str = "KRW") -> list[dict[str, Any]]:
    """GET /v1/accounts: the quote currency always, other currencies while held."""
    rows: list[dict[str, Any]] = []
    for currency, balance in wallet.balances.items():
        if currency != quote and balance.free == 0 and balance.locked == 0:
            continue
        avg = wallet.avg_buy_price.get(currency, ZERO)
        rows.append(
            {
                "currency": currency,
                "balance": fmt_plain(balance.free),
                "locked": fmt_plain(balance.locked),
                "avg_buy_price": fmt_plain(avg.quantize(Decimal("0.00000001"))),
                "avg_buy_price_modified": False,
                "unit_currency": quote,
            }
        )
    rows.sort(key=lambda row: (row["currency"] != quote, row["currency"]))
    return rows


def _change(price: Decimal, prev_close: Decimal) -> tuple[str, Decimal, Decimal]:
    if prev_close == 0 or price == prev_close:
        return "EVEN", ZERO, ZERO
    diff = price - prev_close
    return ("RISE" if diff > 0 else "FALL"), diff, (diff / prev_close).quantize(_RATE_PLACES)


def kst_day_start(now_ms: int) -> int:
    """Epoch ms of the last midnight in Korea (Upbit's trading day starts then)."""
    shifted = now_ms + _KST_OFFSET_MS
    return shifted - shifted % DAY_MS - _KST_OFFSET_MS


def _ticker_core(data: MarketData, now_ms: int) -> dict[str, Any]:
    day = data.stats(kst_day_start(now_ms), now_ms)
    rolling = data.rolling_24h(now_ms)
    highest, lowest = data.extremes()
    price = data.last_price
    change, diff, rate = _change(price, day.prev_close)
    trade_moment = utc(data.last_time_ms)
    today = kst(now_ms).date().isoformat()
    return {
        "trade_moment": trade_moment,
        "opening_price": day.open if day.count else price,
        "high_price": day.high,
        "low_price": day.low,
        "trade_price": price,
        "prev_closing_price": day.prev_close,
        "change": change,
        "change_price": abs(diff),
        "change_rate": abs(rate),
        "signed_change_price": diff,
        "signed_change_rate": rate,
        "trade_volume": data.last_qty,
        "acc_trade_price": day.quote_volume,
        "acc_trade_price_24h": rolling.quote_volume,
        "acc_trade_volume": day.volume,
        "acc_trade_volume_24h": rolling.volume,
        "highest_52_week_price": highest,
        "highest_52_week_date": today,
        "lowest_52_week_price": lowest,
        "lowest_52_week_date": today,
        "day": day,
    }


def ticker_rest(data: MarketData, now_ms: int) -> dict[str, Any]:
    """One element of GET /v1/ticker."""
    core = _ticker_core(data, now_ms)
    moment = core.pop("trade_moment")
    core.pop("day")
    kst_moment = kst(data.last_time_ms)
    body: dict[str, Any] = {
        "market": data.market.symbol,
        "trade_date": moment.strftime("%Y%m%d"),
        "trade_time": moment.strftime("%H%M%S"),
        "trade_date_kst": kst_moment.strftime("%Y%m%d"),
        "trade_time_kst": kst_moment.strftime("%H%M%S"),
        "trade_timestamp": data.last_time_ms,
    }
    for key in (
        "opening_price", "high_price", "low_price", "trade_price", "prev_closing_price", "change",
        "change_price", "change_rate", "signed_change_price", "signed_change_rate", "trade_volume",
        "acc_trade_price", "acc_trade_price_24h", "acc_trade_volume", "acc_trade_volume_24h",
        "highest_52_week_price", "highest_52_week_date", "lowest_52_week_price",
        "lowest_52_week_date",
    ):  # fmt: skip
        body[key] = core[key]
    body["timestamp"] = now_ms
    return body


def ticker_ws(data: MarketData, now_ms: int, stream_type: str) -> dict[str, Any]:
    """A DEFAULT ticker frame (keys and order as Upbit sends them)."""
    core = _ticker_core(data, now_ms)
    moment = core["trade_moment"]
    half = core["acc_trade_volume"] / 2
    return {
        "type": "ticker",
        "code": data.market.symbol,
        "opening_price": core["opening_price"],
        "high_price": core["high_price"],
        "low_price": core["low_price"],
        "trade_price": core["trade_price"],
        "prev_closing_price": core["prev_closing_price"],
        "acc_trade_price": core["acc_trade_price"],
        "change": core["change"],
        "change_price": core["change_price"],
        "signed_change_price": core["signed_change_price"],
        "change_rate": core["change_rate"],
        "signed_change_rate": core["signed_change_rate"],
        "ask_bid": "BID" if data.last_taker_buy else "ASK",
        "trade_volume": core["trade_volume"],
        "acc_trade_volume": core["acc_trade_volume"],
        "trade_date": moment.strftime("%Y%m%d"),
        "trade_time": moment.strftime("%H%M%S"),
        "trade_timestamp": data.last_time_ms,
        "acc_ask_volume": half,
        "acc_bid_volume": core["acc_trade_volume"] - half,
        "highest_52_week_price": core["highest_52_week_price"],
        "highest_52_week_date": core["highest_52_week_date"],
        "lowest_52_week_price": core["lowest_52_week_price"],
        "lowest_52_week_date": core["lowest_52_week_date"],
        "market_state": "ACTIVE",
        "is_trading_suspended": False,
        "delisting_date": None,
        "market_warning": "NONE",
        "timestamp": now_ms,
        "acc_trade_price_24h": core["acc_trade_price_24h"],
        "acc_trade_volume_24h": core["acc_trade_volume_24h"],
        "stream_type": stream_type,
    }


def trade_ws(trade: PublicTrade, data: MarketData, now_ms: int, stream_type: str) -> dict[str, Any]:
    """A DEFAULT trade frame."""
    prev_close = data.stats(kst_day_start(now_ms), now_ms).prev_close
    _, diff, _ = _change(trade.price, prev_close)
    moment = utc(trade.time_ms)
    return {
        "type": "trade",
        "code": trade.symbol,
        "timestamp": now_ms,
        "trade_date": moment.strftime("%Y-%m-%d"),
        "trade_time": moment.strftime("%H:%M:%S"),
        "trade_timestamp": trade.time_ms,
        "trade_price": trade.price,
        "trade_volume": trade.qty,
        "ask_bid": "ASK" if trade.buyer_is_maker else "BID",
        "prev_closing_price": prev_close,
        "change": "EVEN" if diff == 0 else ("RISE" if diff > 0 else "FALL"),
        "change_price": abs(diff),
        "sequential_id": trade.time_ms * 1000 + trade.trade_id % 1000,
        "best_ask_price": data.best_ask,
        "best_ask_size": data.book_size("ask"),
        "best_bid_price": data.best_bid,
        "best_bid_size": data.book_size("bid"),
        "stream_type": stream_type,
    }


def trade_tick_rest(trade: PublicTrade, prev_close: Decimal) -> dict[str, Any]:
    """One element of GET /v1/trades/ticks."""
    moment = utc(trade.time_ms)
    return {
        "market": trade.symbol,
        "trade_date_utc": moment.strftime("%Y-%m-%d"),
        "trade_time_utc": moment.strftime("%H:%M:%S"),
        "timestamp": trade.time_ms,
        "trade_price": trade.price,
        "trade_volume": trade.qty,
        "prev_closing_price": prev_close,
        "change_price": trade.price - prev_close,
        "ask_bid": "ASK" if trade.buyer_is_maker else "BID",
        "sequential_id": trade.time_ms * 1000 + trade.trade_id % 1000,
    }


def candle_json(symbol: str, bucket: Bucket, unit: int) -> dict[str, Any]:
    """One element of GET /v1/candles/minutes/{unit}."""
    return {
        "market": symbol,
        "candle_date_time_utc": utc(bucket.start_ms).strftime("%Y-%m-%dT%H:%M:%S"),
        "candle_date_time_kst": kst(bucket.start_ms).strftime("%Y-%m-%dT%H:%M:%S"),
        "opening_price": bucket.open,
        "high_price": bucket.high,
        "low_price": bucket.low,
        "trade_price": bucket.close,
        "timestamp": bucket.start_ms + 59_999,
        "candle_acc_trade_price": bucket.quote_volume,
        "candle_acc_trade_volume": bucket.volume,
        "unit": unit,
    }


def my_order_ws(update: OrderUpdate, closing: bool = False) -> dict[str, Any]:
    """A DEFAULT myOrder frame (price and volume describe the fill when state is "trade").

    With closing=True, the "done"/"cancel" frame Upbit sends after the trade that completed an order.
    """
    order = update.order
    fill = None if closing else update.fill
    state = "trade" if fill is not None else state_of(order)
    if update.execution == "NEW":
        state = "wait"
    avg = order.cumulative_quote / order.executed_qty if order.executed_qty else ZERO
    price = fill.price if fill is not None else (order.price or order.quote_order_qty or ZERO)
    volume = fill.qty if fill is not None else (order.orig_qty or ZERO)
    return {
        "type": "myOrder",
        "code": order.symbol,
        "uuid": order.uuid,
        "ask_bid": "BID" if order.side is Side.BUY else "ASK",
        "order_type": order.upbit_ord_type,
        "state": state,
        "trade_uuid": fill.trade_uuid if fill is not None else None,
        "price": price,
        "avg_price": avg,
        "volume": volume,
        "remaining_volume": order.remaining_qty if order.is_open else ZERO,
        "executed_volume": order.executed_qty,
        "trades_count": len(order.fills),
        "reserved_fee": order.reserved_fee,
        "remaining_fee": _remaining_fee(order),
        "paid_fee": order.fees_paid,
        "locked": order.locked_amount if order.is_open else ZERO,
        "executed_funds": order.cumulative_quote,
        "time_in_force": _time_in_force(order),
        "trade_fee": fill.fee if fill is not None else None,
        "is_maker": fill.is_maker if fill is not None else None,
        "identifier": order.client_order_id,
        "smp_type": None,
        "prevented_volume": ZERO,
        "prevented_locked": ZERO,
        "trade_timestamp": fill.time_ms if fill is not None else None,
        "order_timestamp": order.created_ms,
        "timestamp": update.time_ms,
        "stream_type": "REALTIME",
    }


def my_asset_ws(update: BalanceUpdate, asset_uuid: str) -> dict[str, Any]:
    """A DEFAULT myAsset frame."""
    return {
        "type": "myAsset",
        "asset_uuid": asset_uuid,
        "assets": [{"currency": a, "balance": free, "locked": locked} for a, free, locked in update.assets],
        "asset_timestamp": update.time_ms,
        "timestamp": update.time_ms,
        "stream_type": "REALTIME",
    }
