"""Gateway settings: routing table, upstream URLs, rate limits, trusted proxies, CORS origin, live updates."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import BusSettings, CacheSettings, JwtSettings, split_list

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ROUTES: dict[str, str] = {
    "/api/auth": "auth",
    "/api/credentials": "credentials",
    "/api/exchange/validate-credentials": "credentials",
    "/api/exchange": "market-data",
    "/api/bots": "bots",
    "/api/backtests": "backtest",
    "/api/admin": "auth",
    # Served by the gateway itself (gateway.admin): it gathers every service's part.
    "/api/admin/system": "gateway",
    "/api/notifications": "notifier",
    # TradingView signals (the bots service): POST /api/signals/tradingview/<token>.
    "/api/signals": "bots",
}
DEFAULT_PUBLIC_PATHS: list[str] = [
    "POST /api/auth/register",
    "POST /api/auth/login",
    "POST /api/auth/refresh",
    # The token in the URL is the credential (TradingView sends no header); `*` is one path segment.
    "POST /api/signals/tradingview/*",
]
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _clean_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"a path must start with '/': {path!r}")
    return path.rstrip("/") or "/"


def _base_url(name: str, url: str) -> str:
    parts = urlsplit(url.strip())
    if not name.strip() or parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"service {name!r}: base URL must be http(s)://host[:port][/path]")
    return url.strip().rstrip("/")


class Settings(CacheSettings, BusSettings, JwtSettings):
    """Everything the gateway reads from the environment (env names: field names upper-cased)."""

    port: int = Field(default=3000, ge=0, le=65535)

    # Path prefix -> service name; longest prefix wins, matched on path-segment boundaries.
    routes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTES))
    # Service name -> base URL, or a list of its replicas' base URLs (each request goes to the one with the
    # fewest awaiting an answer); a route whose service has no URL answers 404 (not deployed).
    services: dict[str, list[str]] = Field(default_factory=lambda: {"auth": ["http://127.0.0.1:3001"]})
    # "METHOD /path" (or "/path" for any method): reachable without a token. A last segment `*` stands for
    # exactly one non-empty segment (a secret in the URL), never for more.
    public_paths: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_PUBLIC_PATHS))

    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Services whose answers may take longer (JSON: {"backtest": 120}): a recommendation over 90 days of
    # candles the backtest service has not stored yet pages through the exchange first.
    upstream_service_timeouts: dict[str, float] = Field(default_factory=lambda: {"backtest": 120.0})
    upstream_connect_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    upstream_max_connections: int = Field(default=100, ge=1, le=10_000)
    upstream_max_keepalive: int = Field(default=50, ge=0, le=10_000)
    # Requests in flight to one replica of a service (the cap is this times its replicas); beyond it the
    # gateway answers 503 with Retry-After at once instead of queueing (gateway/admission.py).
    upstream_max_in_flight: int = Field(default=32, ge=1, le=100_000)
    # Below the services' keep-alive timeout (uvicorn: 5 s): never reuse a socket they closed.
    upstream_keepalive_seconds: float = Field(default=4.0, ge=0)

    rate_limit_enabled: bool = True
    rate_limit_auth: str = "5/minute"
    rate_limit_bot_create: str = "10/hour"
    rate_limit_default: str = "100/minute"
    # Routes that make the server call an exchange with keys the user sends (validate, store, replace).
    rate_limit_exchange_keys: str = "5/minute"
    # TradingView signals, per client IP: TradingView posts every user's alerts from the same few addresses,
    # so the per-IP default would make all users share 100 a minute. Each token's own limit (10/min) is the
    # bots service's (SIGNAL_RATE_LIMIT_PER_MINUTE); this one only bounds guessing from one address.
    rate_limit_signals: str = "600/minute"
    # Bound on one Redis round trip of the request path (rate limit + revocation check).
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    # Per pool (rate limits, revocations): every in-flight request holds a connection of each.
    redis_max_connections: int = Field(default=1000, ge=1, le=100_000)

    # IPs/CIDRs of proxies in front of the gateway whose X-Forwarded-* headers are believed.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    frontend_url: str = "http://localhost:3009"

    health_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # GET /health/ready probes at most once per this many seconds; concurrent callers share one probe.
    health_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # Processes the gateway does not route to whose readiness is still the system's (the engine, one entry
    # per replica): name -> base URL; each must answer 200 on <url>/health/ready.
    readiness_checks: dict[str, str] = Field(default_factory=dict)
    openapi_cache_seconds: float = Field(default=10.0, ge=0)
    access_log: bool = True

    # GET /metrics (API.md "Operations"): never public. With METRICS_PORT the metrics are served on that port
    # alone (same HOST; not published); else on the main port to `Authorization: Bearer <METRICS_TOKEN>`
    # only; with neither, the gateway serves no metrics at all.
    metrics_token: SecretStr | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Live updates (GET /api/ws), per gateway replica.
    ws_max_connections: int = Field(default=10_000, ge=1, le=1_000_000)
    ws_max_connections_per_user: int = Field(default=5, ge=1, le=1000)
    # Events waiting for one socket; a client that lets more pile up is disconnected (1013).
    ws_send_queue_size: int = Field(default=256, ge=1, le=100_000)
    ws_send_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # At most one price event per ticker per interval per socket (the latest price wins).
    ws_price_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    # How often open sockets' tokens are checked against the revocation list and their expiry.
    ws_revocation_check_seconds: float = Field(default=5.0, gt=0, le=300)
    # Protocol-level ping/pong (uvicorn): a client silent for interval + timeout is dropped.
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0, le=600)
    ws_ping_timeout_seconds: float = Field(default=20.0, gt=0, le=600)

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned: dict[str, str] = {}
        for prefix, service in value.items():
            if not service.strip():
                raise ValueError(f"route {prefix!r} names no service")
            cleaned[_clean_path(prefix.strip())] = service.strip()
        return cleaned

    @field_validator("services", mode="before")
    @classmethod
    def _replica_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: [urls] if isinstance(urls, str) else urls for name, urls in value.items()}
        return value

    @field_validator("services")
    @classmethod
    def _check_services(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        cleaned: dict[str, list[str]] = {}
        for name, urls in value.items():
            if not urls:
                raise ValueError(f"service {name!r}: no base URL")
            cleaned[name.strip()] = [_base_url(name, url) for url in urls]
        return cleaned

    @field_validator("readiness_checks")
    @classmethod
    def _check_readiness(cls, value: dict[str, str]) -> dict[str, str]:
        return {name.strip(): _base_url(name, url) for name, url in value.items()}

    @model_validator(mode="after")
    def _distinct_readiness_names(self) -> Self:
        clash = sorted(set(self.readiness_checks) & set(self.services))
        if clash:
            raise ValueError(f"READINESS_CHECKS names routed services (already checked): {clash}")
        return self

    @field_validator("public_paths", mode="before")
    @classmethod
    def _split_public(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("public_paths")
    @classmethod
    def _check_public(cls, value: list[str]) -> list[str]:
        cleaned = []
        for entry in value:
            method, _, path = entry.strip().rpartition(" ")
            method = method.strip().upper()
            if method and method not in _METHODS:
                raise ValueError(f"public path {entry!r}: unknown method")
            path = _clean_path(path)
            if "*" in path and not (path.endswith("/*") and path.count("*") == 1 and len(path) > 2):
                raise ValueError(f"public path {entry!r}: '*' only as the whole last segment")
            cleaned.append(f"{method} {path}".strip())
        return cleaned

    @field_validator(
        "rate_limit_auth",
        "rate_limit_bot_create",
        "rate_limit_default",
        "rate_limit_exchange_keys",
        "rate_limit_signals",
    )
    @classmethod
    def _check_limit(cls, value: str) -> str:
        parse(value)  # raises ValueError on "5 per fortnight"
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("frontend_url")
    @classmethod
    def _check_origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("FRONTEND_URL must be an origin such as http://localhost:3009")
        # Browsers send the bare origin (scheme://host[:port]), never a path or a trailing slash.
        return f"{parts.scheme}://{parts.netloc}".lower()

    def trusted_networks(self) -> list[IPNetwork]:
        """TRUSTED_PROXIES as parsed networks."""
        return [ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies]
