"""The gateway's own metrics (API.md "Operations"): never public.

The gateway's port is the public one, so `GET /metrics` there answers only a caller bearing METRICS_TOKEN;
with METRICS_PORT the metrics live on that port alone (a listener of their own, not published) and the main
port has none; with neither, no metrics are served. `/api/metrics` is never a metrics route (the /api space
is the routed services', and none of them has it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from common.errors import ErrorCode
from common.errortracking import background_task
from common.metrics import MetricsApp, bearer_matches, exposition
from common.web import error_response, metrics_extra
from gateway.settings import Settings

log = logging.getLogger(__name__)


def add_gateway_metrics_route(app: FastAPI, settings: Settings) -> None:
    """GET /metrics on the main port: only with METRICS_TOKEN (and no METRICS_PORT), only to its bearer."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    if token is None or settings.metrics_port is not None:
        return  # no route: the 404 envelope, as for any unknown path

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not bearer_matches(request.headers.get("authorization"), token):
            return error_response(ErrorCode.UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        return Response(exposition(metrics_extra(app)), media_type=CONTENT_TYPE_LATEST)


class _Listener(uvicorn.Server):
    """A server inside the gateway's event loop whose signals stay the main server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """None of its own: Ctrl-C stops the gateway, whose lifespan stops this listener."""
        yield


@contextlib.asynccontextmanager
async def metrics_listener(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Serve `GET /metrics` on METRICS_PORT (same HOST) while the gateway runs; nothing without it."""
    if settings.metrics_port is None:
        yield
        return
    config = uvicorn.Config(
        MetricsApp(lambda: metrics_extra(app)),
        host=settings.host,
        port=settings.metrics_port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    server = _Listener(config)
    # Bound and listening before the gateway says it is up: a port in use fails its start (OSError), and a
    # scrape right after waits in the backlog instead of being refused.
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((settings.host, settings.metrics_port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    task = background_task(server.serve(sockets=[listener]), name="gateway-metrics-listener")
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()
