"""The simulator's own control API under /_sim (not part of either exchange)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_sim.accounts import Account
from exchange_sim.faults import HTTP_FAULT_KINDS, HttpFaultKind
from exchange_sim.http import json_response
from exchange_sim.markets import VENUES, Venue
from exchange_sim.orders import Order
from exchange_sim.settings import ReplaySpeed
from exchange_sim.state import SimState
from exchange_sim.upbit.format import state_of
from exchange_sim.wire import BadNumberError, fmt_plain, loads, parse_decimal

Handler = Callable[[Request], Awaitable[Response]]
_MAX_STEP_CANDLES = 100_000


class ControlError(Exception):
    """A bad control request: answered as {"error": message} with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = loads(raw)
    except ValueError as exc:
        raise ControlError(400, "body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _amount(value: object, what: str) -> Decimal:
    try:
        amount = parse_decimal(value)
    except BadNumberError as exc:
        raise ControlError(400, f"{what} must be a decimal number") from exc
    return amount


def _venue(value: object) -> Venue:
    if value not in VENUES:
        raise ControlError(404, f"unknown exchange {value!r}; use one of {', '.join(VENUES)}")
    return value


def _speed(value: object) -> ReplaySpeed:
    if value == "max":
        return "max"
    speed = _amount(value, "speed")
    if speed < 0:
        raise ControlError(400, "speed must be >= 0 or 'max'")
    return float(speed)


def order_view(order: Order) -> dict[str, Any]:
    """An order as the control API shows it, venue-neutral."""
    return {
        "exchange": order.venue,
        "apiKey": order.api_key,
        "symbol": order.symbol,
        "orderId": str(order.order_id) if order.venue == "binance" else order.uuid,
        "clientOrderId": order.client_order_id,
        "side": order.side.value,
        "type": order.type.value if order.venue == "binance" else order.upbit_ord_type,
        "status": order.status.value if order.venue == "binance" else state_of(order),
        "price": fmt_plain(order.price) if order.price is not None else None,
        "quantity": fmt_plain(order.orig_qty) if order.orig_qty is not None else None,
        "quoteQuantity": fmt_plain(order.quote_order_qty) if order.quote_order_qty is not None else None,
        "executedQuantity": fmt_plain(order.executed_qty),
        "executedQuote": fmt_plain(order.cumulative_quote),
        "fees": fmt_plain(order.fees_paid),
        "createdAt": order.created_ms,
        "updatedAt": order.updated_ms,
        "fills": [
            {
                "tradeId": fill.trade_id,
                "price": fmt_plain(fill.price),
                "quantity": fmt_plain(fill.qty),
                "quote": fmt_plain(fill.quote_qty),
                "fee": fmt_plain(fill.fee),
                "feeAsset": fill.fee_asset,
                "maker": fill.is_maker,
                "time": fill.time_ms,
            }
            for fill in order.fills
        ],
    }


def _balances(account: Account) -> dict[str, dict[str, dict[str, str]]]:
    return {
        venue: {
            asset: {"free": fmt_plain(balance.free), "locked": fmt_plain(balance.locked)}
            for asset, balance in account.wallet(venue).balances.items()
        }
        for venue in VENUES
    }


class ControlApi:
    """Handlers bound to one simulator state."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """Every /_sim route, relative to the mount."""
        wrap = self._wrap
        return [
            Route("/health", wrap(self.health), methods=["GET"]),
            Route("/accounts", wrap(self.create_account), methods=["POST"]),
            Route("/accounts/{api_key}", wrap(self.get_account), methods=["GET"]),
            Route("/accounts/{api_key}/revoke", wrap(self.revoke_key), methods=["POST"]),
            Route("/prices", wrap(self.prices), methods=["GET"]),
            Route("/prices/{exchange}/{symbol}", wrap(self.set_price), methods=["PUT", "DELETE"]),
            Route("/pause", wrap(self.pause), methods=["POST"]),
            Route("/resume", wrap(self.resume), methods=["POST"]),
            Route("/step", wrap(self.step), methods=["POST"]),
            Route("/replay", wrap(self.replay), methods=["GET", "PUT"]),
            Route("/orders", wrap(self.orders), methods=["GET"]),
            Route("/user-streams", wrap(self.user_streams), methods=["GET"]),
            Route("/faults", wrap(self.faults), methods=["GET", "POST", "DELETE"]),
            Route("/requests", wrap(self.requests), methods=["GET", "DELETE"]),
        ]

    def _wrap(self, handler: Callable[[Request], Awaitable[tuple[int, Any]]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                status, body = await handler(request)
            except ControlError as exc:
                return json_response({"error": exc.message}, exc.status)
            return json_response(body, status)

        return endpoint

    async def health(self, request: Request) -> tuple[int, Any]:
        """GET /_sim/health."""
        state = self.state
        return 200, {
            "status": "ok",
            "startedAt": state.started_ms,
            "replay": state.replayer.status(),
            "accounts": len(state.accounts.all()),
            "websockets": state.connections.count(),
            "websocketTopics": state.connections.topics(),
            "pendingFaults": len(state.faults.pending()),
        }

    async def create_account(self, request: Request) -> tuple[int, Any]:
        """POST /_sim/accounts {"balances": {"KRW": ..., "USDT": ...}} -> keys for both venues."""
        body = await _json(request)
        raw = body.get("balances", {})
        if not isinstance(raw, dict):
            raise ControlError(400, "balances must be an object of asset -> amount")
        balances = {str(asset).upper(): _amount(value, f"balances.{asset}") for asset, value in raw.items()}
        if any(amount < 0 for amount in balances.values()):
            raise ControlError(400, "balances must not be negative")
        api_key, secret_key = body.get("apiKey"), body.get("secretKey")
        for name, value in (("apiKey", api_key), ("secretKey", secret_key)):
            if value is not None and (
                not isinstance(value, str) or not value.isalnum() or not 16 <= len(value) <= 128
            ):
                raise ControlError(400, f"{name} must be 16-128 letters and digits")
        try:
            account = self.state.accounts.create(
                balances,
                self.state.replayer.clock(),
                cast(str | None, api_key),
                cast(str | None, secret_key),
            )
        except ValueError as exc:
            raise ControlError(409, str(exc)) from exc
        return 201, {"apiKey": account.api_key, "secretKey": account.secret_key}

    async def get_account(self, request: Request) -> tuple[int, Any]:
        """GET /_sim/accounts/{apiKey}: balances on both venues."""
        account = self.state.accounts.get(request.path_params["api_key"])
        if account is None:
            raise ControlError(404, "no such account")
        return 200, {
            "apiKey": account.api_key,
            "revoked": account.revoked,
            "balances": _balances(account),
        }

    async def revoke_key(self, request: Request) -> tuple[int, Any]:
        """POST /_sim/accounts/{apiKey}/revoke: both venues refuse the key from now on (its owner deleted it)."""
        api_key = request.path_params["api_key"]
        if not self.state.accounts.revoke(api_key):
            raise ControlError(404, "no such account")
        return 200, {"apiKey": api_key, "revoked": True}

    async def prices(self, request: Request) -> tuple[int, Any]:
        """GET /_sim/prices: the last price of every market, and which ones are pinned."""
        return 200, {
            venue: {
                symbol: {"price": fmt_plain(data.last_price), "pinned": symbol in engine.pinned}
                for symbol, data in engine.data.items()
            }
            for venue, engine in self.state.engines.items()
        }

    async def set_price(self, request: Request) -> tuple[int, Any]:
        """PUT pins a market's price (a trade, orders matched); DELETE gives it back to replay."""
        venue = _venue(request.path_params["exchange"])
        engine = self.state.engines[venue]
        symbol = request.path_params["symbol"]
        if symbol not in engine.markets:
            raise ControlError(404, f"unknown symbol {symbol!r} on {venue}")
        if request.method == "DELETE":
            engine.pinned.discard(symbol)
            return 200, {"exchange": venue, "symbol": symbol, "pinned": False}
        body = await _json(request)
        price = _amount(body.get("price"), "price")
        market = engine.markets[symbol]
        if price <= 0:
            raise ControlError(400, "price must be positive")
        price = market.round_price(price)
        qty = _amount(body["quantity"], "quantity") if "quantity" in body else None
        engine.pinned.add(symbol)
        engine.on_tick(symbol, price, qty)
        return 200, {"exchange": venue, "symbol": symbol, "price": fmt_plain(price), "pinned": True}

    async def pause(self, request: Request) -> tuple[int, Any]:
        """POST /_sim/pause."""
        self.state.replayer.pause()
        return 200, self.state.replayer.status()

    async def resume(self, request: Request) -> tuple[int, Any]:
        """POST /_sim/resume, optionally {"speed": candles per second | "max"}."""
        body = await _json(request)
        self.state.replayer.resume(_speed(body["speed"]) if "speed" in body else None)
        return 200, self.state.replayer.status()

    async def step(self, request: Request) -> tuple[int, Any]:
        """POST /_sim/step {"candles": n} or {"ticks": n}: advance the replay by hand."""
        body = await _json(request)
        replayer = self.state.replayer
        try:
            ticks = int(body.get("ticks", 0))
            candles = int(body.get("candles", 0 if "ticks" in body else 1))
        except (TypeError, ValueError) as exc:
            raise ControlError(400, "ticks and candles must be integers") from exc
        if not (0 <= ticks <= _MAX_STEP_CANDLES * 4 and 0 <= candles <= _MAX_STEP_CANDLES):
            raise ControlError(400, "too many steps")
        for _ in range(ticks):
            replayer.step()
        replayer.advance(candles)
        return 200, replayer.status()

    async def replay(self, request: Request) -> tuple[int, Any]:
        """GET the replay status; PUT {"speed": ...} changes the speed."""
        if request.method == "PUT":
            body = await _json(request)
            if "speed" not in body:
                raise ControlError(400, "speed is required")
            self.state.replayer.set_speed(_speed(body["speed"]))
        return 200, self.state.replayer.status()

    async def orders(self, request: Request) -> tuple[int, Any]:
        """GET /_sim/orders?apiKey=&exchange=&symbol=&clientOrderId=: every order with its fills."""
        query = request.query_params
        venues = [_venue(query["exchange"])] if "exchange" in query else list(VENUES)
        rows = [
            order_view(order)
            for venue in venues
            for order in self.state.engines[venue].account_orders(query.get("apiKey"))
            if ("symbol" not in query or order.symbol == query["symbol"])
            and ("clientOrderId" not in query or order.client_order_id == query["clientOrderId"])
        ]
        rows.sort(key=lambda row: (row["createdAt"], row["orderId"]))
        return 200, rows

    async def user_streams(self, request: Request) -> tuple[int, Any]:
        """GET /_sim/user-streams?apiKey=&exchange=: open private connections per venue and API key."""
        query = request.query_params
        venue = _venue(query["exchange"]) if "exchange" in query else None
        rows = [
            {"exchange": key_venue, "apiKey": api_key, "connections": count}
            for (key_venue, api_key), count in sorted(self.state.connections.user_streams().items())
            if (venue is None or key_venue == venue) and query.get("apiKey") in (None, api_key)
        ]
        return 200, rows

    async def faults(self, request: Request) -> tuple[int, Any]:
        """POST adds a fault (or drops WebSockets now); GET lists them; DELETE clears them."""
        faults = self.state.faults
        if request.method == "GET":
            return 200, [f.as_json() for f in faults.pending()]
        if request.method == "DELETE":
            faults.clear()
            return 200, []
        body = await _json(request)
        kind = body.get("kind")
        exchange = _venue(body["exchange"]) if body.get("exchange") is not None else None
        if kind == "drop_websockets":
            try:
                seconds = float(body.get("seconds", 0))
            except (TypeError, ValueError) as exc:
                raise ControlError(400, "seconds must be a number") from exc
            if not 0 <= seconds <= 3600:
                raise ControlError(400, "seconds must be between 0 and 3600")
            dropped = self.state.connections.drop_all(exchange, hold_seconds=seconds)
            return 200, {"kind": kind, "dropped": dropped, "seconds": seconds}
        if kind not in HTTP_FAULT_KINDS:
            raise ControlError(
                400, f"kind must be one of {', '.join((*HTTP_FAULT_KINDS, 'drop_websockets'))}"
            )
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError) as exc:
            raise ControlError(400, "count must be an integer") from exc
        if count < 1:
            raise ControlError(400, "count must be >= 1")
        prefix = body.get("path_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
            raise ControlError(
                400, "path_prefix must start with / (relative to the exchange, e.g. /api/v3/order)"
            )
        fault = faults.add(cast(HttpFaultKind, kind), count, exchange, prefix)
        return 201, fault.as_json()

    async def requests(self, request: Request) -> tuple[int, Any]:
        """GET /_sim/requests?exchange=&path_prefix=&apiKey=: exchange requests received; DELETE resets them."""
        counter = self.state.requests
        if request.method == "DELETE":
            counter.clear()
            return 200, counter.view()
        query = request.query_params
        venue = _venue(query["exchange"]) if "exchange" in query else None
        return 200, counter.view(venue, query.get("path_prefix"), query.get("apiKey"))


def control_routes(state: SimState) -> list[BaseRoute]:
    """The /_sim routes for a simulator."""
    return ControlApi(state).routes()
