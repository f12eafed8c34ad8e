"""Upbit's checks of a new order: order type and parameters, KRW price units, 5,000 KRW minimum, identifier."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exchange_sim.accounts import Account
from exchange_sim.matching import MatchingEngine, NewOrder
from exchange_sim.orders import OrderType, Side, TimeInForce
from exchange_sim.upbit import errors
from exchange_sim.wire import BadNumberError, decimals_of, parse_decimal


def _decimal(value: object, side: str, field_name: str) -> Decimal:
    try:
        return parse_decimal(value)
    except BadNumberError as exc:
        if field_name == "volume":
            raise errors.invalid_volume(side) from exc
        raise errors.validation_error() from exc


def validate_order(engine: MatchingEngine, account: Account, params: dict[str, Any]) -> NewOrder:
    """A POST /v1/orders body checked as Upbit checks it, or raise UpbitError."""
    code = params.get("market")
    side = params.get("side")
    if side not in ("bid", "ask"):
        raise errors.invalid_side()
    if not isinstance(code, str) or code not in engine.markets:
        raise errors.market_not_found(str(code))
    market = engine.markets[code]
    ord_type = params.get("ord_type")
    price_raw, volume_raw = params.get("price"), params.get("volume")
    tif_raw = params.get("time_in_force")
    identifier = params.get("identifier")
    last = engine.data[code].last_price
    tif = TimeInForce.GTC
    order_type = OrderType.LIMIT
    if tif_raw is not None:
        if tif_raw == "ioc":
            tif = TimeInForce.IOC
        elif tif_raw == "fok":
            tif = TimeInForce.FOK
        elif tif_raw == "post_only" and ord_type == "limit":
            order_type = OrderType.LIMIT_MAKER
        else:
            raise errors.invalid_time_in_force()
    price: Decimal | None = None
    volume: Decimal | None = None
    quote_qty: Decimal | None = None
    if ord_type == "best":
        if tif is TimeInForce.GTC:
            raise errors.invalid_time_in_force()
        ord_type = "price" if side == "bid" else "market"
    if ord_type == "limit":
        if price_raw is None or volume_raw is None:
            raise errors.validation_error()
        price, volume = _decimal(price_raw, side, "price"), _decimal(volume_raw, side, "volume")
        total = price * volume
    elif ord_type == "price":
        if side != "bid" or price_raw is None or volume_raw is not None:
            raise errors.create_error(side)
        quote_qty = _decimal(price_raw, side, "price")
        order_type, total = OrderType.MARKET, quote_qty
    elif ord_type == "market":
        if side != "ask" or volume_raw is None or price_raw is not None:
            raise errors.create_error(side)
        volume = _decimal(volume_raw, side, "volume")
        order_type, total = OrderType.MARKET, volume * last
    else:
        raise errors.validation_error("ord_type is missing, ord_type does not have a valid value")
    if price is not None and (price <= 0 or not market.price_is_valid(price)):
        raise errors.invalid_price(side)
    if quote_qty is not None and quote_qty <= 0:
        raise errors.invalid_price(side)
    if volume is not None and (volume <= 0 or decimals_of(volume) > 8):
        raise errors.invalid_volume(side)
    if total < market.min_notional:
        raise errors.under_min_total(side)
    if total > market.max_notional:
        raise errors.over_max_total(side)
    if identifier is not None:
        identifier = str(identifier)
        if (account.api_key, identifier) in engine.by_client:
            raise errors.duplicated_identifier()
    return NewOrder(
        api_key=account.api_key,
        symbol=code,
        side=Side.BUY if side == "bid" else Side.SELL,
        type=order_type,
        time_in_force=tif,
        price=price,
        qty=volume,
        quote_qty=quote_qty,
        client_order_id=identifier,
        upbit_ord_type=ord_type,
    )
