"""Binance's checks of a new order: parameters, exchange filters, open-order limits, duplicate ids."""

from __future__ import annotations

import re
from decimal import Decimal

from exchange_sim.accounts import Account
from exchange_sim.binance import errors
from exchange_sim.binance.errors import CLIENT_ID_PATTERN, BinanceError
from exchange_sim.markets import Market
from exchange_sim.matching import MatchingEngine, NewOrder, random_client_id
from exchange_sim.orders import OrderType, Side, TimeInForce
from exchange_sim.wire import BadNumberError, decimals_of, parse_decimal

Params = dict[str, str]
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)
_NUMBER_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_MAX_OPEN_ORDERS = 200


def parse_number(params: Params, name: str) -> Decimal | None:
    """A decimal parameter as Binance reads it (pattern, at most 8 decimals), or None."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not re.match(_NUMBER_PATTERN, raw):
        raise errors.illegal_chars(name, _NUMBER_PATTERN)
    try:
        value = parse_decimal(raw)
    except BadNumberError as exc:
        raise errors.illegal_chars(name, _NUMBER_PATTERN) from exc
    if decimals_of(value) > 8:
        raise errors.bad_precision(name)
    return value


def parse_int(params: Params, name: str, default: int | None = None) -> int | None:
    """An integer parameter, or the default."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.illegal_chars(name, "^[0-9]{1,20}$") from exc


def market_of(engine: MatchingEngine, params: Params, required: bool = True) -> Market | None:
    """The market of the "symbol" parameter (-1102 when required and missing, -1121 when unknown)."""
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise errors.mandatory("symbol")
        return None
    market = engine.markets.get(symbol)
    if market is None:
        raise errors.bad_symbol()
    return market


def validate_order(engine: MatchingEngine, account: Account, params: Params) -> NewOrder:
    """A POST /api/v3/order request checked as Binance checks it (params, filters, duplicates)."""
    market = market_of(engine, params)
    assert market is not None
    side_raw = params.get("side")
    if not side_raw:
        raise errors.mandatory("side")
    if side_raw not in ("BUY", "SELL"):
        raise errors.bad_side()
    type_raw = params.get("type")
    if not type_raw:
        raise errors.mandatory("type")
    if type_raw not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
        raise errors.bad_type()
    order_type = OrderType(type_raw)
    client_id = params.get("newClientOrderId") or None
    if client_id is not None and not _CLIENT_ID_RE.match(client_id):
        raise errors.illegal_chars("newClientOrderId", CLIENT_ID_PATTERN)
    qty, price, quote_qty = (
        parse_number(params, "quantity"),
        parse_number(params, "price"),
        parse_number(params, "quoteOrderQty"),
    )
    tif_raw = params.get("timeInForce")
    tif = TimeInForce.GTC
    if order_type is OrderType.LIMIT:
        if not tif_raw:
            raise errors.mandatory("timeInForce")
        if tif_raw not in ("GTC", "IOC", "FOK"):
            raise errors.bad_tif()
        tif = TimeInForce(tif_raw)
    elif tif_raw:
        raise errors.not_required("timeInForce")
    data = engine.data[market.symbol]
    if order_type is OrderType.MARKET:
        if price is not None:
            raise errors.not_required("price")
        if qty is None and quote_qty is None:
            raise BinanceError(
                -1102,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            )
        if qty is not None and quote_qty is not None:
            raise errors.not_required("quoteOrderQty")
        notional = quote_qty if quote_qty is not None else (qty or Decimal(0)) * data.last_price
    else:
        if qty is None:
            raise errors.mandatory("quantity")
        if price is None:
            raise errors.mandatory("price")
        if price < market.min_price or price > market.max_price or not market.price_is_valid(price):
            raise errors.filter_failure("PRICE_FILTER")
        notional = price * qty
    if qty is not None and (qty < market.min_qty or qty > market.max_qty or qty % market.step_size != 0):
        raise errors.filter_failure("LOT_SIZE")
    if quote_qty is not None and quote_qty / data.last_price < market.min_qty:
        raise errors.filter_failure("LOT_SIZE")
    if notional < market.min_notional or (
        order_type is not OrderType.MARKET and notional > market.max_notional
    ):
        raise errors.filter_failure("NOTIONAL")
    if len(engine.open_orders(account.api_key, market.symbol)) >= _MAX_OPEN_ORDERS:
        raise errors.filter_failure("MAX_NUM_ORDERS")
    if client_id is not None:
        existing = engine.by_client.get((account.api_key, client_id))
        if existing is not None and existing.is_open:
            raise errors.duplicate_order()
    return NewOrder(
        api_key=account.api_key,
        symbol=market.symbol,
        side=Side(side_raw),
        type=order_type,
        time_in_force=tif,
        price=price,
        qty=qty,
        quote_qty=quote_qty,
        client_order_id=client_id or random_client_id(),
    )
