"""One user's orders on one exchange, through ccxt (async): place, look up, cancel, list fills.

ccxt signs the requests and maps exchange errors to its exception classes (translated by
`common.exchanges.classify`); the exchanges' raw JSON is read here so that prices, quantities and fees
stay exact Decimals (ccxt's unified structures carry floats). Lookups by client order id are what make a
lost answer harmless: Binance `origClientOrderId`, Upbit `identifier`.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from common.exchanges import (
    ErrorKind,
    Exchange,
    ExchangeBudget,
    ExchangeSettings,
    PermanentExchangeError,
    RequestWithheldError,
    classify,
    create_ccxt,
)
from engine.live.credentials import Keys
from engine.live.inherited import RECV_WINDOW_MS
from gridcore import Side

ZERO = Decimal(0)
OPEN, FILLED, CANCELED, REJECTED = "open", "filled", "canceled", "rejected"

_BINANCE_STATUS = {
    "NEW": OPEN,
    "PARTIALLY_FILLED": OPEN,
    "PENDING_NEW": OPEN,
    "FILLED": FILLED,
    "CANCELED": CANCELED,
    "PENDING_CANCEL": OPEN,
    "EXPIRED": CANCELED,
    "EXPIRED_IN_MATCH": CANCELED,
    "REJECTED": REJECTED,
}


@dataclass(frozen=True)
class ExchangeFill:
    """One trade of an order at the exchange."""

    fill_id: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    executed_at: datetime


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the exchange reports it (`fills` only where the exchange includes them)."""

    exchange_order_id: str
    client_order_id: str | None
    side: Side
    price: Decimal
    qty: Decimal
    filled_qty: Decimal
    status: str
    fills: tuple[ExchangeFill, ...] | None = None

    @property
    def is_open(self) -> bool:
        """Still resting on the book."""
        return self.status == OPEN


def _dec(value: object) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else ZERO


def _ms(value: object) -> datetime:
    return datetime.fromtimestamp(int(str(value)) / 1000, UTC)


def _text(value: Decimal) -> str:
    return format(value, "f")


def rejection_reason(error: PermanentExchangeError) -> str:
    """A clear, key-free errorMessage cause for a permanent refusal."""
    if error.kind is ErrorKind.INSUFFICIENT_FUNDS:
        return "INSUFFICIENT_BALANCE: the account's balance does not cover this order"
    if error.kind in (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION):
        return "INVALID_CREDENTIALS: the exchange rejected the API keys"
    if error.kind is ErrorKind.BAD_SYMBOL:
        return "TICKER_NOT_FOUND: the exchange does not list this market"
    if error.kind is ErrorKind.INVALID_ORDER:
        return f"ORDER_FAILED: the exchange refused the order ({error.reason or error.source or 'invalid'})"
    return f"EXCHANGE_API_ERROR: the exchange refused the order ({error.source or 'error'})"


def _not_found(exc: Exception) -> bool:
    error = classify(exc)
    return isinstance(error, PermanentExchangeError) and error.kind is ErrorKind.ORDER_NOT_FOUND


# The monotonic time until which this task may still send an order request (set by the broker around a place
# or a cancel from the replica's confirmed authority). Checked when ccxt signs the request, i.e. after its
# throttle queue: a replica paused while a request waited there (GC, SIGSTOP) must not send it on waking,
# when its bot may be another replica's, whose own placement of the same client order id may have filled
# already (Binance keeps a client order id unique among open orders only: it would take a second order).
ACT_DEADLINE: ContextVar[float | None] = ContextVar("act_deadline", default=None)


def _guard_signing(exchange: Any) -> None:
    """Make the ccxt instance refuse to sign (and so to send) once the task's ACT_DEADLINE has passed."""
    sign = exchange.sign

    def guarded(*args: Any, **kwargs: Any) -> Any:
        deadline = ACT_DEADLINE.get()
        if deadline is not None and time.monotonic() > deadline:
            raise RequestWithheldError("this replica's authority ran out before the request was signed")
        return sign(*args, **kwargs)

    exchange.sign = guarded


class ExchangeClient:
    """A ccxt client holding one user's keys for one exchange (raises ccxt errors; callers classify)."""

    def __init__(
        self, exchange: Exchange, settings: ExchangeSettings, keys: Keys, budget: ExchangeBudget
    ) -> None:
        self.exchange = exchange
        self.api_key = keys.api_key
        self.secret = keys.secret
        self._ccxt: Any = create_ccxt(
            exchange, settings, budget=budget, api_key=keys.api_key, secret=keys.secret
        )
        _guard_signing(self._ccxt)
        if exchange is Exchange.BINANCE:
            # How long a signed request stays valid: what live/inherited.py waits for before placing an order
            # another process committed and may still be sending.
            self._ccxt.options["recvWindow"] = RECV_WINDOW_MS
        self._quote = "KRW" if exchange is Exchange.UPBIT else "USDT"

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._ccxt.close()

    # --- Binance --------------------------------------------------------------------------------------

    def _binance_order(self, raw: dict[str, Any]) -> ExchangeOrder:
        return ExchangeOrder(
            exchange_order_id=str(raw["orderId"]),
            client_order_id=raw.get("clientOrderId"),
            side=Side.BUY if raw["side"] == "BUY" else Side.SELL,
            price=_dec(raw.get("price")),
            qty=_dec(raw.get("origQty")),
            filled_qty=_dec(raw.get("executedQty")),
            status=_BINANCE_STATUS.get(str(raw.get("status")), OPEN),
        )

    # --- Upbit ----------------------------------------------------------------------------------------

    def _upbit_order(self, raw: dict[str, Any]) -> ExchangeOrder:
        state = raw.get("state")
        executed = _dec(raw.get("executed_volume"))
        volume = _dec(raw.get("volume"))
        status = OPEN if state in ("wait", "watch") else FILLED if state == "done" else CANCELED
        fills: tuple[ExchangeFill, ...] | None = None
        if "trades" in raw:
            fills = self._upbit_fills(raw)
        return ExchangeOrder(
            exchange_order_id=str(raw["uuid"]),
            client_order_id=raw.get("identifier"),
            side=Side.BUY if raw["side"] == "bid" else Side.SELL,
            price=_dec(raw.get("price")),
            qty=volume,
            filled_qty=executed,
            status=status,
            fills=fills,
        )

    def _upbit_fills(self, raw: dict[str, Any]) -> tuple[ExchangeFill, ...]:
        """Upbit lists trades without their fee: the order's paid fee is shared by their funds (in KRW)."""
        trades = list(raw.get("trades") or [])
        paid = _dec(raw.get("paid_fee"))
        funds = [_dec(t.get("funds")) for t in trades]
        total = sum(funds, ZERO)
        fills: list[ExchangeFill] = []
        shared = ZERO
        for n, (trade, fund) in enumerate(zip(trades, funds, strict=True)):
            if n == len(trades) - 1:
                fee = paid - shared
            else:
                fee = (paid * fund / total) if total else ZERO
                shared += fee
            fills.append(
                ExchangeFill(
                    fill_id=str(trade["uuid"]),
                    price=_dec(trade.get("price")),
                    qty=_dec(trade.get("volume")),
                    fee=fee,
                    fee_currency="KRW",
                    executed_at=datetime.fromisoformat(str(trade["created_at"])).astimezone(UTC),
                )
            )
        return tuple(fills)

    # --- operations -----------------------------------------------------------------------------------

    async def place(
        self, ticker: str, side: Side, price: Decimal, qty: Decimal, cid: str, *, market: bool = False
    ) -> ExchangeOrder:
        """A limit order under our client order id; `market`: a market sell of `qty` (price unused)."""
        if self.exchange is Exchange.BINANCE:
            params: dict[str, str] = {
                "symbol": ticker,
                "side": "BUY" if side is Side.BUY else "SELL",
                "type": "MARKET" if market else "LIMIT",
                "quantity": _text(qty),
                "newClientOrderId": cid,
                "newOrderRespType": "RESULT",
            }
            if not market:
                params.update(timeInForce="GTC", price=_text(price))
            return self._binance_order(await self._ccxt.private_post_order(params))
        if market and side is not Side.SELL:
            raise ValueError("only market sells are placed (Upbit's market buy is by quote amount)")
        body = {
            "market": ticker,
            "side": "bid" if side is Side.BUY else "ask",
            # Upbit: "market" is a market sell of `volume`; a limit order names its price.
            "ord_type": "market" if market else "limit",
            "volume": _text(qty),
            "identifier": cid,
        }
        if not market:
            body["price"] = _text(price)
        return self._upbit_order(await self._ccxt.private_post_orders(body))

    async def fetch(self, ticker: str, cid: str, exchange_order_id: str | None) -> ExchangeOrder | None:
        """The order by its exchange id (else our client id); None when the exchange has never seen it."""
        try:
            if self.exchange is Exchange.BINANCE:
                params: dict[str, Any] = {"symbol": ticker}
                if exchange_order_id:
                    params["orderId"] = exchange_order_id
                else:
                    params["origClientOrderId"] = cid
                return self._binance_order(await self._ccxt.private_get_order(params))
            key = {"uuid": exchange_order_id} if exchange_order_id else {"identifier": cid}
            return self._upbit_order(await self._ccxt.private_get_order(key))
        except Exception as exc:
            if _not_found(exc):
                return None
            raise

    async def cancel(self, ticker: str, cid: str, exchange_order_id: str | None) -> bool:
        """Ask the exchange to cancel; False when it knows no open order by that id (filled, gone, unseen)."""
        try:
            if self.exchange is Exchange.BINANCE:
                params: dict[str, Any] = {"symbol": ticker}
                if exchange_order_id:
                    params["orderId"] = exchange_order_id
                else:
                    params["origClientOrderId"] = cid
                await self._ccxt.private_delete_order(params)
            else:
                key = {"uuid": exchange_order_id} if exchange_order_id else {"identifier": cid}
                await self._ccxt.private_delete_order(key)
        except Exception as exc:
            if _not_found(exc):
                return False
            error = classify(exc)
            # Upbit refuses to cancel an order that is already done or canceled.
            if isinstance(error, PermanentExchangeError) and "order_not_found" in str(error).lower():
                return False
            raise
        return True

    async def fills(self, ticker: str, order: ExchangeOrder) -> tuple[ExchangeFill, ...]:
        """Every trade of the order."""
        if order.fills is not None:
            return order.fills
        if self.exchange is Exchange.UPBIT:
            fetched = await self.fetch(ticker, order.client_order_id or "", order.exchange_order_id)
            return fetched.fills or () if fetched is not None else ()
        if order.filled_qty == 0:
            return ()
        raw = await self._ccxt.private_get_mytrades({"symbol": ticker, "orderId": order.exchange_order_id})
        return tuple(
            ExchangeFill(
                fill_id=str(t["id"]),
                price=_dec(t["price"]),
                qty=_dec(t["qty"]),
                fee=_dec(t.get("commission")),
                fee_currency=str(t.get("commissionAsset") or self._quote),
                executed_at=_ms(t["time"]),
            )
            for t in raw
            if str(t.get("orderId")) == order.exchange_order_id
        )

    async def open_orders(self, ticker: str) -> list[ExchangeOrder]:
        """Every open order of the market."""
        if self.exchange is Exchange.BINANCE:
            raw = await self._ccxt.private_get_openorders({"symbol": ticker})
            return [self._binance_order(item) for item in raw]
        found: list[ExchangeOrder] = []
        for page in range(1, 1000):
            raw = await self._ccxt.private_get_orders_open({"market": ticker, "limit": 100, "page": page})
            found.extend(self._upbit_order(item) for item in raw)
            if len(raw) < 100:
                break
        return found


async def public_price(client: Any, exchange: Exchange, ticker: str) -> Decimal | None:
    """The last traded price from the exchange's public ticker."""
    if exchange is Exchange.BINANCE:
        raw = await client.public_get_ticker_price({"symbol": ticker})
        value = raw.get("price") if isinstance(raw, dict) else None
    else:
        raw = await client.public_get_ticker({"markets": ticker})
        value = raw[0].get("trade_price") if isinstance(raw, list) and raw else None
    price = _dec(value) if value is not None else None
    return price if price is not None and price > 0 else None
