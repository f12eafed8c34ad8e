"""Binance market streams (/ws/<streams>, /stream?streams=) and the WebSocket API route."""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from exchange_sim.binance.format import KLINE_INTERVALS
from exchange_sim.binance.streams import (
    agg_trade_event,
    book_ticker_event,
    kline_event,
    mini_ticker_event,
    ticker_event,
    trade_event,
)
from exchange_sim.binance.wsapi import WsApiSession
from exchange_sim.events import Event, PublicTrade, TickerUpdate
from exchange_sim.matching import MatchingEngine
from exchange_sim.state import SimState
from exchange_sim.wire import dumps
from exchange_sim.wsconn import WsSession

_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


def _error(code: int, msg: str, request_id: Any = None) -> str:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if request_id is not None:
        body["id"] = request_id
    return dumps(body)


class MarketStream:
    """One market-stream connection: its streams and whether payloads are wrapped (combined)."""

    def __init__(self, state: SimState, session: WsSession, streams: list[str], combined: bool) -> None:
        self.state = state
        self.engine: MatchingEngine = state.engines["binance"]
        self.session = session
        self.streams: list[str] = list(dict.fromkeys(streams))
        self.combined = combined
        self._update_topics()

    def _update_topics(self) -> None:
        self.session.topics = {f"binance:{stream}" for stream in self.streams}

    def _emit(self, stream: str, payload: dict[str, Any] | None) -> None:
        if payload is None:
            return
        body = {"stream": stream, "data": payload} if self.combined else payload
        self.session.send(dumps(body))

    def on_event(self, event: Event) -> None:
        """Send the payloads of every subscribed stream this event feeds."""
        if event.venue != "binance" or not isinstance(event, PublicTrade | TickerUpdate):
            return
        prefix = event.symbol.lower() + "@"
        wanted = [s for s in self.streams if s.startswith(prefix)]
        if not wanted:
            return
        data = self.engine.data[event.symbol]
        now = self.state.replayer.clock()
        for stream in wanted:
            name = stream[len(prefix) :]
            if isinstance(event, PublicTrade):
                if name == "trade":
                    self._emit(stream, trade_event(event, now))
                elif name == "aggTrade":
                    self._emit(stream, agg_trade_event(event, now))
                elif name == "bookTicker":
                    self._emit(stream, book_ticker_event(data))
                elif name.startswith("kline_") and name[6:] in KLINE_INTERVALS:
                    self._emit(stream, kline_event(data, name[6:], now))
            elif name == "miniTicker":
                self._emit(stream, mini_ticker_event(data, now))
            elif name == "ticker":
                self._emit(stream, ticker_event(data, now))

    async def on_message(self, data: str | bytes) -> None:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY."""
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        try:
            request = json.loads(text)
        except ValueError:
            self.session.send(_error(3, "Invalid JSON: expected value at line 1 column 1"))
            return
        if not isinstance(request, dict):
            self.session.send(_error(3, "Invalid JSON: expected an object"))
            return
        request_id = request.get("id")
        if not isinstance(request_id, int | str) or isinstance(request_id, bool):
            self.session.send(_error(2, "Invalid request: request ID must be an unsigned integer"))
            return
        method = request.get("method")
        if method not in _METHODS:
            self.session.send(
                _error(
                    2,
                    f"Invalid request: unknown variant {method}, expected one of {', '.join(_METHODS)}",
                    request_id,
                )
            )
            return
        params = request.get("params", [])
        if not isinstance(params, list):
            self.session.send(_error(2, "Invalid request: params must be an array", request_id))
            return
        result: Any = None
        if method == "SUBSCRIBE":
            for stream in params:
                if isinstance(stream, str) and stream not in self.streams:
                    self.streams.append(stream)
        elif method == "UNSUBSCRIBE":
            self.streams = [s for s in self.streams if s not in params]
        self._update_topics()
        if method == "LIST_SUBSCRIPTIONS":
            result = list(self.streams)
        elif method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined":
                self.session.send(_error(0, "Unknown property", request_id))
                return
            if not isinstance(params[1], bool):
                self.session.send(_error(1, "Invalid value type: expected Boolean", request_id))
                return
            self.combined = params[1]
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                self.session.send(_error(0, "Unknown property", request_id))
                return
            result = self.combined
        self.session.send(dumps({"result": result, "id": request_id}))


def binance_ws_routes(state: SimState) -> list[BaseRoute]:
    """Binance WebSocket routes, relative to the /binance mount."""

    async def serve_streams(websocket: WebSocket, streams: list[str], combined: bool) -> None:
        await websocket.accept()
        session = WsSession(websocket, "binance", state.connections)
        stream = MarketStream(state, session, streams, combined)
        unsubscribe = state.hub.subscribe(stream.on_event)
        try:
            await session.serve(stream.on_message)
        finally:
            unsubscribe()

    async def raw(websocket: WebSocket) -> None:
        path = str(websocket.path_params.get("streams", ""))
        # ccxt.pro connects to /ws/<n> (a connection number): only names with "@" are streams.
        await serve_streams(websocket, [s for s in path.split("/") if "@" in s], combined=False)

    async def combined(websocket: WebSocket) -> None:
        names = websocket.query_params.get("streams", "")
        await serve_streams(websocket, [s for s in names.split("/") if s], combined=True)

    async def ws_api(websocket: WebSocket) -> None:
        await websocket.accept()
        session = WsSession(websocket, "binance", state.connections)
        api = WsApiSession(state, session)
        unsubscribe = state.hub.subscribe(api.on_event)
        try:
            await session.serve(api.on_message)
        finally:
            unsubscribe()

    return [
        WebSocketRoute("/ws", raw),
        WebSocketRoute("/ws/{streams:path}", raw),
        WebSocketRoute("/stream", combined),
        WebSocketRoute("/ws-api/v3", ws_api),
    ]
