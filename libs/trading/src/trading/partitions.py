"""Which engine partition a bot is in, and bot ids that put every bot of one market in the same partition.

A bot's partition is a function of its id alone (`partition_of`), so every replica, the bots service and
the fence agree on it without a lookup. New bots get ids whose partition is their market's
(`new_bot_id`): all bots of one market are then driven by one replica, which alone needs that market's
price ticks, so replicas split the tick stream instead of each consuming all of it. Bots created before
(random ids) stay where their id puts them; they are driven all the same, only without that saving.
"""

from __future__ import annotations

import hashlib
import uuid

from trading.models import ENGINE_PARTITIONS


def partition_of(bot_id: uuid.UUID) -> int:
    """The partition a bot belongs to (its id's high half: the engine's shards use the low one)."""
    return (bot_id.int >> 64) % ENGINE_PARTITIONS


def market_partition(exchange: str, ticker: str) -> int:
    """The partition of a market's bots: a stable hash of (exchange, ticker)."""
    digest = hashlib.blake2b(f"{exchange}:{ticker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % ENGINE_PARTITIONS


def new_bot_id(exchange: str, ticker: str, random_id: uuid.UUID | None = None) -> uuid.UUID:
    """A random (version 4) bot id in its market's partition (`random_id`'s other bits when given).

    The partition is read from bits 64–69, which a version-4 id fills at random (its version and variant
    bits lie elsewhere); 2**64 is a multiple of ENGINE_PARTITIONS, so setting them keeps the id in range.
    """
    value = (random_id or uuid.uuid4()).int
    high, low = value >> 64, value & ((1 << 64) - 1)
    high += market_partition(exchange, ticker) - high % ENGINE_PARTITIONS
    return uuid.UUID(int=(high << 64) | low)
