"""Binance spot market streams: `<symbol>@trade` + `<symbol>@miniTicker` on one raw `/ws` connection.

Subscriptions change on the open connection with SUBSCRIBE/UNSUBSCRIBE requests carrying ids (each
acknowledged with `{"result": null, "id": n}`), within Binance's limits of 5 incoming messages per second
and 1024 streams per connection. Binance pings every few minutes (websockets answers); our watchdog pings
after a silence. Connections are dropped by Binance after 24 hours, so we rotate before that.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from common.exchanges.ids import Exchange
from market_data.streams.base import Connection, RateLimiter, StreamClient
from market_data.streams.events import AckEvent, ErrorEvent, Event, StatsEvent, TradeEvent

MAX_STREAMS = 1024
STREAMS_PER_TICKER = 2
_CHUNK = 200
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")


def streams_of(ticker: str) -> list[str]:
    """The stream names one ticker needs."""
    symbol = ticker.lower()
    return [f"{symbol}@trade", f"{symbol}@miniTicker"]


def change_percent(open_: str, close: str) -> str | None:
    """(close - open) / open in percent with 2 decimals; None when open is zero or not a number."""
    try:
        opened = Decimal(open_)
        if not opened:
            return None
        return str(((Decimal(close) - opened) / opened * _HUNDRED).quantize(_CENT))
    except InvalidOperation:
        return None


def parse_binance(msg: Any) -> Event | None:
    """A raw or combined (`{"stream","data"}`) Binance stream message, parsed."""
    if not isinstance(msg, dict):
        return None
    data = msg.get("data")
    if isinstance(data, dict) and "stream" in msg:
        msg = data
    kind = msg.get("e")
    if kind == "trade":
        price = msg["p"]
        return TradeEvent(msg["s"], int(msg["t"]), float(price), price, msg["q"], int(msg["T"]))
    if kind == "24hrMiniTicker":
        return StatsEvent(msg["s"], change_percent(msg["o"], msg["c"]), msg["v"], int(msg["E"]))
    if "id" in msg and ("result" in msg or "error" in msg or "code" in msg):
        error = msg.get("error")
        if isinstance(error, dict):
            return AckEvent(int(msg["id"]), str(error.get("msg", error)))
        if "code" in msg:
            return AckEvent(int(msg["id"]), str(msg.get("msg", msg["code"])))
        return AckEvent(int(msg["id"]), None)
    if "code" in msg and "msg" in msg:
        return ErrorEvent(str(msg["code"]), str(msg["msg"]))
    return None


class BinanceStream(StreamClient):
    """The Binance market-stream client."""

    exchange = Exchange.BINANCE
    max_tickers = MAX_STREAMS // STREAMS_PER_TICKER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # 5 messages/s is Binance's limit for what a client sends; keep a margin.
        self.limiter = RateLimiter([(4, 1.0)])

    def endpoint(self) -> str:
        """The raw stream endpoint; streams are added with SUBSCRIBE."""
        return f"{self.url}/ws"

    async def update_subscription(
        self, conn: Connection, wanted: set[str], added: set[str], removed: set[str]
    ) -> None:
        """UNSUBSCRIBE what is no longer wanted, SUBSCRIBE what is new, each acknowledged."""
        for method, tickers in (("UNSUBSCRIBE", removed), ("SUBSCRIBE", added)):
            streams = [name for ticker in sorted(tickers) for name in streams_of(ticker)]
            for start in range(0, len(streams), _CHUNK):
                await self._request(conn, method, streams[start : start + _CHUNK])

    async def _request(self, conn: Connection, method: str, params: list[str]) -> None:
        await self.limiter.acquire()
        request_id = conn.next_id
        conn.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.pending[request_id] = future
        try:
            await conn.ws.send(orjson.dumps({"method": method, "params": params, "id": request_id}).decode())
            error = await asyncio.wait_for(future, self.options.probe_timeout_seconds)
        finally:
            conn.pending.pop(request_id, None)
        if error is not None:
            raise ConnectionError(f"{method} refused: {error}")

    def handle(self, conn: Connection, frame: str | bytes) -> None:
        """Feed trades and 24h stats to the conflator; resolve request acks."""
        event = parse_binance(orjson.loads(frame))
        if type(event) is TradeEvent:
            book = self.books.get(event.ticker)
            if book is None:
                return
            if book.buffer is not None:
                book.buffer.append((event.trade_id, event.price_f, event.price, event.qty, event.ts))
            else:
                self.conflator.add_trade(
                    book, event.trade_id, event.price_f, event.price, event.qty, event.ts
                )
        elif type(event) is StatsEvent:
            book = self.books.get(event.ticker)
            if book is not None:
                self.conflator.set_stats(book, event.change_pct, event.volume, event.ts)
        elif type(event) is AckEvent:
            future = conn.pending.get(event.request_id)
            if future is not None and not future.done():
                future.set_result(event.error)

    async def probe(self, conn: Connection) -> bool:
        """A WebSocket ping; True once the pong arrives."""
        pong = await conn.ws.ping()
        await pong
        return True
