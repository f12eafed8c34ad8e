"""One venue's matching engine: funds locked on placement, resting limits filled by the tape."""

from __future__ import annotations

import secrets
import string
import uuid
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from exchange_sim.accounts import AccountStore, InsufficientBalanceError, Wallet
from exchange_sim.events import BalanceUpdate, Hub, OrderUpdate, TickerUpdate
from exchange_sim.marketdata import MarketData
from exchange_sim.markets import Market, Venue
from exchange_sim.orders import Fill, Order, OrderType, Side, Status, TimeInForce
from exchange_sim.wire import EIGHT_PLACES, floor_to_step

ZERO = Decimal(0)
_ID_ALPHABET = string.ascii_letters + string.digits
FIRST_ORDER_ID = 20_000_000_001


class OrderRejectedError(Exception):
    """The engine refused an order; each venue turns the reason into its own error."""

    def __init__(self, reason: str, asset: str = "") -> None:
        super().__init__(reason)
        self.reason = reason  # insufficient_balance | would_match
        self.asset = asset


@dataclass(frozen=True, slots=True)
class Fees:
    """Maker/taker rates and where the fee is taken from."""

    maker: Decimal
    taker: Decimal
    # Upbit: always in the quote currency (reserved up front on bids); Binance: asset received.
    quote_only: bool


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A validated order request."""

    api_key: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None
    qty: Decimal | None
    quote_qty: Decimal | None
    client_order_id: str | None
    upbit_ord_type: str = "limit"


def random_client_id() -> str:
    """A 22-character id like the ones Binance makes up when none is given."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


class MatchingEngine:
    """Orders, books and fills of one venue."""

    def __init__(
        self,
        venue: Venue,
        markets: dict[str, Market],
        fees: Fees,
        accounts: AccountStore,
        hub: Hub,
        clock: Callable[[], int],
        partial_fill_ratio: Decimal | None = None,
        ticker_interval_ms: int = 0,
    ) -> None:
        self.venue = venue
        self.markets = markets
        self.fees = fees
        self.accounts = accounts
        self.hub = hub
        self.clock = clock
        self.partial_fill_ratio = partial_fill_ratio
        self.ticker_interval_ms = ticker_interval_ms
        self.data = {symbol: MarketData(market) for symbol, market in markets.items()}
        self.orders: dict[int, Order] = {}
        self.by_uuid: dict[str, Order] = {}
        self.by_client: dict[tuple[str, str], Order] = {}
        self.pinned: set[str] = set()
        self.dirty_tickers: set[str] = set()
        self._bids: dict[str, list[tuple[Decimal, int, int]]] = {s: [] for s in markets}
        self._asks: dict[str, list[tuple[Decimal, int, int]]] = {s: [] for s in markets}
        self._next_order_id = FIRST_ORDER_ID
        self._next_execution_id = 1
        self._rest_seq = 0

    # ---- queries -------------------------------------------------------------------------------

    def wallet(self, api_key: str) -> Wallet:
        """The wallet of an account on this venue (the account must exist)."""
        account = self.accounts.get(api_key)
        if account is None:
            raise KeyError(api_key)
        return account.wallet(self.venue)

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        """Open orders of an account, oldest first."""
        return [
            o
            for o in self.orders.values()
            if o.api_key == api_key and o.is_open and (symbol is None or o.symbol == symbol)
        ]

    def account_orders(self, api_key: str | None = None) -> list[Order]:
        """Every order (of one account when api_key is given), oldest first."""
        return [o for o in self.orders.values() if api_key is None or o.api_key == api_key]

    # ---- orders --------------------------------------------------------------------------------

    def place(self, request: NewOrder) -> Order:
        """Lock funds; fill at once if marketable, else rest on the book (or expire if IOC/FOK)."""
        market = self.markets[request.symbol]
        data = self.data[request.symbol]
        now = self.clock()
        last = data.last_price
        if (
            request.type is OrderType.LIMIT_MAKER
            and request.price is not None
            and self._marketable(request.side, request.price, last)
        ):
            raise OrderRejectedError("would_match")
        order = Order(
            venue=self.venue,
            api_key=request.api_key,
            order_id=self._next_order_id,
            uuid=str(uuid.uuid4()),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            base=market.base,
            quote=market.quote,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            price=request.price,
            orig_qty=request.qty,
            quote_order_qty=request.quote_qty,
            created_ms=now,
            upbit_ord_type=request.upbit_ord_type,
            updated_ms=now,
        )
        self._lock(order, last)
        self._next_order_id += 1
        self.orders[order.order_id] = order
        self.by_uuid[order.uuid] = order
        if order.client_order_id is not None:
            self.by_client[(order.api_key, order.client_order_id)] = order
        self._emit_order(order, "NEW", None)
        self._emit_balances(order, (order.locked_asset,))
        if order.type is OrderType.MARKET:
            self._fill_market(order, last)
        elif order.price is not None and self._marketable(order.side, order.price, last):
            self._fill(order, last, order.remaining_qty, is_maker=False)
        elif order.time_in_force is not TimeInForce.GTC:
            self._finish(order, Status.EXPIRED, "EXPIRED")
        else:
            self._rest(order)
        return order

    def cancel(self, order: Order, cancel_client_id: str | None = None) -> Order:
        """Take an open order off the book and release what it still locks."""
        order.cancel_client_id = cancel_client_id or random_client_id()
        self._unbook(order)
        self._finish(order, Status.CANCELED, "CANCELED")
        return order

    # ---- the tape ------------------------------------------------------------------------------

    def on_tick(self, symbol: str, price: Decimal, qty: Decimal | None = None) -> None:
        """A trade on the public tape: record it, then fill the resting orders it reached."""
        data = self.data[symbol]
        trade = data.record(price, qty if qty is not None else data.last_qty, self.clock())
        self.hub.publish(trade)
        if self.ticker_interval_ms == 0:
            self.hub.publish(TickerUpdate(self.venue, symbol, trade.time_ms))
        else:
            self.dirty_tickers.add(symbol)
        for order in self._crossed(symbol, price):
            self._fill(order, order.price or price, self._tick_fill_qty(order), is_maker=True)

    def flush_tickers(self) -> None:
        """Publish the throttled ticker updates of markets that traded since the last flush."""
        now = self.clock()
        for symbol in sorted(self.dirty_tickers):
            self.hub.publish(TickerUpdate(self.venue, symbol, now))
        self.dirty_tickers.clear()

    # ---- internals -----------------------------------------------------------------------------

    @staticmethod
    def _marketable(side: Side, price: Decimal, last: Decimal) -> bool:
        return price >= last if side is Side.BUY else price <= last

    def _lock(self, order: Order, last: Decimal) -> None:
        wallet = self.wallet(order.api_key)
        if order.side is Side.SELL:
            asset, amount = order.base, order.orig_qty or ZERO
        elif order.type is OrderType.MARKET and order.quote_order_qty is not None:
            asset, amount = order.quote, order.quote_order_qty
        else:
            price = order.price if order.price is not None else last
            asset, amount = order.quote, price * (order.orig_qty or ZERO)
        if self.fees.quote_only and order.side is Side.BUY:
            order.reserved_fee = amount * self.fees.taker
            amount += order.reserved_fee
        try:
            wallet.lock(asset, amount)
        except InsufficientBalanceError as exc:
            raise OrderRejectedError("insufficient_balance", exc.asset) from exc
        order.locked_asset, order.locked_amount = asset, amount

    def _fill_market(self, order: Order, price: Decimal) -> None:
        market = self.markets[order.symbol]
        if order.side is Side.BUY and order.quote_order_qty is not None:
            qty = floor_to_step(order.quote_order_qty / price, market.step_size)
            if not self.fees.quote_only:
                # Binance reports the quantity that the quote amount bought as origQty.
                order.orig_qty = qty
            if qty > 0:
                self._fill(order, price, qty, is_maker=False, portion=order.locked_amount)
        else:
            self._fill(order, price, order.remaining_qty, is_maker=False, portion=order.locked_amount)
        if order.status is not Status.FILLED:
            self._finish(order, Status.EXPIRED, "EXPIRED")

    def _tick_fill_qty(self, order: Order) -> Decimal:
        remaining = order.remaining_qty
        if self.partial_fill_ratio is None or self.partial_fill_ratio >= 1:
            return remaining
        market = self.markets[order.symbol]
        part = floor_to_step(remaining * self.partial_fill_ratio, market.step_size)
        left = remaining - part
        if part <= 0 or left * (order.price or ZERO) < market.min_notional or left < market.min_qty:
            return remaining
        return part

    def _fill(
        self,
        order: Order,
        price: Decimal,
        qty: Decimal,
        is_maker: bool,
        portion: Decimal | None = None,
    ) -> None:
        wallet = self.wallet(order.api_key)
        data = self.data[order.symbol]
        rate = self.fees.maker if is_maker else self.fees.taker
        quote = price * qty
        if order.side is Side.BUY:
            if portion is None:
                portion = (order.price or price) * qty
                if self.fees.quote_only:
                    portion += portion * self.fees.taker
            if self.fees.quote_only:
                fee, fee_asset = quote * rate, order.quote
                spend, received = quote + fee, qty
            else:
                fee, fee_asset = (qty * rate).quantize(EIGHT_PLACES), order.base
                spend, received = quote, qty - fee
            held = wallet.get(order.base)
            held_before = held.free + held.locked
            wallet.spend_locked(order.quote, portion)
            wallet.credit(order.quote, portion - spend)
            wallet.credit(order.base, received)
            wallet.record_buy(order.base, received, spend, held_before)
            order.locked_amount -= portion
        else:
            fee = quote * rate if self.fees.quote_only else (quote * rate).quantize(EIGHT_PLACES)
            fee_asset = order.quote
            wallet.spend_locked(order.base, qty)
            wallet.credit(order.quote, quote - fee)
            order.locked_amount -= qty
        order.executed_qty += qty
        order.cumulative_quote += quote
        order.fees_paid += fee
        now = self.clock()
        fill = Fill(
            trade_id=data.next_trade_id,
            trade_uuid=str(uuid.uuid4()),
            price=price,
            qty=qty,
            quote_qty=quote,
            fee=fee,
            fee_asset=fee_asset,
            is_maker=is_maker,
            time_ms=now,
        )
        data.next_trade_id += 1
        order.fills.append(fill)
        done = order.orig_qty is None or order.remaining_qty <= 0
        order.status = Status.FILLED if done else Status.PARTIALLY_FILLED
        order.updated_ms = now
        if done:
            self._unbook(order)
            self._release(order, wallet)
        self._emit_order(order, "TRADE", fill)
        self._emit_balances(order, (order.base, order.quote))

    def _release(self, order: Order, wallet: Wallet) -> None:
        if order.locked_amount != 0:
            wallet.unlock(order.locked_asset, order.locked_amount)
            order.locked_amount = ZERO

    def _finish(self, order: Order, status: Status, execution: str) -> None:
        wallet = self.wallet(order.api_key)
        self._release(order, wallet)
        order.status = status
        order.updated_ms = self.clock()
        self._emit_order(order, execution, None)
        self._emit_balances(order, (order.locked_asset,))

    def counters(self) -> dict[str, int]:
        """The next order id, the execution counter (moves on every order change) and the book sequence."""
        return {
            "nextOrderId": self._next_order_id,
            "nextExecutionId": self._next_execution_id,
            "restSeq": self._rest_seq,
        }

    def restore(self, orders: list[Order], counters: dict[str, int]) -> None:
        """Take back saved orders (open ones onto the book in their old priority) and the counters."""
        for order in sorted(orders, key=lambda o: o.order_id):
            self.orders[order.order_id] = order
            self.by_uuid[order.uuid] = order
            if order.client_order_id is not None:
                self.by_client[(order.api_key, order.client_order_id)] = order
            if order.is_open and order.price is not None and order.rest_seq:
                self._book(order)
        self._next_order_id = max(self._next_order_id, counters["nextOrderId"])
        self._next_execution_id = max(self._next_execution_id, counters["nextExecutionId"])
        self._rest_seq = max(self._rest_seq, counters["restSeq"])

    def _rest(self, order: Order) -> None:
        assert order.price is not None
        self._rest_seq += 1
        order.rest_seq = self._rest_seq
        self._book(order)

    def _book(self, order: Order) -> None:
        assert order.price is not None
        if order.side is Side.BUY:
            insort(self._bids[order.symbol], (-order.price, order.rest_seq, order.order_id))
        else:
            insort(self._asks[order.symbol], (order.price, order.rest_seq, order.order_id))

    def _unbook(self, order: Order) -> None:
        if order.rest_seq == 0 or order.price is None:
            return
        book = self._bids if order.side is Side.BUY else self._asks
        entries = book[order.symbol]
        key = (
            -order.price if order.side is Side.BUY else order.price,
            order.rest_seq,
            order.order_id,
        )
        index = bisect_left(entries, key)
        if index < len(entries) and entries[index] == key:
            del entries[index]

    def _crossed(self, symbol: str, price: Decimal) -> list[Order]:
        crossed: list[Order] = []
        for neg_price, _, order_id in self._bids[symbol]:
            if -neg_price < price:
                break
            crossed.append(self.orders[order_id])
        for ask_price, _, order_id in self._asks[symbol]:
            if ask_price > price:
                break
            crossed.append(self.orders[order_id])
        return crossed

    def _emit_order(self, order: Order, execution: str, fill: Fill | None) -> None:
        self._next_execution_id += 1
        self.hub.publish(
            OrderUpdate(
                venue=self.venue,
                api_key=order.api_key,
                order=order.snapshot(),
                execution=execution,
                fill=fill,
                time_ms=self.clock(),
                execution_id=self._next_execution_id,
            )
        )

    def _emit_balances(self, order: Order, assets: tuple[str, ...]) -> None:
        wallet = self.wallet(order.api_key)
        now = self.clock()
        wallet.updated_ms = now
        rows = tuple(
            (asset, wallet.get(asset).free, wallet.get(asset).locked)
            for asset in dict.fromkeys(assets)
            if asset
        )
        self.hub.publish(BalanceUpdate(self.venue, order.api_key, rows, now))
