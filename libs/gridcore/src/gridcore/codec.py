"""JSON-safe forms of events and commands (Decimals as strings, a `type` tag), for event logs and outboxes."""

from __future__ import annotations

import dataclasses
import types
from decimal import Decimal
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

from gridcore import commands, events

_EVENTS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        events.Start,
        events.Tick,
        events.OrderFilled,
        events.OrderCanceled,
        events.OrderRejected,
        events.Stop,
        events.Abandon,
        events.ConfigChanged,
    )
}
_COMMANDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        commands.PlaceOrder,
        commands.SellMarket,
        commands.CancelOrder,
        commands.RecordTrade,
        commands.SetStatus,
        commands.SlotChanged,
    )
}


def _encode(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _decode(annotation: Any, value: object) -> object:
    if value is None:
        return None
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _decode(inner[0], value)
    if get_origin(annotation) is tuple and isinstance(value, list):
        return tuple(_decode(arg, item) for arg, item in zip(get_args(annotation), value, strict=True))
    if annotation is Decimal:
        return Decimal(str(value))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation(value)
    return value


def _to_dict(item: Any) -> dict[str, Any]:
    data = {f.name: _encode(getattr(item, f.name)) for f in dataclasses.fields(item)}
    return {"type": type(item).__name__, **data}


def _from_dict(registry: dict[str, type[Any]], data: dict[str, Any]) -> Any:
    cls = registry.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown type {data.get('type')!r}")
    hints = get_type_hints(cls)
    fields = {f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**fields)


def event_to_dict(event: events.Event) -> dict[str, Any]:
    """An event as JSON-safe data."""
    return _to_dict(event)


def event_from_dict(data: dict[str, Any]) -> events.Event:
    """The inverse of `event_to_dict`."""
    result: events.Event = _from_dict(_EVENTS, data)
    return result


def command_to_dict(command: commands.Command) -> dict[str, Any]:
    """A command as JSON-safe data."""
    return _to_dict(command)


def command_from_dict(data: dict[str, Any]) -> commands.Command:
    """The inverse of `command_to_dict`."""
    result: commands.Command = _from_dict(_COMMANDS, data)
    return result
