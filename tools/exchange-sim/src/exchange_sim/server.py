"""Running the simulator: a uvicorn server that can live inside another program's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette

from exchange_sim.app import create_app
from exchange_sim.settings import SimSettings
from exchange_sim.state import SimState


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program it runs in."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Do not touch signal handlers."""
        yield


class SimServer:
    """A started-on-demand simulator server; port 0 picks a free port."""

    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.state = SimState.build(self.settings)
        self.app: Starlette = create_app(self.settings, self.state)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = self.settings.port

    def config(self) -> uvicorn.Config:
        """The uvicorn configuration (server pings as Binance sends them)."""
        return uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level=self.settings.log_level.lower(),
            ws_ping_interval=self.settings.ws_ping_interval,
            ws_ping_timeout=self.settings.ws_ping_timeout,
            lifespan="on",
            access_log=False,
        )

    @property
    def url(self) -> str:
        """Base HTTP URL, e.g. http://127.0.0.1:8900."""
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL, e.g. ws://127.0.0.1:8900."""
        return f"ws://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Start serving in the running event loop; returns once the socket listens."""
        if self._task is not None:
            raise RuntimeError("already started")
        server = _EmbeddedServer(self.config())
        self._server = server
        self._task = asyncio.create_task(server.serve(), name="exchange-sim-server")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("exchange simulator stopped while starting")
            await asyncio.sleep(0.01)
        sockets = [s for srv in getattr(server, "servers", []) for s in srv.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop serving and wait for the server to finish."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server, self._task = None, None

    async def serve_forever(self) -> None:
        """Serve until cancelled (used by `python -m exchange_sim`)."""
        await uvicorn.Server(self.config()).serve()


async def serve_in_background(settings: SimSettings | None = None) -> SimServer:
    """Start a simulator in the running event loop; returns its handle (`await handle.stop()`)."""
    # Building the state parses the candle file and seeds a day of history: keep it off the event loop.
    server = await asyncio.to_thread(SimServer, settings)
    await server.start()
    return server


@contextlib.asynccontextmanager
async def running_sim(settings: SimSettings | None = None) -> AsyncIterator[SimServer]:
    """`async with running_sim(settings) as sim:` for tests and one-process runners."""
    server = await serve_in_background(settings)
    try:
        yield server
    finally:
        await server.stop()
