"""Upbit quotation stream: `trade` + `ticker` for every wanted code on one connection.

Each request replaces the previous subscription, so a change sends the full list under a new ticket,
within Upbit's WebSocket request limits (5/s, 100/min). Frames are binary UTF-8 JSON in DEFAULT or SIMPLE
format (older captures use `market`/`mk` for the code and carry no type). A text `PING` is answered with
`{"status":"UP"}`; Upbit closes a connection idle for 120 s, and our watchdog pings after a silence.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from common.exchanges.ids import Exchange
from market_data.streams.base import Connection, RateLimiter, StreamClient
from market_data.streams.events import (
    ErrorEvent,
    Event,
    StatsEvent,
    StatusEvent,
    TradeEvent,
    num_text,
    percent_text,
)

FORMATS = ("DEFAULT", "SIMPLE")


def _code(msg: dict[str, Any]) -> str:
    code = msg.get("code") or msg.get("cd") or msg.get("market") or msg.get("mk")
    if not isinstance(code, str):
        raise ValueError("frame without a market code")
    return code


def parse_upbit(msg: Any) -> Event | None:
    """One Upbit frame object (DEFAULT or SIMPLE, current or legacy), parsed."""
    if not isinstance(msg, dict):
        return None
    kind = msg.get("type") or msg.get("ty")
    if kind is None:
        if "status" in msg:
            return StatusEvent(str(msg["status"]))
        error = msg.get("error")
        if isinstance(error, dict):
            return ErrorEvent(str(error.get("name", "")), str(error.get("message", "")))
        # Legacy frames carry no type: trades have a sequential id, tickers the 24h totals.
        if "sequential_id" in msg or "sid" in msg:
            kind = "trade"
        elif "acc_trade_volume_24h" in msg or "atv24h" in msg:
            kind = "ticker"
    if kind == "trade":
        if "trade_price" in msg:
            price_v, qty_v, ts, sid = (
                msg["trade_price"],
                msg["trade_volume"],
                msg["trade_timestamp"],
                msg["sequential_id"],
            )
        else:
            price_v, qty_v, ts, sid = msg["tp"], msg["tv"], msg["ttms"], msg["sid"]
        price = num_text(price_v)
        return TradeEvent(_code(msg), int(sid), float(price_v), price, num_text(qty_v), int(ts))
    if kind == "ticker":
        if "trade_price" in msg:
            rate, volume, ts = (
                msg.get("signed_change_rate"),
                msg["acc_trade_volume_24h"],
                msg.get("trade_timestamp"),
            )
            ts = ts if ts is not None else msg.get("timestamp", 0)
        else:
            rate, volume, ts = msg.get("scr"), msg["atv24h"], msg.get("ttms", msg.get("tms", 0))
        change = percent_text(float(rate)) if isinstance(rate, int | float) else None
        return StatsEvent(_code(msg), change, num_text(volume), int(ts))
    return None


class UpbitStream(StreamClient):
    """The Upbit quotation stream client."""

    exchange = Exchange.UPBIT

    def __init__(self, *args: Any, format: str = "DEFAULT", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        self.format = format
        # Upbit: 5 requests/s and 100/min per connection; keep a margin.
        self.limiter = RateLimiter([(4, 1.0), (90, 60.0)])
        self.errors = 0

    def endpoint(self) -> str:
        """The public quotation endpoint."""
        return self.url

    def request(self, codes: list[str]) -> list[dict[str, Any]]:
        """The subscription request for these codes (a new ticket each time)."""
        return [
            {"ticket": uuid.uuid4().hex},
            {"type": "trade", "codes": codes},
            {"type": "ticker", "codes": codes},
            {"format": self.format},
        ]

    async def update_subscription(
        self, conn: Connection, wanted: set[str], added: set[str], removed: set[str]
    ) -> None:
        """Send the full list; when codes were added, return once the exchange answered with a frame."""
        await self.limiter.acquire()
        before = conn.frames
        await conn.ws.send(orjson.dumps(self.request(sorted(wanted))).decode())
        if added:
            # No acknowledgement in Upbit's protocol: the snapshots that follow a request are one.
            await self._frames_after(conn, before, self.options.probe_timeout_seconds)

    async def _frames_after(self, conn: Connection, before: int, within: float) -> bool:
        deadline = time.monotonic() + within
        while conn.frames == before:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def handle(self, conn: Connection, frame: str | bytes) -> None:
        """Feed trades and 24h stats to the conflator."""
        msg = orjson.loads(frame)
        if type(msg) is list:
            for item in msg:
                self._one(item)
        else:
            self._one(msg)

    def _one(self, msg: Any) -> None:
        event = parse_upbit(msg)
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
        elif type(event) is ErrorEvent:
            self.errors += 1
            self.state.last_error = f"{event.name}: {event.message}"[:200]

    async def probe(self, conn: Connection) -> bool:
        """A text PING; True once any frame (normally {"status":"UP"}) follows."""
        before = conn.frames
        await conn.ws.send("PING")
        return await self._frames_after(conn, before, self.options.probe_timeout_seconds)
