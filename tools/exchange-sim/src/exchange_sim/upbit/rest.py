"""Upbit's REST API (v1): quotation endpoints and the authenticated exchange endpoints ccxt uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_sim.accounts import Account
from exchange_sim.http import json_response, parse_iso_ms
from exchange_sim.marketdata import DAY_MS, MINUTE_MS
from exchange_sim.markets import Market
from exchange_sim.matching import MatchingEngine, OrderRejectedError
from exchange_sim.orders import Order, Side
from exchange_sim.state import SimState
from exchange_sim.upbit import errors
from exchange_sim.upbit.auth import authenticate, query_string_of_body, query_string_of_url
from exchange_sim.upbit.errors import UpbitError
from exchange_sim.upbit.format import (
    accounts_json,
    candle_json,
    kst_day_start,
    order_json,
    state_of,
    ticker_rest,
    trade_tick_rest,
)
from exchange_sim.upbit.validation import validate_order
from exchange_sim.wire import loads

Handler = Callable[[Request], Awaitable[Response]]
_MINUTE_UNITS = {1, 3, 5, 10, 15, 30, 60, 240}
_QUOTATION_LIMIT = "group=market; min=600; sec=9"
_EXCHANGE_LIMIT = "group=default; min=1800; sec=29"


def _int_param(value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise errors.UpbitError(400, 400, "Type mismatch error. Check the parameters type!") from exc
    return max(low, min(high, number))


class UpbitRest:
    """Handlers bound to one simulator state."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.engine: MatchingEngine = state.engines["upbit"]

    # ---- plumbing ------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Every Upbit route, relative to the /upbit mount."""
        return [
            Route("/v1/market/all", self._public(self.market_all), methods=["GET"]),
            Route("/v1/ticker", self._public(self.ticker), methods=["GET"]),
            Route("/v1/ticker/all", self._public(self.ticker_all), methods=["GET"]),
            Route("/v1/candles/minutes/{unit}", self._public(self.candles_minutes), methods=["GET"]),
            Route("/v1/candles/days", self._public(self.candles_days), methods=["GET"]),
            Route("/v1/trades/ticks", self._public(self.trades_ticks), methods=["GET"]),
            Route("/v1/orderbook", self._public(self.orderbook), methods=["GET"]),
            Route("/v1/accounts", self._private(self.accounts), methods=["GET"]),
            Route("/v1/orders/chance", self._private(self.chance), methods=["GET"]),
            Route("/v1/orders", self._orders_dispatch, methods=["GET", "POST"]),
            Route("/v1/order", self._order_dispatch, methods=["GET", "DELETE"]),
            Route("/v1/orders/open", self._private(self.orders_open), methods=["GET"]),
            Route("/v1/orders/closed", self._private(self.orders_closed), methods=["GET"]),
            Route("/v1/orders/uuids", self._private(self.orders_uuids), methods=["GET"]),
        ]

    def _public(self, handler: Callable[[Request], Any]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                body = handler(request)
            except UpbitError as exc:
                return exc.response()
            return json_response(body, headers={"Remaining-Req": _QUOTATION_LIMIT})

        return endpoint

    def _private(
        self, handler: Callable[[Request, Account, dict[str, Any]], Any], status: int = 200
    ) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                if request.method == "POST":
                    raw = await request.body()
                    try:
                        params = loads(raw) if raw else {}
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise errors.validation_error() from exc
                    if not isinstance(params, dict):
                        raise errors.validation_error()
                    hashed = query_string_of_body(params)
                else:
                    params = dict(request.query_params)
                    hashed = query_string_of_url(request.url.query)
                account = authenticate(self.state.accounts, request.headers.get("authorization"), hashed)
                body = handler(request, account, params)
            except UpbitError as exc:
                return exc.response()
            return json_response(body, status=status, headers={"Remaining-Req": _EXCHANGE_LIMIT})

        return endpoint

    async def _orders_dispatch(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._private(self.create_order, status=201)(request)
        return await self._private(self.orders_list)(request)

    async def _order_dispatch(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self._private(self.cancel_order)(request)
        return await self._private(self.get_order)(request)

    def _market(self, code: str | None) -> Market:
        if not code or code not in self.engine.markets:
            raise errors.code_not_found()
        return self.engine.markets[code]

    # ---- quotation -----------------------------------------------------------------------------

    def market_all(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/market/all."""
        details = (request.query_params.get("is_details") or request.query_params.get("isDetails")) == "true"
        rows: list[dict[str, Any]] = []
        for market in self.engine.markets.values():
            row: dict[str, Any] = {
                "market": market.symbol,
                "korean_name": market.korean_name,
                "english_name": market.english_name,
            }
            if details:
                row["market_event"] = {
                    "warning": False,
                    "caution": {
                        "PRICE_FLUCTUATIONS": False,
                        "TRADING_VOLUME_SOARING": False,
                        "DEPOSIT_AMOUNT_SOARING": False,
                        "GLOBAL_PRICE_DIFFERENCES": False,
                        "CONCENTRATION_OF_SMALL_ACCOUNTS": False,
                    },
                }
            rows.append(row)
        return rows

    def ticker(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/ticker?markets=KRW-BTC,KRW-ETH."""
        codes = [c.strip() for c in (request.query_params.get("markets") or "").split(",") if c.strip()]
        if not codes:
            raise errors.validation_error()
        markets = [self._market(code) for code in codes]
        now = self.state.replayer.clock()
        return [ticker_rest(self.engine.data[m.symbol], now) for m in markets]

    def ticker_all(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/ticker/all?quote_currencies=KRW."""
        quotes = {
            q.strip() for q in (request.query_params.get("quote_currencies") or "").split(",") if q.strip()
        }
        now = self.state.replayer.clock()
        return [
            ticker_rest(self.engine.data[m.symbol], now)
            for m in self.engine.markets.values()
            if not quotes or m.quote in quotes
        ]

    def _candles(self, request: Request, interval_ms: int) -> tuple[Market, list[Any]]:
        market = self._market(request.query_params.get("market"))
        count = _int_param(request.query_params.get("count"), 1, 1, 200)
        to_text = request.query_params.get("to")
        try:
            end = parse_iso_ms(to_text) - 1 if to_text else None
        except ValueError as exc:
            raise errors.validation_error() from exc
        buckets = self.engine.data[market.symbol].candles(interval_ms, None, end, count, fill_gaps=False)
        return market, list(reversed(buckets))

    def candles_minutes(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/candles/minutes/{unit}: newest first, minutes without trades left out."""
        try:
            unit = int(request.path_params["unit"])
        except ValueError as exc:
            raise errors.validation_error() from exc
        if unit not in _MINUTE_UNITS:
            raise errors.UpbitError(400, 400, "Invalid unit")
        market, buckets = self._candles(request, unit * MINUTE_MS)
        return [candle_json(market.symbol, bucket, unit) for bucket in buckets]

    def candles_days(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/candles/days: daily candles (UTC days, as Upbit's start at 09:00 KST)."""
        market, buckets = self._candles(request, DAY_MS)
        rows: list[dict[str, Any]] = []
        for bucket in buckets:
            row = candle_json(market.symbol, bucket, 1440)
            del row["unit"]
            # Only the minute before the day: stats() would merge every minute from there to now.
            previous = self.engine.data[market.symbol].close_before(bucket.start_ms)
            row["prev_closing_price"] = previous
            row["change_price"] = bucket.close - previous
            row["change_rate"] = (
                ((bucket.close - previous) / previous).quantize(Decimal("1e-10")) if previous else 0
            )
            rows.append(row)
        return rows

    def trades_ticks(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/trades/ticks: the newest trades first."""
        market = self._market(request.query_params.get("market"))
        count = _int_param(request.query_params.get("count"), 1, 1, 500)
        data = self.engine.data[market.symbol]
        now = self.state.replayer.clock()
        prev_close = data.stats(kst_day_start(now), now).prev_close
        trades = list(data.tape)[-count:]
        return [trade_tick_rest(trade, prev_close) for trade in reversed(trades)]

    def orderbook(self, request: Request) -> list[dict[str, Any]]:
        """GET /v1/orderbook: a synthetic 15-level book around the last trade."""
        codes = [c.strip() for c in (request.query_params.get("markets") or "").split(",") if c.strip()]
        if not codes:
            raise errors.validation_error()
        books: list[dict[str, Any]] = []
        for market in (self._market(code) for code in codes):
            data = self.engine.data[market.symbol]
            units = []
            for level in range(15):
                ask = data.best_ask + market.tick_at(data.best_ask) * level
                bid = max(
                    market.tick_at(data.best_bid),
                    data.best_bid - market.tick_at(data.best_bid) * level,
                )
                units.append(
                    {
                        "ask_price": ask,
                        "bid_price": bid,
                        "ask_size": data.book_size("ask"),
                        "bid_size": data.book_size("bid"),
                    }
                )
            total = sum((u["ask_size"] for u in units), Decimal(0))
            books.append(
                {
                    "market": market.symbol,
                    "timestamp": self.state.replayer.clock(),
                    "total_ask_size": total,
                    "total_bid_size": sum((u["bid_size"] for u in units), Decimal(0)),
                    "orderbook_units": units,
                    "level": 0,
                }
            )
        return books

    # ---- exchange ------------------------------------------------------------------------------

    def accounts(self, request: Request, account: Account, params: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /v1/accounts."""
        return accounts_json(account.wallet("upbit"))

    def chance(self, request: Request, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        """GET /v1/orders/chance?market=KRW-BTC: fees, minimums and the two balances involved."""
        code = params.get("market")
        if not code or code not in self.engine.markets:
            raise errors.market_not_found(str(code))
        market = self.engine.markets[code]
        fee = f"{self.engine.fees.taker}"
        maker = f"{self.engine.fees.maker}"
        rows = {row["currency"]: row for row in accounts_json(account.wallet("upbit"))}

        def row_of(currency: str) -> dict[str, Any]:
            return rows.get(currency) or {
                "currency": currency,
                "balance": "0",
                "locked": "0",
                "avg_buy_price": "0",
                "avg_buy_price_modified": False,
                "unit_currency": market.quote,
            }

        return {
            "bid_fee": fee,
            "ask_fee": fee,
            "maker_bid_fee": maker,
            "maker_ask_fee": maker,
            "market": {
                "id": market.symbol,
                "name": f"{market.base}/{market.quote}",
                "order_types": ["limit"],
                "order_sides": ["ask", "bid"],
                "bid_types": ["best_fok", "best_ioc", "limit", "limit_fok", "limit_ioc", "price"],
                "ask_types": ["best_fok", "best_ioc", "limit", "limit_fok", "limit_ioc", "market"],
                "bid": {
                    "currency": market.quote,
                    "price_unit": None,
                    "min_total": market.min_notional,
                },
                "ask": {
                    "currency": market.base,
                    "price_unit": None,
                    "min_total": market.min_notional,
                },
                "max_total": f"{market.max_notional}.0",
                "state": "active",
            },
            "bid_account": row_of(market.quote),
            "ask_account": row_of(market.base),
        }

    def create_order(self, request: Request, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/orders: limit, price (market buy by KRW amount), market (market sell), best."""
        request_ = validate_order(self.engine, account, params)
        side = "bid" if request_.side is Side.BUY else "ask"
        try:
            order = self.engine.place(request_)
        except OrderRejectedError as exc:
            if exc.reason == "would_match":
                raise errors.UpbitError(
                    400, "invalid_post_only", "post_only 주문이 즉시 체결될 수 있습니다."
                ) from exc
            raise errors.insufficient_funds(side) from exc
        return order_json(order, with_trades=False)

    def _find(self, account: Account, params: dict[str, Any]) -> Order:
        uuid_, identifier = params.get("uuid"), params.get("identifier")
        if not uuid_ and not identifier:
            raise errors.validation_error("uuid 혹은 identifier 중 하나는 필수입니다.")
        order = (
            self.engine.by_uuid.get(str(uuid_))
            if uuid_
            else self.engine.by_client.get((account.api_key, str(identifier)))
        )
        if order is None or order.api_key != account.api_key:
            raise errors.order_not_found()
        return order

    def get_order(self, request: Request, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        """GET /v1/order?uuid=... or ?identifier=..."""
        return order_json(self._find(account, params), with_trades=True)

    def cancel_order(self, request: Request, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        """DELETE /v1/order: answers with the order as it was (Upbit cancels asynchronously)."""
        order = self._find(account, params)
        if not order.is_open:
            raise errors.order_not_found()
        before = order_json(order.snapshot(), with_trades=False)
        self.engine.cancel(order)
        return before

    def _listing(
        self, account: Account, params: dict[str, Any], request: Request, states: set[str]
    ) -> list[Order]:
        market = params.get("market")
        orders = [
            o
            for o in self.engine.account_orders(account.api_key)
            if (not market or o.symbol == market) and state_of(o) in states
        ]
        if (params.get("order_by") or "desc") == "desc":
            orders.reverse()
        return orders

    def _states(
        self, request: Request, params: dict[str, Any], default: set[str], allowed: set[str]
    ) -> set[str]:
        listed = set(request.query_params.getlist("states[]"))
        single = params.get("state")
        chosen = listed or ({single} if single else default)
        if not chosen <= allowed:
            raise errors.validation_error()
        return chosen

    def _page(self, orders: list[Order], params: dict[str, Any], max_limit: int) -> list[dict[str, Any]]:
        limit = _int_param(params.get("limit"), 100, 1, max_limit)
        page = _int_param(params.get("page"), 1, 1, 1_000_000)
        chunk = orders[(page - 1) * limit : page * limit]
        return [order_json(order, with_trades=False) for order in chunk]

    def orders_open(self, request: Request, account: Account, params: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /v1/orders/open (state wait by default)."""
        states = self._states(request, params, {"wait"}, {"wait", "watch"})
        return self._page(self._listing(account, params, request, states), params, 100)

    def orders_closed(
        self, request: Request, account: Account, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """GET /v1/orders/closed (done and cancel by default)."""
        states = self._states(request, params, {"done", "cancel"}, {"done", "cancel"})
        orders = self._listing(account, params, request, states)
        start, end = params.get("start_time"), params.get("end_time")
        if start:
            orders = [o for o in orders if o.created_ms >= _int_param(start, 0, 0, 1 << 62)]
        if end:
            orders = [o for o in orders if o.created_ms <= _int_param(end, 0, 0, 1 << 62)]
        return self._page(orders, {**params, "page": "1"}, 1000)

    def orders_list(self, request: Request, account: Account, params: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /v1/orders (the older listing): state=wait by default, or uuids[]/identifiers[]."""
        uuids = request.query_params.getlist("uuids[]")
        identifiers = request.query_params.getlist("identifiers[]")
        if uuids or identifiers:
            return self.orders_uuids(request, account, params)
        states = self._states(request, params, {"wait"}, {"wait", "watch", "done", "cancel"})
        return self._page(self._listing(account, params, request, states), params, 100)

    def orders_uuids(
        self, request: Request, account: Account, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """GET /v1/orders/uuids?uuids[]=...&identifiers[]=..."""
        uuids = set(request.query_params.getlist("uuids[]"))
        identifiers = set(request.query_params.getlist("identifiers[]"))
        if not uuids and not identifiers:
            raise errors.validation_error()
        orders = [
            o
            for o in self.engine.account_orders(account.api_key)
            if o.uuid in uuids or (o.client_order_id is not None and o.client_order_id in identifiers)
        ]
        if (params.get("order_by") or "desc") == "desc":
            orders.reverse()
        return [order_json(order, with_trades=False) for order in orders]


def upbit_routes(state: SimState) -> list[BaseRoute]:
    """The Upbit REST routes for a simulator."""
    return UpbitRest(state).routes()
