"""The message-bus port and its adapters (RabbitMQ, in-process); see ARCHITECTURE.md."""

from common.bus.factory import create_bus
from common.bus.memory import InMemoryBus
from common.bus.port import (
    DEFAULT_TRANSIENT_MAX_LENGTH,
    INVALID_BODY_KEY,
    Bus,
    BusError,
    Handler,
    PublishNotConfirmedError,
    QueueDepth,
    QueueKind,
    Subscription,
    TopologyMismatchError,
)
from common.bus.rabbit import RabbitBus
from common.bus.support import topic_matches
from common.contracts.envelope import Envelope

__all__ = [
    "DEFAULT_TRANSIENT_MAX_LENGTH",
    "INVALID_BODY_KEY",
    "Bus",
    "BusError",
    "Envelope",
    "Handler",
    "InMemoryBus",
    "PublishNotConfirmedError",
    "QueueDepth",
    "QueueKind",
    "RabbitBus",
    "Subscription",
    "TopologyMismatchError",
    "create_bus",
    "topic_matches",
]
