"""The engine's FastAPI app: its lifespan runs the engine runtime; /health, /health/ready and /metrics (the kit's
route: the process's figures and this runtime's)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from common.errortracking import background_task
from common.resources import infrastructure_checks
from common.web import HealthCheck, add_health_routes, serve
from common.web import create_app as create_base_app
from engine.metrics import Counters, EngineCollector, Gauges, time_full_collections, watch_loop_lag
from engine.runtime import EngineRuntime
from engine.settings import Settings

SERVICE_NAME = "engine"
log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, credentials_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The engine app; the runtime starts with its lifespan (no migrations: `python -m trading.migrate` does)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = EngineRuntime(settings, credentials_transport=credentials_transport)
        app.state.settings = settings
        app.state.runtime = runtime
        app.state.metrics_registry = metrics_registry(runtime)
        app.state.metrics_extra = [app.state.metrics_registry]
        await runtime.start()
        watch = background_task(watch_loop_lag(runtime.metrics.loop_lag), name="engine-loop-lag")
        untime = time_full_collections(runtime.metrics.gc_full_pause)
        try:
            yield
        finally:
            untime()
            watch.cancel()  # not awaited: a shutdown cancelled meanwhile (a second Ctrl-C) must reach stop()
            await runtime.stop()

    app = create_base_app(title="gridbot engine", lifespan=lifespan, max_body_bytes=settings.max_body_bytes)

    def checks() -> Mapping[str, HealthCheck]:
        runtime: EngineRuntime = app.state.runtime

        async def engine() -> bool:
            return runtime.started

        return {**infrastructure_checks(runtime.db, runtime.cache, runtime.bus), "engine": engine}

    add_health_routes(app, checks)
    return app


def metrics_registry(runtime: EngineRuntime) -> CollectorRegistry:
    """A registry of this runtime's own (several runtimes may share a test process): its counters and
    histograms, what it drives now, its queues and its partition changes (the process's CPU and memory are
    in the kit's registry)."""

    def partitions_ready() -> int:
        held = runtime.ownership.held if runtime.ownership is not None else {}
        return sum(1 for h in held.values() if h.ready.is_set())

    gauges: Gauges = {
        "engine_bots_driven": (
            "Bots loaded and driven by this replica",
            lambda: len(runtime.registry.handles),
        ),
        "engine_partitions_held": (
            "Partitions this replica holds (loading or loaded)",
            lambda: len(runtime.ownership.held) if runtime.ownership is not None else 0,
        ),
        "engine_partitions_ready": ("Partitions this replica holds, loaded and driven", partitions_ready),
        "engine_shard_backlog": (
            "Units of work waiting for a batch, over all shards",
            lambda: sum(shard.backlog for shard in runtime.shards),
        ),
        "engine_fills_in_flight": (
            "Fill messages received and not yet committed",
            lambda: runtime.fills.in_flight if runtime.fills is not None else 0,
        ),
    }

    def changes(kind: str) -> float:
        return float(runtime.ownership.changes[kind]) if runtime.ownership is not None else 0.0

    counters: Counters = {
        "engine_partitions_gained": ("Partitions this replica claimed", lambda: changes("gained")),
        "engine_partitions_handed_over": (
            "Partitions this replica gave up to a replica the assignment now names",
            lambda: changes("handed_over"),
        ),
        "engine_partitions_lost": (
            "Partitions another replica claimed from this one (it was taken for dead)",
            lambda: changes("lost"),
        ),
    }
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(runtime.metrics, runtime.settings.engine_id, gauges, counters))
    return registry


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
