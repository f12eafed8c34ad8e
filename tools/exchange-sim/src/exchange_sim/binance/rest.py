"""Binance spot REST (/api/v3): market data and the SIGNED trading endpoints ccxt uses."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_sim.accounts import Account
from exchange_sim.binance import errors
from exchange_sim.binance.auth import authenticate
from exchange_sim.binance.errors import CLIENT_ID_PATTERN, BinanceError
from exchange_sim.binance.format import (
    KLINE_INTERVALS,
    account_json,
    exchange_info,
    kline,
    my_trade,
    order_cancel,
    order_json,
    order_post,
    ticker_24hr,
)
from exchange_sim.binance.validation import market_of, parse_int, validate_order
from exchange_sim.http import json_response
from exchange_sim.marketdata import MINUTE_MS
from exchange_sim.markets import Market, assets_of
from exchange_sim.matching import MatchingEngine, OrderRejectedError
from exchange_sim.orders import Order, OrderType
from exchange_sim.state import SimState
from exchange_sim.wire import fmt8

Params = dict[str, str]
Handler = Callable[[Request], Awaitable[Response]]
# A route's request weight (x-mbx-used-weight-1m), as Binance's REST docs list it: fixed or by parameters.
Weight = int | Callable[[Params], int]
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)
_NUMBER_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_MAX_OPEN_ORDERS = 200
_MINI_KEYS = (
    *("symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume"),
    *("openTime", "closeTime", "firstId", "lastId", "count"),
)


def _symbol_count(params: Params) -> int | None:
    """How many symbols `symbols=[...]` names; None without it."""
    if "symbols" not in params:
        return None
    try:
        names = json.loads(params["symbols"])
    except ValueError:
        return 1
    return len(names) if isinstance(names, list) else 1


def _ticker_24hr_weight(params: Params) -> int:
    if "symbol" in params:
        return 2
    count = _symbol_count(params)
    if count is None or count > 100:
        return 80
    return 2 if count <= 20 else 40


def _ticker_weight(params: Params) -> int:
    return 2 if "symbol" in params else 4


def _depth_weight(params: Params) -> int:
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class BinanceRest:
    """Handlers bound to one simulator state."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.engine: MatchingEngine = state.engines["binance"]
        self._weight_minute = 0
        self._weight = 0

    def routes(self) -> list[BaseRoute]:
        """Every Binance REST route, relative to the /binance mount."""
        public = self._public
        signed = self._signed
        return [
            Route("/api/v3/ping", public(lambda p: {}, 1), methods=["GET"]),
            Route(
                "/api/v3/time",
                public(lambda p: {"serverTime": self.state.replayer.clock()}, 1),
                methods=["GET"],
            ),
            Route("/api/v3/exchangeInfo", public(self.exchange_info, 20), methods=["GET"]),
            Route("/api/v3/ticker/24hr", public(self.ticker_24hr, _ticker_24hr_weight), methods=["GET"]),
            Route("/api/v3/ticker/price", public(self.ticker_price, _ticker_weight), methods=["GET"]),
            Route("/api/v3/ticker/bookTicker", public(self.book_ticker, _ticker_weight), methods=["GET"]),
            Route("/api/v3/klines", public(self.klines, 2), methods=["GET"]),
            Route("/api/v3/uiKlines", public(self.klines, 2), methods=["GET"]),
            Route("/api/v3/depth", public(self.depth, _depth_weight), methods=["GET"]),
            Route("/api/v3/trades", public(self.trades, 25), methods=["GET"]),
            Route("/api/v3/aggTrades", public(self.agg_trades, 4), methods=["GET"]),
            Route("/api/v3/avgPrice", public(self.avg_price, 2), methods=["GET"]),
            Route("/api/v3/account", signed(self.account), methods=["GET"]),
            Route("/api/v3/order", self._order_dispatch, methods=["GET", "POST", "DELETE"]),
            Route("/api/v3/order/test", signed(self.order_test), methods=["POST"]),
            Route("/api/v3/openOrders", self._open_orders_dispatch, methods=["GET", "DELETE"]),
            Route("/api/v3/allOrders", signed(self.all_orders), methods=["GET"]),
            Route("/api/v3/myTrades", signed(self.my_trades), methods=["GET"]),
        ]

    # ---- plumbing ------------------------------------------------------------------------------

    def _headers(self, weight: int) -> dict[str, str]:
        minute = self.state.replayer.clock() // MINUTE_MS
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        self._weight += weight
        return {"x-mbx-used-weight": str(self._weight), "x-mbx-used-weight-1m": str(self._weight)}

    def _public(self, handler: Callable[[Params], Any], weight: Weight) -> Handler:
        async def endpoint(request: Request) -> Response:
            params = dict(request.query_params)
            try:
                body = handler(params)
            except BinanceError as exc:
                return exc.response(self._headers(1))
            return json_response(body, headers=self._headers(weight(params) if callable(weight) else weight))

        return endpoint

    def _signed(self, handler: Callable[[Account, Params], Any]) -> Handler:
        async def endpoint(request: Request) -> Response:
            raw_query = request.url.query
            raw_body = (await request.body()).decode("utf-8", errors="replace")
            params: Params = dict(parse_qsl(raw_query, keep_blank_values=True))
            params.update(parse_qsl(raw_body, keep_blank_values=True))
            try:
                account = authenticate(
                    self.state.accounts,
                    request.headers.get("x-mbx-apikey"),
                    params,
                    raw_query,
                    raw_body,
                    self.state.replayer.clock(),
                )
                body = handler(account, params)
            except BinanceError as exc:
                return exc.response(self._headers(1))
            return json_response(body, headers=self._headers(4))

        return endpoint

    async def _order_dispatch(self, request: Request) -> Response:
        handler = {"POST": self.create_order, "DELETE": self.cancel_order}.get(request.method, self.get_order)
        return await self._signed(handler)(request)

    async def _open_orders_dispatch(self, request: Request) -> Response:
        handler = self.cancel_open_orders if request.method == "DELETE" else self.open_orders
        return await self._signed(handler)(request)

    def _market(self, params: Params, required: bool = True) -> Market | None:
        return market_of(self.engine, params, required)

    def _markets(self, params: Params) -> list[Market] | None:
        if "symbols" in params:
            try:
                names = json.loads(params["symbols"])
            except ValueError as exc:
                raise errors.bad_symbol() from exc
            if not isinstance(names, list) or not names:
                raise errors.bad_symbol()
            markets = [self.engine.markets.get(str(name)) for name in names]
            if any(m is None for m in markets):
                raise errors.bad_symbol()
            return [m for m in markets if m is not None]
        market = self._market(params, required=False)
        return [market] if market is not None else None

    # ---- market data ---------------------------------------------------------------------------

    def exchange_info(self, params: Params) -> dict[str, Any]:
        """GET /api/v3/exchangeInfo (all, symbol= or symbols=)."""
        markets = self._markets(params) or list(self.engine.markets.values())
        return exchange_info(markets, self.state.replayer.clock())

    def ticker_24hr(self, params: Params) -> Any:
        """GET /api/v3/ticker/24hr: an object for symbol=, a list otherwise."""
        now = self.state.replayer.clock()
        markets = self._markets(params)
        rows = [
            ticker_24hr(self.engine.data[m.symbol], now) for m in (markets or self.engine.markets.values())
        ]
        if params.get("type") == "MINI":
            keep = _MINI_KEYS
            rows = [{k: row[k] for k in keep} for row in rows]
        return rows[0] if "symbol" in params else rows

    def ticker_price(self, params: Params) -> Any:
        """GET /api/v3/ticker/price."""
        markets = self._markets(params) or list(self.engine.markets.values())
        rows = [{"symbol": m.symbol, "price": fmt8(self.engine.data[m.symbol].last_price)} for m in markets]
        return rows[0] if "symbol" in params else rows

    def book_ticker(self, params: Params) -> Any:
        """GET /api/v3/ticker/bookTicker."""
        markets = self._markets(params) or list(self.engine.markets.values())
        rows = []
        for market in markets:
            data = self.engine.data[market.symbol]
            rows.append(
                {
                    "symbol": market.symbol,
                    "bidPrice": fmt8(data.best_bid),
                    "bidQty": fmt8(data.book_size("bid")),
                    "askPrice": fmt8(data.best_ask),
                    "askQty": fmt8(data.book_size("ask")),
                }
            )
        return rows[0] if "symbol" in params else rows

    def klines(self, params: Params) -> list[list[Any]]:
        """GET /api/v3/klines (empty intervals are filled with flat candles, as Binance does)."""
        market = self._market(params)
        assert market is not None
        interval = params.get("interval")
        if not interval:
            raise errors.mandatory("interval")
        if interval not in KLINE_INTERVALS:
            raise errors.bad_interval()
        limit = max(1, min(1000, parse_int(params, "limit", 500) or 500))
        interval_ms = KLINE_INTERVALS[interval]
        rows = self.engine.data[market.symbol].candles(
            interval_ms, parse_int(params, "startTime"), parse_int(params, "endTime"), limit, fill_gaps=True
        )
        return [kline(bucket, interval_ms) for bucket in rows]

    def depth(self, params: Params) -> dict[str, Any]:
        """GET /api/v3/depth: a synthetic book around the last trade."""
        market = self._market(params)
        assert market is not None
        data = self.engine.data[market.symbol]
        levels = max(1, min(100, parse_int(params, "limit", 100) or 100))
        tick = market.tick_at(data.last_price)
        bids = [[fmt8(data.best_bid - tick * i), fmt8(data.book_size("bid"))] for i in range(levels)]
        asks = [[fmt8(data.best_ask + tick * i), fmt8(data.book_size("ask"))] for i in range(levels)]
        return {
            "lastUpdateId": data.book_update_id,
            "bids": [b for b in bids if Decimal(b[0]) > 0],
            "asks": asks,
        }

    def trades(self, params: Params) -> list[dict[str, Any]]:
        """GET /api/v3/trades: the newest trades, oldest first."""
        market = self._market(params)
        assert market is not None
        limit = max(1, min(1000, parse_int(params, "limit", 500) or 500))
        return [
            {
                "id": t.trade_id,
                "price": fmt8(t.price),
                "qty": fmt8(t.qty),
                "quoteQty": fmt8(t.price * t.qty),
                "time": t.time_ms,
                "isBuyerMaker": t.buyer_is_maker,
                "isBestMatch": True,
            }
            for t in list(self.engine.data[market.symbol].tape)[-limit:]
        ]

    def agg_trades(self, params: Params) -> list[dict[str, Any]]:
        """GET /api/v3/aggTrades (each trade is its own aggregate)."""
        market = self._market(params)
        assert market is not None
        limit = max(1, min(1000, parse_int(params, "limit", 500) or 500))
        tape = list(self.engine.data[market.symbol].tape)
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        from_id = parse_int(params, "fromId")
        selected = [
            t
            for t in tape
            if (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
            and (from_id is None or t.trade_id >= from_id)
        ]
        chosen = selected[:limit] if (start is not None or from_id is not None) else selected[-limit:]
        return [
            {
                "a": t.trade_id,
                "p": fmt8(t.price),
                "q": fmt8(t.qty),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time_ms,
                "m": t.buyer_is_maker,
                "M": True,
            }
            for t in chosen
        ]

    def avg_price(self, params: Params) -> dict[str, Any]:
        """GET /api/v3/avgPrice: volume-weighted over the last 5 minutes."""
        market = self._market(params)
        assert market is not None
        data = self.engine.data[market.symbol]
        now = self.state.replayer.clock()
        stats = data.stats(now - now % MINUTE_MS - 4 * MINUTE_MS, now)
        price = stats.quote_volume / stats.volume if stats.volume else data.last_price
        return {"mins": 5, "price": fmt8(price), "closeTime": data.last_time_ms}

    # ---- account and orders --------------------------------------------------------------------

    def account(self, account: Account, params: Params) -> dict[str, Any]:
        """GET /api/v3/account."""
        return account_json(
            account.wallet("binance"),
            assets_of("binance"),
            self.engine.fees.maker,
            self.engine.fees.taker,
            params.get("omitZeroBalances") == "true",
            uid=int(hashlib.sha256(account.api_key.encode()).hexdigest()[:8], 16),
        )

    def create_order(self, account: Account, params: Params) -> dict[str, Any]:
        """POST /api/v3/order."""
        request = validate_order(self.engine, account, params)
        try:
            order = self.engine.place(request)
        except OrderRejectedError as exc:
            raise (
                errors.would_match() if exc.reason == "would_match" else errors.insufficient_balance()
            ) from exc
        default = "FULL" if request.type in (OrderType.MARKET, OrderType.LIMIT) else "ACK"
        response_type = params.get("newOrderRespType") or default
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise errors.illegal_chars("newOrderRespType", "ACK|RESULT|FULL")
        return order_post(order, response_type)

    def order_test(self, account: Account, params: Params) -> dict[str, Any]:
        """POST /api/v3/order/test: validation only."""
        validate_order(self.engine, account, params)
        return {}

    def _find(self, account: Account, params: Params) -> Order | None:
        market = self._market(params)
        assert market is not None
        order_id = parse_int(params, "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise errors.one_of_order_ids()
        order = (
            self.engine.orders.get(order_id)
            if order_id is not None
            else self.engine.by_client.get((account.api_key, client_id or ""))
        )
        if order is None or order.api_key != account.api_key or order.symbol != market.symbol:
            return None
        return order

    def get_order(self, account: Account, params: Params) -> dict[str, Any]:
        """GET /api/v3/order by orderId or origClientOrderId."""
        order = self._find(account, params)
        if order is None:
            raise errors.no_such_order()
        return order_json(order)

    def cancel_order(self, account: Account, params: Params) -> dict[str, Any]:
        """DELETE /api/v3/order."""
        order = self._find(account, params)
        if order is None or not order.is_open:
            raise errors.unknown_order_cancel()
        self.engine.cancel(order, params.get("newClientOrderId") or None)
        return order_cancel(order)

    def open_orders(self, account: Account, params: Params) -> list[dict[str, Any]]:
        """GET /api/v3/openOrders (one symbol, or all)."""
        market = self._market(params, required=False)
        return [
            order_json(o) for o in self.engine.open_orders(account.api_key, market.symbol if market else None)
        ]

    def cancel_open_orders(self, account: Account, params: Params) -> list[dict[str, Any]]:
        """DELETE /api/v3/openOrders?symbol=..."""
        market = self._market(params)
        assert market is not None
        orders = self.engine.open_orders(account.api_key, market.symbol)
        if not orders:
            raise errors.unknown_order_cancel()
        for order in orders:
            self.engine.cancel(order)
        return [order_cancel(o) for o in orders]

    def all_orders(self, account: Account, params: Params) -> list[dict[str, Any]]:
        """GET /api/v3/allOrders."""
        market = self._market(params)
        assert market is not None
        limit = max(1, min(1000, parse_int(params, "limit", 500) or 500))
        from_id, start, end = (
            parse_int(params, "orderId"),
            parse_int(params, "startTime"),
            parse_int(params, "endTime"),
        )
        orders = [
            o
            for o in self.engine.account_orders(account.api_key)
            if o.symbol == market.symbol
            and (from_id is None or o.order_id >= from_id)
            and (start is None or o.created_ms >= start)
            and (end is None or o.created_ms <= end)
        ]
        chosen = orders[:limit] if (from_id is not None or start is not None) else orders[-limit:]
        return [order_json(o) for o in chosen]

    def my_trades(self, account: Account, params: Params) -> list[dict[str, Any]]:
        """GET /api/v3/myTrades."""
        market = self._market(params)
        assert market is not None
        limit = max(1, min(1000, parse_int(params, "limit", 500) or 500))
        order_id, from_id = parse_int(params, "orderId"), parse_int(params, "fromId")
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        rows = [
            (order, fill)
            for order in self.engine.account_orders(account.api_key)
            if order.symbol == market.symbol and (order_id is None or order.order_id == order_id)
            for fill in order.fills
            if (from_id is None or fill.trade_id >= from_id)
            and (start is None or fill.time_ms >= start)
            and (end is None or fill.time_ms <= end)
        ]
        rows.sort(key=lambda row: row[1].trade_id)
        chosen = rows[:limit] if (from_id is not None or start is not None) else rows[-limit:]
        return [my_trade(order, fill) for order, fill in chosen]


def binance_routes(state: SimState) -> list[BaseRoute]:
    """The Binance REST routes for a simulator."""
    return BinanceRest(state).routes()
