"""Private exchange streams: fills and cancellations of one user's orders as they happen.

Upbit: `<UPBIT_WS_URL>/private` with a JWT (access_key, nonce) on the upgrade, request `myOrder`; a frame
with state `trade` is one fill (`trade_uuid`, `trade_fee`), `cancel` an order closed. Binance: the
WebSocket API's `userDataStream.subscribe.signature` (HMAC-SHA256 over the sorted params); an
`executionReport` with execution type TRADE is one fill (trade id `t`, commission `n`/`N`), CANCELED or
EXPIRED an order closed. Every (re)connection calls `on_connected` once the exchange has accepted the
subscription, so whatever happened while the stream was down is found by a reconciliation; numbers are
parsed as exact Decimals.

Reconnection backs off exponentially (`common.retry`: the lower half of each delay fixed, the upper half
jittered). Keys the exchange refuses (Binance's subscription answered with an auth error; Upbit's
INVALID_AUTH, or a 401 on the upgrade) back off further, up to `REJECTED_MAX_BACKOFF`, and the count is kept
per key pair across stream objects: a client rebuilt after a refusal does not start over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jwt
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from common.errortracking import background_task
from common.exchanges import Exchange, ExchangeSettings
from common.retry import Backoff, Jitter
from engine.live.client import ExchangeFill
from engine.live.credentials import Keys

log = logging.getLogger(__name__)

OnFill = Callable[[str, str, ExchangeFill], Awaitable[None]]  # client order id, exchange order id, fill
OnClosed = Callable[[str, str], Awaitable[None]]  # client order id, exchange order id
OnConnected = Callable[[], Awaitable[None]]

REJECTED_MAX_BACKOFF = 300.0
# A dropped stream comes back within a second at first, 30 s apart at most; refused keys wait far longer.
RECONNECT = Backoff(base=0.5, cap=30.0, jitter=Jitter.HALF)
KEYS_REFUSED = Backoff(base=2.0, cap=REJECTED_MAX_BACKOFF, jitter=Jitter.HALF)
_CLOSED = ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED")
# Binance: API key format invalid, key invalid (or IP, or permissions), signature invalid.
_BINANCE_AUTH_CODES = frozenset({-2014, -2015, -1022})
Sleep = Callable[[float], Awaitable[None]]


class KeysRejectedError(ConnectionError):
    """The exchange refused the stream's keys (not a network failure: retrying soon cannot help)."""


@dataclass
class _Refusals:
    count: int = 0
    not_before: float = 0.0


# Per (exchange, API key hash), process-wide: a stream made again for refused keys waits its turn.
_REFUSALS: dict[str, _Refusals] = {}


def _key_id(exchange: Exchange, api_key: str) -> str:
    return hashlib.sha256(f"{exchange.value}:{api_key}".encode()).hexdigest()


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
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.exchange = exchange
        self._settings = settings
        self._keys = keys
        self._key_id = _key_id(exchange, keys.api_key)
        self._sleep = sleep
        self._failures = 0
        self.rejections = 0
        self._on_fill = on_fill
        self._on_closed = on_closed
        self._on_connected = on_connected
        self.connected = False
        self.connections = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background."""
        if self._task is None:
            self._task = background_task(self._run(), name=f"private-stream:{self.exchange.value}")

    async def close(self) -> None:
        """Disconnect for good."""
        task, self._task = self._task, None
        self.connected = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            refusals = _REFUSALS.get(self._key_id)
            if refusals is not None:
                # Refused before (maybe by a stream since replaced): not again before its backoff is over.
                wait = refusals.not_before - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
            try:
                await self._session()
                delay = RECONNECT.delay(1)
            except asyncio.CancelledError:
                raise
            except KeysRejectedError:
                self.rejections += 1
                refusals = _REFUSALS.setdefault(self._key_id, _Refusals())
                refusals.count += 1
                delay = KEYS_REFUSED.delay(refusals.count)
                refusals.not_before = time.monotonic() + delay
                log.warning(
                    "%s private stream: keys refused (%d in a row); next try in %.0fs",
                    self.exchange.value,
                    refusals.count,
                    delay,
                )
                self.connected = False
                continue  # the wait at the top of the loop is the backoff
            except Exception as exc:
                self._failures += 1
                delay = RECONNECT.delay(self._failures)
                log.info("%s private stream dropped: %s", self.exchange.value, type(exc).__name__)
            self.connected = False
            await self._sleep(delay)

    def _accepted(self) -> None:
        """The exchange took the subscription: the keys work (and forget any earlier refusal)."""
        _REFUSALS.pop(self._key_id, None)
        self._failures = 0

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
        try:
            connection = await websockets.connect(
                url, additional_headers=headers, open_timeout=10, max_size=2**22
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise KeysRejectedError(f"upgrade refused with {exc.response.status_code}") from None
            raise
        async with connection as ws:
            if self.exchange is Exchange.BINANCE:
                await self._binance_subscribe(ws)
            else:
                await self._upbit_subscribe(ws)
            self._accepted()
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
            if code in _BINANCE_AUTH_CODES:
                raise KeysRejectedError(f"Binance refused the keys (code {code})")
            raise ConnectionError(f"Binance refused the user data subscription (code {code})")

    async def _upbit_subscribe(self, ws: Any) -> None:
        """Ask for myOrder, then PING: Upbit answers {"status":"UP"} once it has taken the request.

        A refused JWT shows as an INVALID_AUTH error frame first (or the connection closed for policy).
        """
        try:
            await ws.send(json.dumps([{"ticket": uuid.uuid4().hex}, {"type": "myOrder"}]))
            await ws.send("PING")
            while True:
                frame = await asyncio.wait_for(ws.recv(), 10)
                text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
                try:
                    data = json.loads(text, parse_float=Decimal)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                name = (data.get("error") or {}).get("name") if isinstance(data.get("error"), dict) else None
                if name == "INVALID_AUTH":
                    raise KeysRejectedError("Upbit refused the keys (INVALID_AUTH)")
                if name is not None:
                    raise ConnectionError(f"Upbit refused the myOrder request ({name})")
                if data.get("status") == "UP":
                    return
                await self._upbit_event(data)  # an order event already: the subscription is live
                return
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008:
                raise KeysRejectedError(f"Upbit closed the stream ({exc.rcvd.reason or 'policy'})") from None
            raise

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
