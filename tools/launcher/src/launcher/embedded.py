"""`make run`: the whole system in one process — SQLite, in-process bus and cache, gateway on :3000.

Every service app is mounted in-process behind the gateway through httpx's ASGI transport: the same HTTP
semantics as the real topology, with no network hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from common.exchanges.settings import sim_exchange_env
from common.logging import configure_logging
from common.settings import ServiceSettings
from common.web import configure_observability, metrics_extra
from exchange_sim.settings import SimSettings
from launcher.migrate import migrate_all
from launcher.topology import fresh_tokens

log = logging.getLogger("gridbot.embedded")

EMBEDDED_DEFAULTS = {
    "ENVIRONMENT": "development",
    "REDIS_URL": "memory://",
    "RABBITMQ_URL": "memory://",
    "LOG_JSON": "false",
}


def apply_defaults(db_path: Path, sim_url: str) -> None:
    """Fill the embedded defaults into the environment without overriding what the user set."""
    # The internal routes are called in-process here, yet still each with its own token: fresh random ones,
    # so no repository placeholder is ever in play (HOST=0.0.0.0 make run refuses those).
    for key, value in {**EMBEDDED_DEFAULTS, **sim_exchange_env(sim_url), **fresh_tokens()}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{db_path}")
    # Services reach each other by name; in-process ASGI transports stand in for these URLs.
    os.environ.setdefault("SERVICES", json.dumps({name: internal_url(name) for name in UPSTREAMS}))
    # Not routed, but the gateway's readiness covers it (reached through its in-process transport).
    os.environ.setdefault(
        "READINESS_CHECKS",
        json.dumps({name: internal_url(name) for name in ("engine", "backtest-worker")}),
    )
    os.environ.setdefault("CREDENTIALS_URL", internal_url("credentials"))
    os.environ.setdefault("BOTS_URL", internal_url("bots"))


def internal_url(name: str) -> str:
    """The base URL a service has inside the one process (never resolved: a transport answers it)."""
    return f"http://{name}.internal"


UPSTREAMS = ("auth", "credentials", "bots", "market-data", "backtest", "notifier")
SIM_STATE_FILE = "exchange-sim.json"


def embedded_sim_settings(db_path: Path) -> SimSettings:
    """The simulator's settings in this mode: every SIM_* variable of the environment (history, candle file,
    replay speed, ...), and its state file beside the database unless SIM_STATE_FILE says otherwise."""
    settings = SimSettings()
    if settings.state_file is None:
        # The simulator's accounts and orders live beside the database: a restart resumes both together.
        settings = settings.model_copy(update={"state_file": db_path.parent / SIM_STATE_FILE})
    return settings


async def serve(host: str, port: int, db_path: Path) -> None:
    """Migrate, start every service in-process, and serve the gateway until stopped."""
    from auth.main import create_app as create_auth
    from auth.settings import Settings as AuthSettings
    from backtest.main import create_app as create_backtest
    from backtest.main import create_worker_app as create_backtest_worker
    from backtest.settings import Settings as BacktestSettings
    from bots.main import create_app as create_bots
    from bots.settings import Settings as BotsSettings
    from credentials.main import create_app as create_credentials
    from credentials.settings import Settings as CredentialsSettings
    from engine.main import create_app as create_engine
    from engine.settings import Settings as EngineSettings
    from exchange_sim.server import serve_in_background
    from gateway.live import uvicorn_ws_options
    from gateway.main import create_app as create_gateway
    from gateway.settings import Settings as GatewaySettings
    from market_data.main import create_app as create_market_data
    from market_data.settings import Settings as MarketDataSettings
    from notifier.main import create_app as create_notifier
    from notifier.settings import Settings as NotifierSettings

    db_path.parent.mkdir(parents=True, exist_ok=True)
    sim_settings = embedded_sim_settings(db_path)
    apply_defaults(db_path, f"http://127.0.0.1:{sim_settings.port}")
    # The signal URLs the bots service hands out name this gateway (the default says :3000).
    os.environ.setdefault("PUBLIC_API_URL", f"http://localhost:{port}")
    await asyncio.to_thread(migrate_all, os.environ["DATABASE_URL"])

    credentials_app = create_credentials(CredentialsSettings())
    bots_app = create_bots(BotsSettings(), credentials_transport=_transport(credentials_app))
    apps: dict[str, FastAPI] = {
        "auth": create_auth(AuthSettings(), bots_transport=_transport(bots_app)),
        "credentials": credentials_app,
        "bots": bots_app,
        "market-data": create_market_data(MarketDataSettings(), bots_transport=_transport(bots_app)),
        "backtest": create_backtest(BacktestSettings()),
        # Consumes the user events of the in-process bus, as its own process would from RabbitMQ.
        "notifier": create_notifier(NotifierSettings()),
    }
    # Not behind the gateway: the engine has no public routes, only its health (in the gateway's readiness).
    engine_app = create_engine(EngineSettings(), credentials_transport=_transport(credentials_app))
    # The backtest worker consumes its jobs from the in-process bus, as its own process would from RabbitMQ.
    worker_app = create_backtest_worker(BacktestSettings())
    gateway_settings = GatewaySettings(port=port, host=host)
    gateway_app = create_gateway(
        gateway_settings,
        transports={name: _transport(app) for name, app in apps.items()},
        probe_transports={"engine": _transport(engine_app), "backtest-worker": _transport(worker_app)},
    )
    apps["engine"] = engine_app
    apps["backtest-worker"] = worker_app
    async with AsyncExitStack() as stack:
        # The exchanges of this mode: the simulator, a server inside this process on SIM_PORT (8900).
        sim = await serve_in_background(sim_settings)
        stack.push_async_callback(sim.stop)
        # ASGITransport does not run lifespans: the composition root runs each service's, in order.
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        # One process, one registry: the gateway's /metrics (METRICS_TOKEN or METRICS_PORT) is the whole
        # system's, the engine runtime's figures included (docs/observability.md).
        gateway_app.state.metrics_extra = metrics_extra(engine_app)
        config = uvicorn.Config(
            gateway_app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            **uvicorn_ws_options(gateway_settings),  # live updates (GET /api/ws) need a WebSocket server
        )
        server = _Server(config)
        log.info(
            "gridbot (embedded) on http://localhost:%s/api — database %s, exchange simulator %s (state %s)",
            port,
            db_path,
            sim.url,
            sim_settings.state_file,
        )
        await server.serve()


class _Server(uvicorn.Server):
    """The gateway's server, whose Ctrl-C (or SIGTERM) ends `serve()` and nothing else.

    uvicorn re-raises a captured signal once it has stopped; here that would reach asyncio.run, which cancels
    the whole process's task while every service's lifespan is still closing (a job in flight, a relay
    draining). Instead the first signal stops the server, the lifespans close in order, and the process exits
    0; a second one forces the server out.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Our own handlers on the running loop, instead of uvicorn's."""
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

        # Left installed when the server is done: a Ctrl-C while the lifespans close changes nothing.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        yield


def _transport(app: FastAPI) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=app)


def main() -> None:
    """Entry point of `make run`."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "3000"))
    db_path = Path(os.environ.get("GRIDBOT_DB_PATH", "var/gridbot.db")).resolve()
    configure_logging("embedded", os.environ.get("LOG_LEVEL", "INFO"), json_lines=False)
    configure_observability("embedded", ServiceSettings())  # OTEL_*, SENTRY_*: environment or .env
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asyncio.run(serve(host, port, db_path))


if __name__ == "__main__":
    main()
