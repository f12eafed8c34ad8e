"""Private exchange streams: fills and cancellations of one user's orders as they happen.

Upbit: `<UPBIT_WS_URL>/private` with a JWT (access_key, nonce) on the upgrade, request `myOrder`; a frame
with state `trade` is one fill (`trade_uuid`, `trade_fee`), `cancel` an order closed. Binance: the
WebSocket API's `userDataStream.subscribe.signature` (HMAC-SHA256 over the sorted params); an
`executionReport` with execution type TRADE is one fill (trade id `t`, commission `n`/`N`), CANCELED or
EXPIRED an order closed. Every (re)connection calls `on_connected`, so whatever happened while the stream
was down is found by a reconciliation; numbers are parsed as exact Decimals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jwt
import websockets

from common.exchanges import Exchange, ExchangeSettings
from engine.live.client import ExchangeFill
from engine.live.credentials import Keys

log = logging.getLogger(__name__)

OnFill = Callable[[str, str, ExchangeFill], Awaitable[None]]  # client order id, exchange order id, fill
OnClosed = Callable[[str, str], Awaitable[None]]  # client order id, exchange order id
OnConnected = Callable[[], Awaitable[None]]

_MAX_BACKOFF = 30.0
_CLOSED = ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED")


def _dec(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _ms(value: object) -> datetime:
    return datetime.fromtimestamp(int(str(value)) / 1000, UTC)


class PrivateStream:
    """One user's private stream on one exchange, reconnecting with jittered backoff until closed."""

    def __init__(
        self,
        exchange: Exchange,
        settings: ExchangeSettings,
        keys: Keys,
        *,
        on_fill: OnFill,
        on_closed: OnClosed,
        on_connected: OnConnected,
    ) -> None:
        self.exchange = exchange
        self._settings = settings
        self._keys = keys
        self._on_fill = on_fill
        self._on_closed = on_closed
        self._on_connected = on_connected
        self.connected = False
        self.connections = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"private-stream:{self.exchange.value}")

    async def close(self) -> None:
        """Disconnect for good."""
        task, self._task = self._task, None
        self.connected = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.info("%s private stream dropped: %s", self.exchange.value, type(exc).__name__)
            self.connected = False
            delay = random.uniform(0.1, min(_MAX_BACKOFF, 0.5 * 2 ** min(failures, 6)))  # noqa: S311 - jitter
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        if self.exchange is Exchange.BINANCE:
            url, headers = self._settings.binance_ws_api_url, None
        else:
            token = jwt.encode(
                {"access_key": self._keys.api_key, "nonce": str(uuid.uuid4())}, self._keys.secret
            )
            url, headers = (
                f"{self._settings.upbit_ws_url.rstrip('/')}/private",
                {"Authorization": f"Bearer {token}"},
            )
        async with websockets.connect(url, additional_headers=headers, open_timeout=10, max_size=2**22) as ws:
            if self.exchange is Exchange.BINANCE:
                await self._binance_subscribe(ws)
            else:
                await ws.send(json.dumps([{"ticket": uuid.uuid4().hex}, {"type": "myOrder"}]))
            self.connected = True
            self.connections += 1
            await self._on_connected()
            async for frame in ws:
                text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
                try:
                    data = json.loads(text, parse_float=Decimal)
                except ValueError:
                    continue
                if self.exchange is Exchange.BINANCE:
                    await self._binance_event(data)
                else:
                    await self._upbit_event(data)

    async def _binance_subscribe(self, ws: Any) -> None:
        params: dict[str, Any] = {"apiKey": self._keys.api_key, "timestamp": int(time.time() * 1000)}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["signature"] = hmac.new(
            self._keys.secret.encode(), payload.encode(), hashlib.sha256
        ).hexdigest()
        request_id = uuid.uuid4().hex
        await ws.send(
            json.dumps({"id": request_id, "method": "userDataStream.subscribe.signature", "params": params})
        )
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if reply.get("id") == request_id:
                break
        if reply.get("status") != 200:
            code = (reply.get("error") or {}).get("code")
            raise ConnectionError(f"Binance refused the user data subscription (code {code})")

    async def _binance_event(self, data: Any) -> None:
        event = data.get("event") if isinstance(data, dict) else None
        if not isinstance(event, dict) or event.get("e") != "executionReport":
            return
        execution = event.get("x")
        order_id = str(event.get("i"))
        if execution == "TRADE":
            fill = ExchangeFill(
                fill_id=str(event["t"]),
                price=_dec(event["L"]),
                qty=_dec(event["l"]),
                fee=_dec(event.get("n") or "0"),
                fee_currency=str(event.get("N") or "USDT"),
                executed_at=_ms(event["T"]),
            )
            await self._on_fill(str(event.get("c")), order_id, fill)
        elif execution in _CLOSED:
            # On a cancel Binance puts the canceled order's own client id in "C" ("c" is the cancel's).
            await self._on_closed(str(event.get("C") or event.get("c")), order_id)

    async def _upbit_event(self, data: Any) -> None:
        if not isinstance(data, dict) or data.get("type") != "myOrder":
            return
        state = data.get("state")
        cid = str(data.get("identifier") or "")
        order_id = str(data.get("uuid"))
        if state == "trade" and data.get("trade_uuid"):
            fill = ExchangeFill(
                fill_id=str(data["trade_uuid"]),
                price=_dec(data["price"]),
                qty=_dec(data["volume"]),
                fee=_dec(data.get("trade_fee") or 0),
                fee_currency="KRW",
                executed_at=_ms(data.get("trade_timestamp") or data.get("timestamp")),
            )
            await self._on_fill(cid, order_id, fill)
        elif state == "cancel":
            await self._on_closed(cid, order_id)
