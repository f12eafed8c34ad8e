"""Binance's error bodies {"code": -XXXX, "msg": ...}: real codes, messages, HTTP statuses."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from exchange_sim.http import json_response

CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"


class BinanceError(Exception):
    """An error Binance would answer with."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"code": self.code, "msg": self.msg}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        """The error as Binance's REST API sends it."""
        return json_response(self.body(), self.status, headers)


def mandatory(name: str) -> BinanceError:
    """-1102: a required parameter is missing."""
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def one_of_order_ids() -> BinanceError:
    """-1102: neither orderId nor origClientOrderId was sent."""
    return BinanceError(
        -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
    )


def bad_precision(name: str) -> BinanceError:
    """-1111: more decimals than the asset allows."""
    return BinanceError(-1111, f"Parameter '{name}' has too much precision.")


def illegal_chars(name: str, legal: str) -> BinanceError:
    """-1100: a parameter with characters outside its pattern."""
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def bad_symbol() -> BinanceError:
    """-1121: unknown symbol."""
    return BinanceError(-1121, "Invalid symbol.")


def bad_interval() -> BinanceError:
    """-1120: unknown kline interval."""
    return BinanceError(-1120, "Invalid interval.")


def bad_side() -> BinanceError:
    """-1117: side is not BUY or SELL."""
    return BinanceError(-1117, "Invalid side.")


def bad_type() -> BinanceError:
    """-1116: an order type this simulator (or symbol) does not take."""
    return BinanceError(-1116, "Invalid orderType.")


def bad_tif() -> BinanceError:
    """-1115: timeInForce is not GTC, IOC or FOK."""
    return BinanceError(-1115, "Invalid timeInForce.")


def not_required(name: str) -> BinanceError:
    """-1106: a parameter the order type does not take."""
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def filter_failure(name: str) -> BinanceError:
    """-1013: PRICE_FILTER, LOT_SIZE, NOTIONAL, MAX_NUM_ORDERS..."""
    return BinanceError(-1013, f"Filter failure: {name}")


def insufficient_balance() -> BinanceError:
    """-2010: the free balance does not cover the order."""
    return BinanceError(-2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> BinanceError:
    """-2010: an open order of this account already has this client order id."""
    return BinanceError(-2010, "Duplicate order sent.")


def would_match() -> BinanceError:
    """-2010: a LIMIT_MAKER order would take liquidity."""
    return BinanceError(-2010, "Order would immediately match and take.")


def unknown_order_cancel() -> BinanceError:
    """-2011: cancel of an order that is not open (or not ours)."""
    return BinanceError(-2011, "Unknown order sent.")


def no_such_order() -> BinanceError:
    """-2013: query of an order that does not exist."""
    return BinanceError(-2013, "Order does not exist.")


def bad_key_format() -> BinanceError:
    """-2014: missing or malformed X-MBX-APIKEY."""
    return BinanceError(-2014, "API-key format invalid.", 401)


def rejected_key() -> BinanceError:
    """-2015: unknown API key."""
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def bad_signature() -> BinanceError:
    """-1022: HMAC does not match."""
    return BinanceError(-1022, "Signature for this request is not valid.")


def timestamp_outside_window() -> BinanceError:
    """-1021: timestamp older than recvWindow."""
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def timestamp_ahead() -> BinanceError:
    """-1021: timestamp more than a second in the future."""
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def bad_recv_window() -> BinanceError:
    """-1131: recvWindow above 60 s."""
    return BinanceError(-1131, "recvWindow must be less than 60000")


def not_authorized() -> BinanceError:
    """-1002: a WebSocket API request that needs an authenticated session."""
    return BinanceError(-1002, "You are not authorized to execute this request.", 401)
