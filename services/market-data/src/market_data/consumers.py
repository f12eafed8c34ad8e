"""Bot lifecycle messages (exchange `bots`) keep the set of streamed tickers up to date."""

from __future__ import annotations

import logging

from common.bus import Bus, QueueKind, Subscription
from common.contracts import queues
from common.contracts.bots import BOTS_EXCHANGE, BotEvent, BotLifecycle
from common.contracts.envelope import Envelope
from market_data.tickers import TickerRegistry

log = logging.getLogger(__name__)

LIFECYCLE_QUEUE = queues.MARKET_DATA_BOT_LIFECYCLE


async def subscribe_lifecycle(bus: Bus, registry: TickerRegistry) -> Subscription:
    """A durable queue, consumed in order, so no start/stop is missed while we restart."""

    async def handle(envelope: Envelope) -> None:
        try:
            event = BotEvent(envelope.type)
        except ValueError:
            log.info("ignoring %s on %s", envelope.type, BOTS_EXCHANGE)
            return
        # An invalid payload raises: the bus retries it a few times, then dead-letters it.
        registry.apply(event, envelope.payload_as(BotLifecycle))

    return await bus.subscribe(
        LIFECYCLE_QUEUE,
        BOTS_EXCHANGE,
        [event.value for event in BotEvent],
        handle,
        kind=QueueKind.DURABLE,
        prefetch=1,
    )
