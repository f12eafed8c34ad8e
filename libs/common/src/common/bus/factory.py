"""Pick the bus adapter from a URL: memory:// (embedded mode) or amqp(s):// (RabbitMQ)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from common.bus.memory import InMemoryBus
from common.bus.port import Bus
from common.bus.rabbit import RabbitBus


def create_bus(url: str, namespace: str = "", **options: Any) -> Bus:
    """A not yet started bus for `url`; `options` go to the adapter (e.g. retry_backoff)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return InMemoryBus(namespace, **options)
    if scheme in ("amqp", "amqps"):
        return RabbitBus(url, namespace, **options)
    raise ValueError(f"unsupported bus URL scheme {scheme!r} (memory://, amqp://, amqps://)")
