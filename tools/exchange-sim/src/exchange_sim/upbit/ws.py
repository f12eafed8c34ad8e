"""Upbit WebSocket: /websocket/v1 (ticker, trade) and /websocket/v1/private (myOrder, myAsset).

Upbit sends every frame as a BINARY message holding UTF-8 JSON; a text "PING" gets
{"status":"UP"}.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from exchange_sim.accounts import Account
from exchange_sim.events import BalanceUpdate, Event, OrderUpdate, PublicTrade
from exchange_sim.matching import MatchingEngine
from exchange_sim.state import SimState
from exchange_sim.upbit.auth import authenticate_ws
from exchange_sim.upbit.format import my_asset_ws, my_order_ws, ticker_ws, to_simple, trade_ws
from exchange_sim.wire import dumps
from exchange_sim.wsconn import WsSession

PUBLIC_TYPES = ("ticker", "trade")
PRIVATE_TYPES = ("myOrder", "myAsset")
FORMATS = ("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST")
_ERRORS = {
    "INVALID_AUTH": "인증 정보가 올바르지 않습니다.",
    "WRONG_FORMAT": "요청 형식이 올바르지 않습니다.",
    "NO_TICKET": "티켓이 존재하지 않습니다.",
    "NO_TYPE": "타입이 존재하지 않습니다.",
    "NO_CODES": "마켓 코드가 존재하지 않습니다.",
    "INVALID_PARAM": "잘못된 파라미터입니다.",
}


class RequestError(Exception):
    """A subscription request Upbit would refuse with an error frame."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def error_frame(name: str) -> bytes:
    """{"error": {"name", "message"}} as a binary frame."""
    return dumps({"error": {"name": name, "message": _ERRORS[name]}}).encode()


@dataclass
class TypeRequest:
    """One {"type": ..., "codes": [...]} entry of a request."""

    codes: set[str] | None
    only_snapshot: bool = False
    only_realtime: bool = False


@dataclass
class Subscription:
    """What a connection asked for last (each request replaces the previous one)."""

    types: dict[str, TypeRequest] = field(default_factory=dict)
    format: str = "DEFAULT"


def _flag(entry: dict[str, Any], snake: str, camel: str) -> bool:
    value = entry.get(snake, entry.get(camel, False))
    if not isinstance(value, bool):
        raise RequestError("INVALID_PARAM")
    return value


def parse_request(text: str, allowed: tuple[str, ...], private: bool) -> Subscription:
    """The subscription a request array describes, or raise RequestError."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise RequestError("WRONG_FORMAT") from exc
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RequestError("WRONG_FORMAT")
    if not any("ticket" in item for item in items):
        raise RequestError("NO_TICKET")
    subscription = Subscription()
    for item in items:
        if "format" in item:
            if item["format"] not in FORMATS:
                raise RequestError("INVALID_PARAM")
            subscription.format = item["format"]
        if "type" not in item:
            continue
        kind = item["type"]
        if kind not in allowed:
            raise RequestError("INVALID_PARAM" if isinstance(kind, str) else "WRONG_FORMAT")
        codes = item.get("codes")
        if codes is None and not private:
            raise RequestError("NO_CODES")
        if codes is not None and (not isinstance(codes, list) or not all(isinstance(c, str) for c in codes)):
            raise RequestError("INVALID_PARAM")
        subscription.types[kind] = TypeRequest(
            set(codes) if codes else None,
            _flag(item, "is_only_snapshot", "isOnlySnapshot"),
            _flag(item, "is_only_realtime", "isOnlyRealtime"),
        )
    if not subscription.types:
        raise RequestError("NO_TYPE")
    return subscription


class UpbitStream:
    """One connection (public or private) and its current subscription."""

    def __init__(self, state: SimState, session: WsSession, account: Account | None) -> None:
        self.state = state
        self.engine: MatchingEngine = state.engines["upbit"]
        self.session = session
        self.account = account
        self.subscription: Subscription | None = None

    def _send(self, kind: str, frame: dict[str, Any]) -> None:
        assert self.subscription is not None
        fmt = self.subscription.format
        body: Any = to_simple(kind, frame) if fmt in ("SIMPLE", "SIMPLE_LIST") else frame
        if fmt in ("JSON_LIST", "SIMPLE_LIST"):
            body = [body]
        self.session.send(dumps(body).encode())

    def _wants(self, kind: str, code: str | None, realtime: bool) -> bool:
        if self.subscription is None or kind not in self.subscription.types:
            return False
        request = self.subscription.types[kind]
        if realtime and request.only_snapshot:
            return False
        return request.codes is None or code is None or code in request.codes

    def on_event(self, event: Event) -> None:
        """Turn simulator events into this connection's frames."""
        if event.venue != "upbit":
            return
        now = self.state.replayer.clock()
        if isinstance(event, PublicTrade) and self.account is None:
            data = self.engine.data[event.symbol]
            if self._wants("trade", event.symbol, realtime=True):
                self._send("trade", trade_ws(event, data, now, "REALTIME"))
            if self._wants("ticker", event.symbol, realtime=True):
                self._send("ticker", ticker_ws(data, now, "REALTIME"))
        elif isinstance(event, OrderUpdate | BalanceUpdate) and self._mine(event):
            if isinstance(event, OrderUpdate) and self._wants("myOrder", event.order.symbol, realtime=True):
                self._send("myOrder", my_order_ws(event))
                if event.fill is not None and not event.order.is_open:
                    self._send("myOrder", my_order_ws(event, closing=True))
            elif isinstance(event, BalanceUpdate) and self._wants("myAsset", None, realtime=True):
                self._send("myAsset", my_asset_ws(event, str(uuid.uuid4())))

    def _mine(self, event: OrderUpdate | BalanceUpdate) -> bool:
        return self.account is not None and event.api_key == self.account.api_key

    async def on_message(self, data: str | bytes) -> None:
        """Handle PING and subscription requests."""
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        if text.strip() == "PING":
            self.session.send(b'{"status":"UP"}')
            return
        allowed = PRIVATE_TYPES if self.account is not None else PUBLIC_TYPES
        try:
            self.subscription = parse_request(text, allowed, private=self.account is not None)
        except RequestError as exc:
            self.session.send(error_frame(exc.name))
            return
        self.session.topics = {
            f"upbit:{kind}:{code}"
            for kind, request in self.subscription.types.items()
            for code in sorted(request.codes or {"*"})
        }
        self._snapshots()

    def _snapshots(self) -> None:
        assert self.subscription is not None
        if self.account is not None:
            return  # private types have no snapshot
        now = self.state.replayer.clock()
        for kind, request in self.subscription.types.items():
            if request.only_realtime:
                continue
            for code in sorted(request.codes or ()):
                data = self.engine.data.get(code)
                if data is None:
                    continue
                if kind == "ticker":
                    self._send(kind, ticker_ws(data, now, "SNAPSHOT"))
                elif data.tape:
                    self._send(kind, trade_ws(data.tape[-1], data, now, "SNAPSHOT"))


def upbit_ws_routes(state: SimState) -> list[BaseRoute]:
    """The Upbit WebSocket routes, relative to the /upbit mount."""

    async def serve(websocket: WebSocket, private: bool) -> None:
        account = authenticate_ws(state.accounts, websocket.headers.get("authorization")) if private else None
        await websocket.accept()
        session = WsSession(websocket, "upbit", state.connections)
        if private and account is None:
            session.send(error_frame("INVALID_AUTH"))
            session.close(1008, "INVALID_AUTH")
        if account is not None:
            session.user_keys.add(account.api_key)  # a private connection: that key's events only
        stream = UpbitStream(state, session, account)
        unsubscribe = state.hub.subscribe(stream.on_event)
        try:
            await session.serve(stream.on_message)
        finally:
            unsubscribe()

    async def public(websocket: WebSocket) -> None:
        await serve(websocket, private=False)

    async def private(websocket: WebSocket) -> None:
        await serve(websocket, private=True)

    return [
        WebSocketRoute("/websocket/v1", public),
        WebSocketRoute("/websocket/v1/private", private),
    ]
