"""A market's ticks follow its partition: the replica that takes it over, hands it back, or loses and
regains it quickly binds the market again and trades its next crossing (real PostgreSQL and RabbitMQ)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from engine_support import (
    BotFactory,
    BotSpec,
    TickPublisher,
    cache_price,
    orders_of,
    publish_command,
    trades_of,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import QueueKind, RabbitBus
from common.bus.port import Envelope
from common.contracts.bots import BotEvent
from common.contracts.market import MARKET_EXCHANGE
from common.testing.wait import eventually
from engine.intake.markets import MarketBindings
from engine.runtime import EngineRuntime
from engine.scheduling.index import TickerKey
from trading.partitions import new_bot_id

MARKET: TickerKey = ("upbit", "KRW-BTC")
START = 53_500_000
# The low passes L3, L2 and L1 of a bot started at START: three paper buys fill.
CROSSING = (51_000_000, START, 51_000_000)


async def _bindings_on(bus: RabbitBus, seen: list[Envelope]) -> tuple[MarketBindings, Any]:
    async def handle(envelope: Envelope) -> None:
        seen.append(envelope)

    subscription = await bus.subscribe(
        f"rebinding-{uuid.uuid4().hex[:8]}", MARKET_EXCHANGE, [], handle, kind=QueueKind.TRANSIENT
    )
    bindings = MarketBindings()
    await bindings.attach(subscription)
    return bindings, subscription


async def test_a_market_taken_again_while_it_is_being_unbound_stays_bound(bus: RabbitBus) -> None:
    seen: list[Envelope] = []
    bindings, subscription = await _bindings_on(bus, seen)
    try:
        await bindings.ensure([MARKET])
        held: set[TickerKey] = set()

        async def regain() -> None:
            # The partition comes back while its market's unbind is on its way to the broker: its bots are
            # loaded here again, as `EngineRuntime._gained` does (ensure, then hold).
            await bindings.ensure([MARKET])
            held.add(MARKET)

        # Handed over with no bot of the market left here, then taken again at once.
        await asyncio.gather(bindings.release([MARKET], lambda: held), regain())
        assert MARKET in bindings.bound
        ticks = TickPublisher(bus)
        await ticks.send(ticks.tick(*CROSSING))
        await eventually(lambda: len(seen) == 1, timeout=10, message="the held market's tick never arrived")

        # And the other order: the market is let go once no bot uses it, then its bots come back.
        held.clear()
        await bindings.release([MARKET], lambda: held)
        assert MARKET not in bindings.bound
        await regain()
        await ticks.send(ticks.tick(*CROSSING))
        await eventually(
            lambda: len(seen) == 2, timeout=10, message="the regained market's tick never arrived"
        )
    finally:
        await subscription.cancel()


async def test_a_market_trades_on_its_successor_after_a_stop_and_on_its_owner_after_the_handback(
    engine_factory: Any, bus: RabbitBus, bots: BotFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    first: EngineRuntime = await engine_factory(engine_id="replica-one")
    second: EngineRuntime = await engine_factory(engine_id="replica-two")
    assert first.cache is not None
    await cache_price(first.cache, "KRW-BTC", str(START))
    ticks = TickPublisher(bus)
    probe = new_bot_id("upbit", "KRW-BTC")
    await eventually(lambda: _held_by_one(probe, first, second), timeout=10)
    owner, successor = (first, second) if _owns(first, probe) else (second, first)
    owner_name = owner.settings.engine_id

    async def trade_on(replica: EngineRuntime) -> None:
        """A new bot of the market, started and driven by `replica`, fills three buys on a crossing tick."""
        await eventually(lambda: _owns(replica, probe), timeout=15, message="the partition never came")
        bot = await bots.create(BotSpec(), bot_id=new_bot_id("upbit", "KRW-BTC"))
        await publish_command(bus, bot, BotEvent.START)
        await eventually(lambda: bot.id in replica.registry.handles, timeout=10)
        await eventually(lambda: _placed(db, bot.id), timeout=10)
        await ticks.send(ticks.tick(START, START, START))  # back to the start: nothing crossed yet
        await ticks.send(ticks.tick(*CROSSING))
        await eventually(
            lambda: _trades(db, bot.id, 3),
            timeout=10,
            message=f"{replica.settings.engine_id} did not trade its market's crossing",
        )

    await trade_on(owner)
    await owner.stop()  # its partitions go to the successor
    await trade_on(successor)
    owner = await engine_factory(engine_id=owner_name)  # restarted under its name: its partitions come back
    await trade_on(owner)
    # The successor lost the market and unbound it; it gets the partition again at once.
    await owner.stop()
    await trade_on(successor)


def _owns(replica: EngineRuntime, bot_id: uuid.UUID) -> bool:
    return replica.ownership is not None and replica.ownership.owns(bot_id)


def _held_by_one(bot_id: uuid.UUID, *replicas: EngineRuntime) -> bool:
    return sum(_owns(replica, bot_id) for replica in replicas) == 1


async def _placed(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> bool:
    return sum(1 for r in await orders_of(db, bot_id) if r.status == "open") == 4


async def _trades(db: async_sessionmaker[AsyncSession], bot_id: uuid.UUID, count: int) -> bool:
    return len(await trades_of(db, bot_id)) == count
