"""The ASGI app: Upbit under /upbit, Binance under /binance, the control API under /_sim."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from exchange_sim import persist
from exchange_sim.binance.rest import binance_routes
from exchange_sim.binance.ws import binance_ws_routes
from exchange_sim.control import control_routes
from exchange_sim.faults import FaultMiddleware
from exchange_sim.settings import SimSettings
from exchange_sim.state import SimState
from exchange_sim.upbit.rest import upbit_routes
from exchange_sim.upbit.ws import upbit_ws_routes

log = logging.getLogger(__name__)


async def _flush_tickers(state: SimState) -> None:
    interval = state.settings.ticker_interval_ms / 1000
    while True:
        await asyncio.sleep(interval)
        for engine in state.engines.values():
            if engine.dirty_tickers:
                engine.flush_tickers()


def build_routes(state: SimState) -> list[BaseRoute]:
    """All routes of a simulator."""
    return [
        Mount("/upbit", routes=[*upbit_routes(state), *upbit_ws_routes(state)]),
        Mount("/binance", routes=[*binance_routes(state), *binance_ws_routes(state)]),
        Mount("/_sim", routes=control_routes(state)),
    ]


def create_app(settings: SimSettings | None = None, state: SimState | None = None) -> Starlette:
    """The simulator as one ASGI app; its replay runs while the app's lifespan is up."""
    sim = state or SimState.build(settings or SimSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        persister = None
        if sim.settings.state_file is not None:
            # Before the replay moves a price or a request is served: the saved state is the starting point.
            persist.load(sim, sim.settings.state_file)
            persister = persist.Persister(sim, sim.settings.state_file)
        tasks = [asyncio.create_task(sim.replayer.run(), name="exchange-sim-replay")]
        if sim.settings.ticker_interval_ms > 0:
            tasks.append(asyncio.create_task(_flush_tickers(sim), name="exchange-sim-tickers"))
        if persister is not None:
            tasks.append(asyncio.create_task(persister.run(), name="exchange-sim-persist"))
        log.info("exchange simulator up (replay %s)", sim.replayer.status())
        try:
            yield
        finally:
            sim.connections.drop_all()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if persister is not None:
                await persister.save(force=True)

    app = Starlette(
        routes=build_routes(sim),
        middleware=[
            Middleware(
                FaultMiddleware,
                injector=sim.faults,
                timeout_seconds=sim.settings.fault_timeout_seconds,
                counter=sim.requests,
            )
        ],
        lifespan=lifespan,
    )
    app.state.sim = sim
    return app
