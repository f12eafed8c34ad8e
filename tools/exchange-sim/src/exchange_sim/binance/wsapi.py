"""Binance WebSocket API (/ws-api/v3): ping, time, session.status, signed user data stream."""

from __future__ import annotations

import json
from typing import Any

from exchange_sim.accounts import Account
from exchange_sim.binance import errors
from exchange_sim.binance.auth import authenticate_ws
from exchange_sim.binance.errors import BinanceError
from exchange_sim.binance.streams import account_position, execution_report
from exchange_sim.events import BalanceUpdate, Event, OrderUpdate
from exchange_sim.state import SimState
from exchange_sim.wire import dumps
from exchange_sim.wsconn import WsSession

_RATE_LIMITS = [
    {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
        "count": 2,
    }
]


class WsApiSession:
    """One WebSocket API connection and its user data subscriptions (subscriptionId -> account)."""

    def __init__(self, state: SimState, session: WsSession) -> None:
        self.state = state
        self.session = session
        self.connected_ms = state.replayer.clock()
        self.subscriptions: dict[int, Account] = {}
        self._next_subscription = 0

    def _reply(self, request_id: Any, result: Any) -> None:
        self.session.send(
            dumps({"id": request_id, "status": 200, "result": result, "rateLimits": _RATE_LIMITS})
        )

    def _fail(self, request_id: Any, error: BinanceError) -> None:
        self.session.send(
            dumps(
                {
                    "id": request_id,
                    "status": error.status,
                    "error": error.body(),
                    "rateLimits": _RATE_LIMITS,
                }
            )
        )

    def on_event(self, event: Event) -> None:
        """Forward this subscriber's executionReport / outboundAccountPosition events, wrapped."""
        if event.venue != "binance" or not isinstance(event, OrderUpdate | BalanceUpdate):
            return
        for subscription_id, account in self.subscriptions.items():
            if account.api_key != event.api_key:
                continue
            payload = execution_report(event) if isinstance(event, OrderUpdate) else account_position(event)
            self.session.send(dumps({"subscriptionId": subscription_id, "event": payload}))

    async def on_message(self, data: str | bytes) -> None:
        """Dispatch one request."""
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        try:
            request = json.loads(text)
        except ValueError:
            self._fail(None, BinanceError(-1000, "Malformed request: invalid JSON."))
            return
        if not isinstance(request, dict):
            self._fail(None, BinanceError(-1000, "Malformed request: not an object."))
            return
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            self._fail(request_id, BinanceError(-1104, "Malformed request: 'params' must be an object."))
            return
        try:
            self._dispatch(request_id, method, params)
        except BinanceError as exc:
            self._fail(request_id, exc)

    def _dispatch(self, request_id: Any, method: object, params: dict[str, Any]) -> None:
        now = self.state.replayer.clock()
        if method == "ping":
            self._reply(request_id, {})
        elif method == "time":
            self._reply(request_id, {"serverTime": now})
        elif method == "session.status":
            self._reply(
                request_id,
                {
                    "apiKey": None,
                    "authorizedSince": None,
                    "connectedSince": self.connected_ms,
                    "returnRateLimits": True,
                    "serverTime": now,
                    "userDataStream": bool(self.subscriptions),
                },
            )
        elif method == "userDataStream.subscribe.signature":
            account = authenticate_ws(self.state.accounts, params, now)
            subscription_id = self._next_subscription
            self._next_subscription += 1
            self.subscriptions[subscription_id] = account
            self.session.topics.add("binance:userDataStream")
            self.session.user_keys.add(account.api_key)
            self._reply(request_id, {"subscriptionId": subscription_id})
        elif method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            ids = [int(wanted)] if wanted is not None else list(self.subscriptions)
            for subscription_id in ids:
                if self.subscriptions.pop(subscription_id, None) is not None:
                    self.session.send(
                        dumps(
                            {
                                "subscriptionId": subscription_id,
                                "event": {"e": "eventStreamTerminated", "E": now},
                            }
                        )
                    )
            if not self.subscriptions:
                self.session.topics.discard("binance:userDataStream")
            self.session.user_keys = {account.api_key for account in self.subscriptions.values()}
            self._reply(request_id, {})
        elif method in ("userDataStream.subscribe", "session.logon", "session.logout"):
            # Needs an Ed25519 session logon, which this simulator (HMAC keys only) does not offer.
            raise errors.not_authorized()
        else:
            raise BinanceError(-1100, f"Unknown method '{method}'.")
