"""What users' private streams report (fills, closed orders, reconnections), turned into this engine's work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from engine.contracts import OrderFilledMessage
from engine.intake.messages import FillConsumer
from engine.live.client import ExchangeFill
from engine.live.fills import fill_message
from engine.live.ports import Broker
from engine.live.recovery import ClientKey, Recovery, client_key
from gridcore import parse_client_order_id

log = logging.getLogger(__name__)

Publish = Callable[[OrderFilledMessage], Awaitable[None]]


class StreamEvents:
    """The callbacks of every private stream of one engine."""

    def __init__(
        self, broker: Broker, fills: FillConsumer, recovery: Recovery, publish: Publish | None
    ) -> None:
        self._broker = broker
        self._fills = fills
        self._recovery = recovery
        self._publish = publish

    async def fill(self, cid: str, exchange_order_id: str, fill: ExchangeFill) -> None:
        """A fill of one of our orders: through the bus (the same path as any fill), or applied here."""
        parsed = parse_client_order_id(cid)
        handle = self._broker.registry.by_prefix(parsed.prefix) if parsed is not None else None
        if handle is None or parsed is None:
            return  # not an order of a bot this engine drives
        message = fill_message(handle, cid, exchange_order_id, parsed.side, fill)
        if self._publish is not None:
            try:
                await self._publish(message)
                return
            except Exception as exc:  # the bus is down: apply it here rather than wait for a reconciliation
                log.warning(
                    "publishing fill %s failed (%s); applying it directly", fill.fill_id, type(exc).__name__
                )
        self._broker.spawn(self._fills.apply(handle.id, message), f"fill:{cid}")

    async def closed(self, cid: str, exchange_order_id: str) -> None:
        """An order closed (canceled or done): a status check folds its fills before the core hears of it."""
        parsed = parse_client_order_id(cid)
        handle = self._broker.registry.by_prefix(parsed.prefix) if parsed is not None else None
        if handle is not None and handle.core.open_order(cid) is not None:
            self._broker.spawn(
                self._broker.guarded(handle, self._broker.check(handle.id, cid)), f"check:{cid}"
            )

    async def connected(self, key: ClientKey) -> None:
        """A stream (re)connected: what happened while it was down is found by asking the exchange."""
        # The stream covers each bot only once that answer came.
        for handle in list(self._broker.registry.handles.values()):
            if not handle.is_paper and client_key(handle) == key and handle.core.open_orders():
                self._recovery.owe(handle.id)
