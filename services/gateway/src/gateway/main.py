"""The gateway app: edge headers, request context, the /api hot path, live updates, health/docs routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from common import tracing
from common.bus import Bus
from common.cache import Cache, RedisCache
from common.openapi import complete
from common.runtime import acquire_bus, acquire_cache, release_bus, release_cache
from common.security import RevocationList, TokenService, VerifiedTokens
from common.web import JsonResponse, RequestContextMiddleware, install_error_handlers, serve
from gateway.admin import router as admin_router
from gateway.admission import Admission, caps_for
from gateway.checks import RequestChecks
from gateway.clientip import TrustedProxies
from gateway.cors import EdgeMiddleware
from gateway.dispatch import Components, GatewayMiddleware, Runtime
from gateway.health import DOCS_ASSETS_PATH, docs_assets, router
from gateway.live import uvicorn_ws_options
from gateway.live.directory import BotsDirectory
from gateway.live.endpoint import LiveEndpoint
from gateway.live.hub import Caps, LiveHub
from gateway.live.socket import Limits
from gateway.metricsroute import add_gateway_metrics_route, metrics_listener
from gateway.openapi import MergedOpenApi
from gateway.proxy import Forwarder, Upstreams
from gateway.ratelimit import RateLimiter, Rules, create_rate_limiter
from gateway.readiness import Check, Probes, Readiness
from gateway.routing import GATEWAY_SERVICE, PublicPaths, RouteTable
from gateway.settings import Settings

SERVICE_NAME = "gateway"


def create_app(
    settings: Settings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    probe_transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway; `transports` routes services to in-process ASGI apps (httpx.ASGITransport);
    `probe_transports` reach in-process READINESS_CHECKS processes (the embedded engine)."""
    settings = settings or Settings()
    runtime = Runtime()
    proxies = TrustedProxies(settings.trusted_networks())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis_url = settings.redis_url.get_secret_value()
        rabbitmq_url = settings.rabbitmq_url.get_secret_value()
        cache = await _open_cache(settings)
        limiter: RateLimiter | None = None
        upstreams: Upstreams | None = None
        bus: Bus | None = None
        hub: LiveHub | None = None
        probes: Probes | None = None
        readiness: Readiness | None = None
        try:
            redis = cache.client if isinstance(cache, RedisCache) else None
            if settings.rate_limit_enabled:
                limiter = create_rate_limiter(settings, redis)
            upstreams = Upstreams(settings, transports)
            routes = RouteTable(settings.routes, [*upstreams.names, GATEWAY_SERVICE])
            public = PublicPaths(settings.public_paths)
            tokens = VerifiedTokens(TokenService.from_settings(settings))
            checks = RequestChecks(limiter, cache, redis, settings.redis_timeout_seconds)
            rules = Rules(settings)
            bus = await acquire_bus(rabbitmq_url, settings.bus_namespace)
            hub = _live_hub(settings, bus, cache, upstreams)
            await hub.start()
            limits = Limits(
                settings.ws_send_queue_size,
                settings.ws_send_timeout_seconds,
                settings.ws_price_interval_seconds,
            )
            runtime.components = Components(
                routes=routes,
                public=public,
                tokens=tokens,
                checks=checks,
                rules=rules,
                proxies=proxies,
                forwarder=Forwarder(upstreams),
                admission=Admission(
                    caps_for({u.name: len(u.urls) for u in upstreams}, settings.upstream_max_in_flight)
                ),
                live=LiveEndpoint(hub, tokens, checks, rules, limits, settings.frontend_url),
            )
            app.state.live = hub
            app.state.settings = settings
            app.state.upstreams = upstreams
            # Embedded mode: every service in this process, one metrics registry for all of them.
            app.state.in_process_services = bool(transports)
            app.state.openapi = MergedOpenApi(
                upstreams,
                routes,
                public,
                ttl_seconds=settings.openapi_cache_seconds,
                timeout_seconds=settings.health_timeout_seconds,
                local=complete(
                    get_openapi(title="gridbot gateway", version="0.1.0", routes=admin_router.routes)
                ),
            )
            probes = Probes(
                {
                    **{u.name: u.urls for u in upstreams},
                    **{name: [url] for name, url in settings.readiness_checks.items()},
                },
                {**(transports or {}), **(probe_transports or {})},
                settings.health_timeout_seconds,
                settings.upstream_connect_timeout_seconds,
            )
            every: dict[str, Check] = {
                "cache" if redis_url.startswith("memory://") else "redis": cache.ping,
                "bus" if rabbitmq_url.startswith("memory://") else "rabbitmq": bus.ping,
                **probes.checks(),
            }
            readiness = Readiness(
                every,
                settings.health_timeout_seconds,
                settings.health_cache_seconds,
            )
            app.state.readiness = readiness
            async with metrics_listener(app, settings):
                yield
        finally:
            runtime.components = None
            if readiness is not None:
                await readiness.aclose()
            if probes is not None:
                await probes.aclose()
            if hub is not None:
                await hub.close()
            if bus is not None:
                await release_bus(bus)
            if upstreams is not None:
                await upstreams.aclose()
            if limiter is not None:
                await limiter.close()
            await release_cache(cache)

    app = FastAPI(
        title="gridbot gateway",
        lifespan=lifespan,
        default_response_class=JsonResponse,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # Never a 307 to an address of ours: a path is served as written, else the 404 envelope.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(admin_router)
    add_gateway_metrics_route(app, settings)
    app.mount(DOCS_ASSETS_PATH, docs_assets(), name="docs-assets")
    # Added innermost first: Edge(RequestContext(Gateway(FastAPI routes))).
    app.add_middleware(GatewayMiddleware, runtime=runtime)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
        service=SERVICE_NAME,
    )
    app.add_middleware(EdgeMiddleware, frontend_origin=settings.frontend_url, proxies=proxies)
    tracing.instrument_app(app)  # outermost: each request's span is current through the proxy
    return app


async def _open_cache(settings: Settings) -> Cache:
    """The revocation list's cache: shared in-process for memory://, else our own Redis pool."""
    url = settings.redis_url.get_secret_value()
    if url.startswith("memory://"):
        return await acquire_cache(url, settings.cache_namespace)
    # The kit's default pool (50 connections, raising beyond) would turn a burst of more than 50
    # concurrent authenticated requests into 503s, since revocation checks fail closed.
    return RedisCache(
        url,
        settings.cache_namespace,
        max_connections=settings.redis_max_connections,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )


def _live_hub(settings: Settings, bus: Bus, cache: Cache, upstreams: Upstreams) -> LiveHub:
    """The live-update fan-out of this replica (bots looked up through the `bots` upstream, if any)."""
    directory = None
    if "bots" in upstreams.names:
        bots = upstreams.get("bots")
        directory = BotsDirectory(bots.client, bots.base_url)
    return LiveHub(
        bus,
        RevocationList(cache),
        Caps(settings.ws_max_connections, settings.ws_max_connections_per_user),
        directory=directory,
        sweep_seconds=settings.ws_revocation_check_seconds,
        redis_timeout_seconds=settings.redis_timeout_seconds,
    )


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    settings = Settings()
    serve(create_app, settings, SERVICE_NAME, **uvicorn_ws_options(settings))
