"""GET /metrics: the engine's figures in Prometheus text format, counting what a paper bot did."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from engine_support import BotFactory, BotSpec, CredentialsStub, TickPublisher, cache_price, publish_command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import RabbitBus
from common.contracts.bots import BotEvent
from common.testing.wait import eventually
from engine.main import create_app
from engine.metrics import LATENCY_BUCKETS, Metrics, exported_names, time_full_collections
from engine.runtime import EngineRuntime
from engine.settings import Settings
from trading.models import ENGINE_PARTITIONS, Trade


def _figures(text: str) -> dict[str, float]:
    """Every sample of the exposition by name (+ `le` for buckets); the one replica's label is dropped."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            le = sample.labels.get("le")
            samples[f"{sample.name}{{le={le}}}" if le else sample.name] = sample.value
    return samples


async def test_metrics_count_the_ticks_fills_orders_and_latencies_of_a_paper_bot(
    settings_for: Callable[..., Settings],
    credentials: CredentialsStub,
    bus: RabbitBus,
    bots: BotFactory,
    db: async_sessionmaker[AsyncSession],
) -> None:
    app = create_app(settings_for(engine_id="metrics-a"), credentials_transport=credentials.transport())
    async with LifespanManager(app):
        runtime: EngineRuntime = app.state.runtime
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://engine"
        ) as http:

            async def figures() -> dict[str, float]:
                response = await http.get("/metrics")
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain")
                return _figures(response.text)

            spec = BotSpec()
            bot = await bots.create(spec)
            assert runtime.cache is not None
            await cache_price(runtime.cache, "KRW-BTC", "53500000")
            await publish_command(bus, bot, BotEvent.START)

            async def resting() -> bool:
                # Started between L3 and L4: a buy rests at each of L0..L3.
                seen = await figures()
                return (
                    seen["gridbot_engine_bots_driven"] == 1
                    and seen["gridbot_engine_orders_placed_total"] == 4
                )

            await eventually(resting, timeout=10)
            ticks = TickPublisher(bus)
            # The low passes L3, L2 and L1: three paper buys, each placing its sell in the same commit.
            await ticks.send(ticks.tick(51_000_000, 53_500_000, 51_000_000))

            async def traded() -> bool:
                async with db() as session:
                    count = await session.scalar(select(func.count()).where(Trade.bot_id == bot.id))
                return count == 3

            await eventually(traded, timeout=10)
            seen = await figures()
            # What the deploy checks (alerts, dashboard) take for the engine's names is what it exports.
            registry = app.state.metrics_registry
            names = {sample.name for family in registry.collect() for sample in family.samples}
            assert names <= exported_names()
            assert exported_names() - names <= {"gridbot_engine_orders_rejected_total"}  # none rejected yet

    metrics = runtime.metrics
    assert seen["gridbot_engine_fills_committed_total"] == 3 == metrics.fills
    assert seen["gridbot_engine_paper_fills_committed_total"] == 3
    # The start's four buys, then three sells.
    assert seen["gridbot_engine_orders_placed_total"] == metrics.orders_placed == 7
    assert seen["gridbot_engine_ticks_consumed_total"] == metrics.ticks >= 1
    assert (
        seen["gridbot_engine_partitions_ready"] == seen["gridbot_engine_partitions_held"] == ENGINE_PARTITIONS
    )
    assert seen["gridbot_engine_shard_backlog"] == 0
    samples = list(metrics.tick_to_order)
    assert seen["gridbot_engine_tick_to_order_seconds_count"] == len(samples) >= 1
    assert abs(seen["gridbot_engine_tick_to_order_seconds_sum"] - sum(samples)) < 1e-9
    for bound in LATENCY_BUCKETS:
        assert seen[f"gridbot_engine_tick_to_order_seconds_bucket{{le={bound!r}}}"] == sum(
            s <= bound for s in samples
        )
    assert seen["gridbot_engine_tick_to_order_seconds_bucket{le=+Inf}"] == len(samples)
    assert seen["gridbot_engine_event_loop_lag_seconds_count"] >= 1
    assert seen["process_resident_memory_bytes"] > 0


def test_full_collections_are_timed_until_stopped() -> None:
    metrics = Metrics()
    stop = time_full_collections(metrics.gc_full_pause)
    try:
        gc.collect(1)
        gc.collect()
        gc.collect()
    finally:
        stop()
    gc.collect()
    assert len(metrics.gc_full_pause) == 2
    assert all(0 <= pause < 5 for pause in metrics.gc_full_pause)


def test_reset_zeroes_what_the_readers_see_but_never_the_exported_totals() -> None:
    metrics = Metrics()
    metrics.fills, metrics.commit_seconds = 5, 1.5
    metrics.tick_to_order.append(0.004)
    metrics.reset()
    metrics.fills += 2
    metrics.tick_to_order.append(0.03)
    assert metrics.fills == 2
    assert list(metrics.tick_to_order) == [0.03]
    assert metrics.total("fills") == 7
    assert metrics.total("commit_seconds") == 1.5
    assert list(metrics.tick_to_order.histogram.counts) == [
        1 if b in (0.004, 0.03) else 0 for b in (*LATENCY_BUCKETS, None)
    ]
    buckets: Any = dict(metrics.tick_to_order.histogram.cumulative())
    assert buckets["0.004"] == 1
    assert buckets["0.03"] == buckets["+Inf"] == 2
