"""Exact decimals on the wire: parsing, the exchanges' number strings, a Decimal JSON writer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
EIGHT_PLACES = Decimal("0.00000001")


class BadNumberError(ValueError):
    """A parameter that is not a finite decimal number."""


def parse_decimal(value: object) -> Decimal:
    """A finite Decimal from a string, int or Decimal (never through float)."""
    if isinstance(value, bool):
        raise BadNumberError(str(value))
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise BadNumberError(str(value)) from exc
    else:
        raise BadNumberError(str(value))
    if not result.is_finite():
        raise BadNumberError(str(value))
    return result


def fmt8(value: Decimal) -> str:
    """Binance's fixed 8-decimal string, e.g. "0.10264410"."""
    return f"{value.quantize(EIGHT_PLACES, rounding=ROUND_DOWN):f}"


def fmt_plain(value: Decimal) -> str:
    """Upbit's plain string: no exponent, no trailing zeros, e.g. "15584.9886" or "5000"."""
    if value == 0:
        return "0"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of step not above value."""
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when value is a whole number of steps."""
    return (value % step) == 0


def decimals_of(value: Decimal) -> int:
    """Digits after the decimal point in the value as written (trailing zeros ignored)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _number(value: Decimal) -> str:
    text = f"{value:f}"
    return "0" if text in ("-0", "0E-8") else text


def dumps(obj: Any) -> str:
    """JSON text where Decimal values become JSON numbers written exactly."""
    parts: list[str] = []
    _write(obj, parts)
    return "".join(parts)


def _write(obj: Any, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=False))
    elif isinstance(obj, Decimal):
        out.append(_number(obj))
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, float):
        out.append(json.dumps(obj))
    elif isinstance(obj, Mapping):
        out.append("{")
        first = True
        for key, value in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(value, out)
        out.append("}")
    elif isinstance(obj, Sequence):
        out.append("[")
        for index, value in enumerate(obj):
            if index:
                out.append(",")
            _write(value, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping non-integer numbers as Decimal."""
    return json.loads(text, parse_float=Decimal)
