"""The matching engine on its own: locks, fees, partial fills, time in force, events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_sim.accounts import AccountStore
from exchange_sim.events import Event, Hub, OrderUpdate, TickerUpdate
from exchange_sim.markets import default_markets
from exchange_sim.matching import Fees, MatchingEngine, NewOrder, OrderRejectedError
from exchange_sim.orders import OrderType, Side, Status, TimeInForce
from exchange_sim.upbit.format import state_of

D = Decimal


def _engine(
    venue: str = "binance", partial: Decimal | None = None
) -> tuple[MatchingEngine, str, list[Event]]:
    accounts, hub = AccountStore(), Hub()
    events: list[Event] = []
    hub.subscribe(events.append)
    markets = default_markets()
    fees = (
        Fees(D("0.001"), D("0.001"), quote_only=False)
        if venue == "binance"
        else Fees(D("0.0005"), D("0.0005"), quote_only=True)
    )
    engine = MatchingEngine(venue, markets[venue], fees, accounts, hub, lambda: 1_700_000_000_000, partial)  # type: ignore[arg-type]
    key = accounts.create({"USDT": D(10000), "KRW": D(10_000_000), "BTC": D(1)}, 0).api_key
    symbol = "BTCUSDT" if venue == "binance" else "KRW-BTC"
    engine.on_tick(symbol, D(100000) if venue == "binance" else D(140_000_000), D("0.1"))
    return engine, key, events


def _limit(
    key: str, side: Side, qty: str, price: str, tif: TimeInForce = TimeInForce.GTC, **kw: object
) -> NewOrder:
    return NewOrder(
        key,
        kw.get("symbol", "BTCUSDT"),
        side,
        kw.get("type", OrderType.LIMIT),
        tif,
        D(price),
        D(qty),
        None,
        "c",
    )  # type: ignore[arg-type]


def test_partial_fills_take_a_share_per_crossing_tick() -> None:
    engine, key, events = _engine(partial=D("0.5"))
    order = engine.place(_limit(key, Side.BUY, "0.04", "99000"))
    engine.on_tick("BTCUSDT", D(98900))
    assert (order.status, order.executed_qty) == (Status.PARTIALLY_FILLED, D("0.02"))
    engine.on_tick("BTCUSDT", D(99500))  # back above the limit: nothing more
    assert order.executed_qty == D("0.02")
    engine.on_tick("BTCUSDT", D(98800))
    engine.on_tick("BTCUSDT", D(98800))  # each crossing tick fills half of what is left: 0.01, 0.005
    assert order.executed_qty == D("0.035")
    wallet = engine.wallet(key)
    assert wallet.get("USDT").locked == D("0.005") * 99000
    trades = [e for e in events if isinstance(e, OrderUpdate) and e.execution == "TRADE"]
    assert [t.order.status for t in trades] == [Status.PARTIALLY_FILLED] * 3


def test_last_partial_fill_takes_everything_below_min_notional() -> None:
    engine, key, _ = _engine(partial=D("0.5"))
    order = engine.place(_limit(key, Side.BUY, "0.00008", "99000"))  # 7.92 USDT: half would leave < 5
    engine.on_tick("BTCUSDT", D(98000))
    assert order.status is Status.FILLED and order.executed_qty == D("0.00008")


def test_ioc_and_fok_expire_when_not_marketable_and_limit_maker_never_takes() -> None:
    engine, key, events = _engine()
    ioc = engine.place(_limit(key, Side.BUY, "0.01", "90000", TimeInForce.IOC))
    assert ioc.status is Status.EXPIRED
    assert engine.wallet(key).get("USDT").locked == 0
    with pytest.raises(OrderRejectedError) as rejected:
        engine.place(_limit(key, Side.BUY, "0.01", "100000", type=OrderType.LIMIT_MAKER))
    assert rejected.value.reason == "would_match"
    assert [e.execution for e in events if isinstance(e, OrderUpdate)] == ["NEW", "EXPIRED"]


def test_cancel_releases_exactly_what_was_locked() -> None:
    engine, key, _ = _engine()
    wallet = engine.wallet(key)
    order = engine.place(_limit(key, Side.SELL, "0.3", "120000"))
    assert (wallet.get("BTC").free, wallet.get("BTC").locked) == (D("0.7"), D("0.3"))
    engine.cancel(order, "cancel-1")
    assert (wallet.get("BTC").free, wallet.get("BTC").locked) == (D(1), D(0))
    assert order.status is Status.CANCELED and order.cancel_client_id == "cancel-1"
    with pytest.raises(OrderRejectedError):
        engine.place(_limit(key, Side.SELL, "1.5", "120000"))


def test_upbit_bids_reserve_the_fee_and_a_better_fill_refunds_it() -> None:
    engine, key, _ = _engine("upbit")
    wallet = engine.wallet(key)
    order = engine.place(
        _limit(key, Side.BUY, "0.01", "141000000", symbol="KRW-BTC")
    )  # marketable: fills at 140M
    assert order.status is Status.FILLED and order.fills[0].price == D(140_000_000)
    assert order.fees_paid == D(700)  # 0.05% of 1,400,000 KRW, in KRW
    assert wallet.get("KRW").free == D(10_000_000) - D(1_400_700) and wallet.get("KRW").locked == 0
    assert wallet.get("BTC").free == D("1.01")


def test_upbit_market_buy_by_amount_ends_canceled_with_the_change_refunded() -> None:
    engine, key, _ = _engine("upbit")
    request = NewOrder(
        key, "KRW-BTC", Side.BUY, OrderType.MARKET, TimeInForce.GTC, None, None, D(10001), None, "price"
    )
    order = engine.place(request)
    assert order.executed_qty == D("0.00007143")  # 10,001 KRW / 140,000,000, cut to 8 decimals
    assert state_of(order) == "cancel"  # as on Upbit when the amount does not divide evenly
    assert engine.wallet(key).get("KRW").locked == 0


def test_binance_tickers_are_throttled_until_flushed() -> None:
    accounts, hub = AccountStore(), Hub()
    events: list[Event] = []
    hub.subscribe(events.append)
    fees = Fees(D("0.001"), D("0.001"), quote_only=False)
    engine = MatchingEngine(
        "binance", default_markets()["binance"], fees, accounts, hub, lambda: 1, None, 1000
    )
    engine.on_tick("BTCUSDT", D(100000), D(1))
    engine.on_tick("BTCUSDT", D(100001), D(1))
    engine.on_tick("ETHUSDT", D(3000), D(1))
    assert not [e for e in events if isinstance(e, TickerUpdate)]
    engine.flush_tickers()
    assert [(e.symbol) for e in events if isinstance(e, TickerUpdate)] == ["BTCUSDT", "ETHUSDT"]
    engine.flush_tickers()
    assert len([e for e in events if isinstance(e, TickerUpdate)]) == 2  # nothing traded since
