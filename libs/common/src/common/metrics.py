"""Prometheus metrics: the process's registry, every metric the kit and the services share, and `GET /metrics`.

One registry per process (`REGISTRY`): in the embedded mode every service runs in one process and so shares
it (HTTP figures carry a `service` label). A service with figures of its own kept elsewhere (the engine's
runtime) lists its registries in `app.state.metrics_extra`; `/metrics` renders the kit's and those.

Labels are bounded by construction: service, method, route *template*, status, bus exchange, outbox table,
exchange, ccxt endpoint, outcome. Never a bot id, a user id, a raw path or a ticker. An increment on a hot
path is one `inc()` on a child resolved once (`labels()` is a dict lookup under a lock).

`METRICS_ENABLED=false` turns every metric defined here into a no-op (the overhead measurement's baseline,
docs/observability.md): `/metrics` then serves the process collector and the engine's own figures only.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import Receive, Scope, Send

PREFIX = "gridbot_"

ENABLED = os.environ.get("METRICS_ENABLED", "true").strip().lower() not in {"false", "0", "no", "off"}
"""False when METRICS_ENABLED=false: the kit's metrics below record nothing."""

_M = TypeVar("_M")


class _Noop:
    """A metric (and its every child) that records nothing: METRICS_ENABLED=false."""

    def labels(self, *_: Any, **__: Any) -> _Noop:
        """Itself."""
        return self

    def inc(self, *_: Any) -> None:
        """Nothing."""

    def dec(self, *_: Any) -> None:
        """Nothing."""

    def set(self, *_: Any) -> None:
        """Nothing."""

    def observe(self, *_: Any) -> None:
        """Nothing."""


def _metric(kind: Callable[..., _M], *args: Any, **kwargs: Any) -> _M:
    return kind(*args, **kwargs) if ENABLED else cast(_M, _Noop())


# No `*_created` series (a counter's or histogram's creation time, a separate series in the text format):
# nothing reads them, and they made a third of every scrape's formatting (docs/observability.md "Overhead").
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

# Seconds: 1 ms to 10 s (HTTP handlers, exchange REST calls).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- HTTP (every service's app: common.web.RequestContextMiddleware) -------------------------------------------
HTTP_REQUESTS = _metric(
    Counter,
    f"{PREFIX}http_requests",
    "HTTP requests served, by service, method, route template and status",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = _metric(
    Histogram,
    f"{PREFIX}http_request_duration_seconds",
    "Time to serve an HTTP request, by service, method and route template",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

# --- the bus (common.bus, both adapters); `exchange` is the bus exchange without its namespace -----------------
BUS_PUBLISHED = _metric(
    Counter,
    f"{PREFIX}bus_messages_published",
    "Messages published (confirmed by the broker)",
    ["exchange"],
    registry=REGISTRY,
)
BUS_CONSUMED = _metric(
    Counter,
    f"{PREFIX}bus_messages_consumed",
    "Messages delivered to a consumer of this process",
    ["exchange"],
    registry=REGISTRY,
)
BUS_REDELIVERED = _metric(
    Counter,
    f"{PREFIX}bus_messages_redelivered",
    "Deliveries that repeat an earlier one (a handler failed, or a consumer died before its ack)",
    ["exchange"],
    registry=REGISTRY,
)
BUS_DEAD_LETTERED = _metric(
    Counter,
    f"{PREFIX}bus_messages_dead_lettered",
    "Messages of durable queues sent to their dead-letter queue (retries exhausted, or not an envelope)",
    ["exchange"],
    registry=REGISTRY,
)
BUS_DROPPED = _metric(
    Counter,
    f"{PREFIX}bus_messages_dropped",
    "Messages of transient queues given up after their retries (a newer one supersedes them)",
    ["exchange"],
    registry=REGISTRY,
)


@functools.cache
def bus_published(exchange: str) -> Any:
    """BUS_PUBLISHED's child for `exchange`, resolved once: a publish pays one increment, not a `labels()`."""
    return BUS_PUBLISHED.labels(exchange)


# --- the transactional outbox (common.outbox.OutboxRelay); `table` is the outbox table's name ------------------
OUTBOX_BACKLOG = _metric(
    Gauge,
    f"{PREFIX}outbox_backlog",
    "Outbox rows committed and not yet published (measured by the relay at most once per poll interval)",
    ["table"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = _metric(
    Counter, f"{PREFIX}outbox_published", "Outbox rows published and marked", ["table"], registry=REGISTRY
)
OUTBOX_FAILURES = _metric(
    Counter,
    f"{PREFIX}outbox_publish_failures",
    "Outbox publications that failed (retried later)",
    ["table"],
    registry=REGISTRY,
)

# --- exchange REST calls (common.exchanges: every ccxt client's fetch2) ---------------------------------------
EXCHANGE_CALLS = _metric(
    Counter,
    f"{PREFIX}exchange_calls",
    "Exchange REST calls, by exchange, endpoint (ccxt's path template), outcome (ok, transient, permanent) "
    "and kind (the permanent error's kind, budget_exhausted, network)",
    ["exchange", "endpoint", "outcome", "kind"],
    registry=REGISTRY,
)
EXCHANGE_DURATION = _metric(
    Histogram,
    f"{PREFIX}exchange_call_duration_seconds",
    "Time an exchange REST call took (after the call budget let it go)",
    ["exchange", "endpoint"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

# --- market-data --------------------------------------------------------------------------------------------------
MARKET_MESSAGES = _metric(
    Counter,
    f"{PREFIX}market_data_messages",
    "Messages received from exchange market streams",
    ["exchange"],
    registry=REGISTRY,
)
MARKET_RECONNECTS = _metric(
    Counter,
    f"{PREFIX}market_data_reconnects",
    "Market stream connections lost and opened again",
    ["exchange"],
    registry=REGISTRY,
)
MARKET_BACKFILLS = _metric(
    Counter,
    f"{PREFIX}market_data_gap_backfills",
    "Gaps in a market stream filled from the exchange's REST API",
    ["exchange"],
    registry=REGISTRY,
)

# --- gateway ------------------------------------------------------------------------------------------------------
GATEWAY_WS_CONNECTIONS = _metric(
    Gauge, f"{PREFIX}gateway_ws_connections", "Live-update WebSockets open on this replica", registry=REGISTRY
)
GATEWAY_SHED = _metric(
    Counter,
    f"{PREFIX}gateway_shed",
    "Requests the gateway answered 503 because the service already had its cap of requests in flight",
    ["service"],
    registry=REGISTRY,
)
GATEWAY_WS_SLOW_DROPPED = _metric(
    Counter,
    f"{PREFIX}gateway_ws_slow_dropped",
    "Live-update WebSockets disconnected because the client did not keep up",
    registry=REGISTRY,
)

# --- credentials --------------------------------------------------------------------------------------------------
CREDENTIALS_VALIDATIONS = _metric(
    Counter,
    f"{PREFIX}credentials_validations",
    "API-key validations against an exchange, by exchange and outcome (valid, or the error code)",
    ["exchange", "outcome"],
    registry=REGISTRY,
)


def family_names(collectors: Iterable[Collector | CollectorRegistry] = (REGISTRY,)) -> set[str]:
    """Every sample name the collectors export (counters with `_total`, histograms with `_bucket`, ...)."""
    names: set[str] = set()
    for collector in collectors:
        for family in collector.collect():
            names.update(sample.name for sample in family.samples)
            names.update(_sample_names(family))
    return names


def _sample_names(family: Metric) -> Iterator[str]:
    # A labelled metric with no child yet has no sample: name what it will export.
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
        "summary": ("_count", "_sum"),
    }.get(family.type, ("",))
    for suffix in suffixes:
        yield family.name + suffix


def exposition(extra: Iterable[CollectorRegistry] = ()) -> bytes:
    """The process's registry and `extra` in the Prometheus text format."""
    return b"".join(generate_latest(registry) for registry in (REGISTRY, *extra))


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True when `Authorization: Bearer <token>` names `token` (compared in constant time)."""
    if not authorization or not token:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class MetricsApp:
    """A bare ASGI app answering `GET /metrics` (and 404 otherwise): the gateway's METRICS_PORT listener."""

    def __init__(self, extra: Callable[[], Iterable[CollectorRegistry]] = tuple) -> None:
        self.extra = extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            return
        found = scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD")
        body = exposition(self.extra()) if found else b"not found\n"
        content_type = CONTENT_TYPE_LATEST if found else "text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 200 if found else 404,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
