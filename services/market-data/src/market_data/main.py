"""The market-data service: exchange streams -> conflated ticks on the bus + Redis cache; REST on top.

One active market-data process per deployment (the streams would otherwise publish every tick twice and
the seq numbers of two publishers would interleave); a second replica must run with STREAMS_ENABLED=false.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.responses import Response

from common.bus import Bus
from common.contracts.market import MARKET_EXCHANGE, PriceTick
from common.errors import ErrorCode
from common.errortracking import background_task
from common.exchanges import ExchangeBudget, MarketCatalog
from common.exchanges.ids import Exchange
from common.runtime import acquire_bus, acquire_cache, release_bus, release_cache
from common.security import AuthState, RevocationList, TokenService
from common.web import create_app as create_base_app
from common.web import error_response, ok, serve
from market_data.backfill import Backfiller
from market_data.candles import CandleService
from market_data.conflate import Conflator, TickerBook
from market_data.consumers import subscribe_lifecycle
from market_data.display import DisplayStream
from market_data.endpoints import router
from market_data.pricecache import PriceStore, PriceWriter
from market_data.service import MarketDataService
from market_data.settings import Settings
from market_data.streams.base import StreamClient, StreamOptions
from market_data.streams.binance import BinanceStream
from market_data.streams.upbit import UpbitStream
from market_data.tickers import TickerRegistry, sync_with_bots

SERVICE_NAME = "market-data"
log = logging.getLogger(__name__)


def _options(settings: Settings, rotate: float | None) -> StreamOptions:
    return StreamOptions(
        silent_seconds=settings.stream_silent_seconds,
        probe_timeout_seconds=settings.stream_probe_timeout_seconds,
        backoff_initial_seconds=settings.stream_backoff_initial_seconds,
        backoff_max_seconds=settings.stream_backoff_max_seconds,
        debounce_seconds=settings.stream_debounce_ms / 1000,
        open_timeout_seconds=max(settings.exchange_timeout_seconds, 5.0),
        rotate_after_seconds=rotate,
    )


class GcWatch:
    """Pauses of Python's cyclic garbage collector (each one stalls the event loop, so every tick)."""

    def __init__(self) -> None:
        self.collections = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks hook."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._started) * 1000
        self.collections += 1
        self.total_ms += pause
        self.max_ms = max(self.max_ms, pause)

    def as_json(self) -> dict[str, float]:
        """Counters for /health/ready."""
        return {
            "collections": self.collections,
            "totalMs": round(self.total_ms, 1),
            "maxMs": round(self.max_ms, 2),
        }


class Runtime:
    """Every long-lived part of a running service, wired together."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        store: PriceStore,
        bots_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.bots_transport = bots_transport
        self.bus = bus
        self.store = store
        self.epoch = uuid.uuid4().hex[:12]
        self.conflator = Conflator(settings.price_tick_ms, self._publish, self.epoch)
        self.display = DisplayStream(settings.display_tick_ms, self._publish_display)
        self.writer = PriceWriter(store, self.conflator, settings.price_tick_ms)
        self.catalog = MarketCatalog(
            settings, settings.markets_ttl_seconds, ExchangeBudget.for_settings(store.cache, settings)
        )
        self.backfiller = Backfiller(
            self.catalog, self.conflator, settings.backfill_max_pages, settings.backfill_max_age_seconds
        )
        self.candles = CandleService(
            store, self.catalog, self.conflator, settings.candle_cache_size, settings.candles_ttl_seconds
        )
        args = (self.conflator, self.backfiller)
        self.streams: dict[Exchange, StreamClient] = {
            Exchange.UPBIT: UpbitStream(
                settings.ws_url(Exchange.UPBIT),
                *args,
                _options(settings, None),
                self._prepare_books,
                format=settings.upbit_ws_format,
            ),
            Exchange.BINANCE: BinanceStream(
                settings.ws_url(Exchange.BINANCE),
                *args,
                _options(settings, settings.binance_rotate_seconds),
                self._prepare_books,
            ),
        }
        self.registry = TickerRegistry(settings.recent_ticker_ttl_seconds, self._on_tickers)
        self.service = MarketDataService(
            self.catalog, store, self.registry, self.candles, self.streams, settings.price_stale_seconds
        )
        self.tasks: list[asyncio.Task[Any]] = []
        self.gc = GcWatch()

    async def _publish(self, tick: PriceTick) -> None:
        await self.bus.publish(MARKET_EXCHANGE, tick.routing_key, tick, persistent=False)
        # Only a tick the broker took: one folded back into the next would otherwise be counted twice.
        self.display.offer(tick)

    async def _publish_display(self, routing_key: str, tick: PriceTick) -> None:
        await self.bus.publish(MARKET_EXCHANGE, routing_key, tick, persistent=False)

    def _on_tickers(self, exchange: Exchange, wanted: frozenset[str], previous: frozenset[str]) -> None:
        for ticker in wanted ^ previous:
            self.candles.mark_gap(exchange, ticker)
        if self.settings.streams_enabled:
            self.streams[exchange].set_tickers(wanted)

    async def _prepare_books(self, exchange: Exchange, books: list[TickerBook]) -> None:
        """First subscription of a ticker in this process: resume from a recent predecessor's last trade."""
        horizon_ms = self.settings.backfill_restart_seconds * 1000
        for book in books:
            if book.restore_checked:
                continue
            book.restore_checked = True
            try:
                last = await self.store.last_seen(exchange, book.ticker)
            except Exception:
                log.warning("price cache unavailable; %s:%s starts without a backfill", exchange, book.ticker)
                continue
            if last is not None and time.time() * 1000 - last[1] <= horizon_ms:
                book.restore_last_seen(*last)

    def start(self) -> None:
        """Start the background tasks."""

        def spawn(name: str, coro: Any) -> None:
            self.tasks.append(background_task(coro, name=name))

        gc.callbacks.append(self.gc)
        spawn("conflator", self.conflator.run())
        spawn("price-writer", self.writer.run())
        spawn("ticker-expiry", self.registry.run_expiry())
        if self.settings.streams_enabled:
            for exchange, stream in self.streams.items():
                spawn(f"stream-{exchange}", stream.run())
        if self.settings.bots_url:
            spawn(
                "bots-sync",
                sync_with_bots(
                    self.registry,
                    self.settings.bots_url,
                    self.settings.internal_tickers_token.get_secret_value(),
                    self.settings.bots_sync_seconds,
                    self.settings.exchange_timeout_seconds,
                    self.bots_transport,
                ),
            )
        else:
            log.info("BOTS_URL not set: running bots' tickers come from the bus only")

    async def stop(self) -> None:
        """Stop the background tasks and write what is still pending to the cache."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.display.close()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self.gc)
        await self.backfiller.close()
        with contextlib.suppress(Exception):
            await self.writer.flush()
        await self.catalog.close()

    def stats(self) -> dict[str, Any]:
        """Counters for /health/ready and the benchmark."""
        return {
            "epoch": self.epoch,
            "trades": self.conflator.trades,
            "duplicates": self.conflator.duplicates,
            "published": self.conflator.published,
            "publishFailures": self.conflator.publish_failures,
            "displayPublished": self.display.published,
            "displayPublishFailures": self.display.publish_failures,
            "gc": self.gc.as_json(),
            "cacheWrites": self.writer.writes,
            "cacheWriteFailures": self.writer.failures,
            "backfills": {
                "completed": self.backfiller.completed,
                "failed": self.backfiller.failed,
                "truncated": self.backfiller.truncated,
                "trades": self.backfiller.folded,
                "running": self.backfiller.running,
            },
        }


def create_app(
    settings: Settings | None = None, *, bots_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The market-data app; its lifespan connects the cache and the bus and starts the streams.

    `bots_transport` replaces the network under the bots-service client (the one-process mode mounts
    the bots app there).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as resources:
            cache = await acquire_cache(settings.redis_url.get_secret_value(), settings.cache_namespace)
            resources.push_async_callback(release_cache, cache)
            bus = await acquire_bus(settings.rabbitmq_url.get_secret_value(), settings.bus_namespace)
            resources.push_async_callback(release_bus, bus)
            runtime = Runtime(settings, bus, PriceStore(cache, settings.candle_cache_size), bots_transport)
            resources.push_async_callback(runtime.stop)
            app.state.settings = settings
            app.state.cache = cache
            app.state.bus = bus
            app.state.auth = AuthState(TokenService.from_settings(settings), RevocationList(cache))
            app.state.runtime = runtime
            app.state.market = runtime.service
            await runtime.catalog.start()
            runtime.start()
            subscription = await subscribe_lifecycle(bus, runtime.registry)
            resources.push_async_callback(subscription.cancel)
            yield

    app = create_base_app(
        title="gridbot market-data", lifespan=lifespan, max_body_bytes=settings.max_body_bytes
    )
    app.include_router(router)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return ok({"status": "ok"})

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> Response:
        runtime: Runtime = app.state.runtime
        checks: dict[str, str] = {}
        for name, probe in (("cache", app.state.cache.ping), ("bus", app.state.bus.ping)):
            try:
                checks[name] = "ok" if await asyncio.wait_for(probe(), 3.0) else "down"
            except Exception:
                checks[name] = "down"
        streams: dict[str, Any] = {}
        for exchange, stream in runtime.streams.items():
            streams[exchange.value] = stream.health()
            healthy = stream.state.healthy or not settings.streams_enabled
            checks[f"stream:{exchange.value}"] = "ok" if healthy else stream.state.status
        down = sorted(name for name, value in checks.items() if value != "ok")
        details = {"checks": checks, "streams": streams, "stats": runtime.stats()}
        if down:
            return error_response(ErrorCode.SERVICE_UNAVAILABLE, {"down": down, **details})
        return ok({"status": "ready", **details})

    return app


def run() -> None:
    """Start the service with uvicorn on settings.host:settings.port."""
    serve(create_app, Settings(), SERVICE_NAME)
