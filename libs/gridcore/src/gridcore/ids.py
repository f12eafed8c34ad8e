"""Deterministic client order ids: the same (bot, epoch, slot, side, sequence) always gives the same id.

An id is fixed in the core's state before the PlaceOrder command leaves it, so a retry or a restart sends the
same id again and the exchange refuses a second order (Binance: duplicate newClientOrderId among open orders;
Upbit: an `identifier` can never be reused). A new order of a slot takes the slot's next sequence number, so
a genuinely new order never collides with an old one, even on Upbit where identifiers are unique forever.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from gridcore.state import Side

MAX_CLIENT_ORDER_ID_LENGTH = 36
# Binance's newClientOrderId rule; Upbit accepts any string, so the stricter rule serves both.
CLIENT_ORDER_ID_PATTERN = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
PREFIX_LENGTH = 12

_ID = re.compile(r"^(?P<prefix>[a-z2-7]{12})-(?P<epoch>\d+)-(?P<slot>\d+)(?P<side>[bs])(?P<seq>\d+)$")
_MARKET_ID = re.compile(r"^(?P<prefix>[a-z2-7]{12})-(?P<epoch>\d+)-m(?P<seq>\d+)$")
# The slot a market sell (sell base on stop) is filed under: it belongs to no slot of the grid.
MARKET_SLOT = -1


def bot_prefix(bot_id: str) -> str:
    """12 base32 characters of SHA-256(bot id): short enough for Binance, 60 bits against collisions."""
    digest = hashlib.sha256(bot_id.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:PREFIX_LENGTH].lower()


def client_order_id(prefix: str, epoch: int, slot: int, side: Side, seq: int) -> str:
    """`<prefix>-<epoch>-<slot><b|s><seq>`, e.g. `k3j5d0ab1c2d-1-15b42` (≤ 36 characters)."""
    if min(epoch, slot, seq) < 0:
        raise ValueError("epoch, slot and seq must not be negative")
    cid = f"{prefix}-{epoch}-{slot}{'b' if side is Side.BUY else 's'}{seq}"
    if not CLIENT_ORDER_ID_PATTERN.match(cid):
        raise ValueError(f"client order id {cid!r} breaks the exchanges' format (≤ 36 of [.A-Za-z0-9:/_-])")
    return cid


def market_order_id(prefix: str, epoch: int, seq: int) -> str:
    """`<prefix>-<epoch>-m<seq>`: a bot's market sell (sell base on stop); never parses as a slot's order."""
    if min(epoch, seq) < 0:
        raise ValueError("epoch and seq must not be negative")
    cid = f"{prefix}-{epoch}-m{seq}"
    if not CLIENT_ORDER_ID_PATTERN.match(cid):
        raise ValueError(f"client order id {cid!r} breaks the exchanges' format (≤ 36 of [.A-Za-z0-9:/_-])")
    return cid


@dataclass(frozen=True, slots=True)
class ParsedId:
    """The parts of a client order id made by `client_order_id`."""

    prefix: str
    epoch: int
    slot: int
    side: Side
    seq: int


def parse_client_order_id(cid: str) -> ParsedId | None:
    """The parts of one of our client order ids, or None when it is not one (a market sell: MARKET_SLOT)."""
    match = _ID.match(cid)
    if match is None:
        market = _MARKET_ID.match(cid)
        if market is None:
            return None
        return ParsedId(market["prefix"], int(market["epoch"]), MARKET_SLOT, Side.SELL, int(market["seq"]))
    return ParsedId(
        prefix=match["prefix"],
        epoch=int(match["epoch"]),
        slot=int(match["slot"]),
        side=Side.BUY if match["side"] == "b" else Side.SELL,
        seq=int(match["seq"]),
    )
