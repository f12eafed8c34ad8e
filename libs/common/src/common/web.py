"""The HTTP kit every service app is built with: envelope, error handlers, request context, body limit."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import errortracking, tracing
from common.bus import BusError
from common.cache import CacheError
from common.collector import FreezeAfterStartup
from common.context import language_var, request_id_var, sanitize_request_id
from common.errors import AppError, ErrorCode, error_body, pick_language
from common.logging import configure_logging
from common.metrics import HTTP_DURATION, HTTP_REQUESTS, exposition
from common.openapi import install_openapi
from common.settings import ServiceSettings
from common.webinput import ApiRouter as ApiRouter
from common.webinput import (
    ExactJsonRoute,
    allowed_methods,
    duplicated_header,
    require_exact_routes,
    url_problem,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("gridbot.access")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # The wire carries JSON numbers (API.md), written digit for digit: a float would round money.
        if value.is_finite():
            exact = value.to_integral_value() if value == value.to_integral_value() else value.normalize()
            return orjson.Fragment(format(exact, "f").encode())
        raise TypeError(f"not a JSON number: {value}")
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iso_utc(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as API.md prescribes."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def dumps(content: Any) -> bytes:
    """Serialise to JSON bytes (orjson; Decimal as number, datetime as ISO UTC)."""
    return orjson.dumps(content, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class JsonResponse(JSONResponse):
    """A JSON response rendered with orjson (a JSONResponse, so OpenAPI documents bodies as JSON)."""

    def render(self, content: Any) -> bytes:
        """Serialise the content."""
        return dumps(content)


def ok(data: Any = None, message: str | None = None, status_code: int = 200) -> JsonResponse:
    """The success envelope: {"success": true, "data": ..., "message": ...}."""
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    if data is not None:
        body["data"] = data
    return JsonResponse(body, status_code=status_code)


def error_response(
    code: ErrorCode,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    lang: str | None = None,
) -> JsonResponse:
    """The error envelope of API.md with the code's HTTP status."""
    from common.errors import ERRORS

    return JsonResponse(
        error_body(code, lang or language_var.get(), details),
        status_code=ERRORS[code].status,
        headers=dict(headers or {}),
    )


class BodyTooLarge(StarletteHTTPException):
    """Raised from inside receive() when a body exceeds the limit (an HTTPException so FastAPI re-raises it)."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class RequestContextMiddleware:
    """Request id and language into context vars, X-Request-ID out, URL and caller headers checked, body size
    capped, one access line, and the request counted in the HTTP metrics (by route template)."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int = 64 * 1024, access_log: bool = True, service: str = ""
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.service = service
        # The metric children of each (method, route, status), resolved once: `labels()` builds a key and
        # takes a lock on every call. Bounded, as the labels are (methods, route templates, statuses).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = sanitize_request_id(_header(headers, b"x-request-id"))
        lang = pick_language(_header(headers, b"accept-language"))
        rid_token, lang_token = request_id_var.set(rid), language_var.set(lang)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status_holder = [0]
        response_started = [False]
        rid_bytes = rid.encode()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
                status_holder[0] = message["status"]
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                raw.append((b"x-request-id", rid_bytes))
                message = {**message, "headers": raw}
            await send(message)

        try:
            if scope["type"] == "http":
                problem = _input_problem(scope)
                if problem is not None:
                    await _send_error(send_wrapper, ErrorCode.VALIDATION_ERROR, lang, {"fields": [problem]})
                    return
                declared = _header(headers, b"content-length")
                if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
                    await _send_error(send_wrapper, ErrorCode.PAYLOAD_TOO_LARGE, lang)
                    return
                await self.app(scope, self._limited(receive), send_wrapper)
            else:
                await self.app(scope, receive, send)
        except BodyTooLarge:
            if not response_started[0]:
                await _send_error(send_wrapper, ErrorCode.PAYLOAD_TOO_LARGE, lang)
        except Exception as exc:
            # What no handler of the app took (it ends as the 500 envelope): reported here, where the request
            # id and the request's span are still current.
            errortracking.report(exc, route=route_template(scope))
            raise
        finally:
            if scope["type"] == "http":
                elapsed = time.perf_counter() - started
                method, route = _method_label(scope["method"]), route_template(scope)
                key = (method, route, status_holder[0])
                children = self._children.get(key)
                if children is None:
                    children = self._children[key] = (
                        HTTP_REQUESTS.labels(self.service, method, route, str(key[2])),
                        HTTP_DURATION.labels(self.service, method, route),
                    )
                children[0].inc()
                children[1].observe(elapsed)
                if self.access_log:
                    access_log.info(
                        "%s %s %s",
                        scope["method"],
                        scope["path"],
                        status_holder[0],
                        extra={"duration_ms": round(elapsed * 1000, 2)},
                    )
            request_id_var.reset(rid_token)
            language_var.reset(lang_token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return wrapped


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str) -> str:
    # A client may send any token as a method: bounded to the ones HTTP defines for us.
    return method if method in _METHODS else "other"


def route_template(scope: Scope) -> str:
    """The metrics label of a request's route: the matched template (`/api/bots/{bot_id}`), a label the app
    put in `state["metrics_route"]` (the gateway's proxied routes), else `unmatched` (never the raw path)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str):
        return template
    label = (scope.get("state") or {}).get("metrics_route")
    return label if isinstance(label, str) else "unmatched"


def _input_problem(scope: Scope) -> dict[str, str] | None:
    """A duplicated caller header or a bad URL, as a `details.fields` entry."""
    duplicated = duplicated_header(scope.get("headers") or [])
    if duplicated is not None:
        return {"field": duplicated, "reason": "duplicated header"}
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return url_problem(raw_path, scope.get("query_string") or b"")


def _header(headers: Mapping[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def _send_error(send: Send, code: ErrorCode, lang: str, details: dict[str, Any] | None = None) -> None:
    response = error_response(code, details, lang=lang)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def validation_details(exc: RequestValidationError) -> dict[str, Any]:
    """`details.fields`: one entry per bad field with a readable reason."""
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        kind = err.get("type", "")
        if kind == "json_invalid":
            fields.append({"field": "body", "reason": "malformed JSON"})
            continue
        reason = "unknown field" if kind == "extra_forbidden" else str(err.get("msg", "invalid"))
        fields.append({"field": ".".join(loc) or "body", "reason": reason})
    return {"fields": fields}


# A database, cache or broker that cannot be reached is an outage (503), not a bug (500). Requests fail
# closed: e.g. no token is accepted when its revocation cannot be checked.
OUTAGES: tuple[type[Exception], ...] = (
    CacheError,
    BusError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Every error of every route leaves as the contract's envelope; never a bare 500."""

    async def on_app_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return error_response(exc.code, exc.details, exc.headers)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(ErrorCode.VALIDATION_ERROR, validation_details(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            404: ErrorCode.NOT_FOUND,
            405: ErrorCode.METHOD_NOT_ALLOWED,
            413: ErrorCode.PAYLOAD_TOO_LARGE,
            401: ErrorCode.UNAUTHORIZED,
            403: ErrorCode.FORBIDDEN,
            429: ErrorCode.RATE_LIMIT_EXCEEDED,
            503: ErrorCode.SERVICE_UNAVAILABLE,
        }.get(exc.status_code)
        details = None
        if code is None:
            code = ErrorCode.VALIDATION_ERROR if exc.status_code < 500 else ErrorCode.INTERNAL_SERVER_ERROR
            if exc.status_code == 400:
                # FastAPI's answer to a body it could not even decode (e.g. not UTF-8).
                details = {"fields": [{"field": "body", "reason": "malformed JSON"}]}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route of the path; a client needs every method it has.
            methods = allowed_methods(
                app.router.routes, request.scope["path"], request.scope.get("root_path", "")
            )
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = ", ".join(methods)
        return error_response(code, details, headers=headers)

    async def on_body_too_large(_: Request, exc: Exception) -> Response:
        return error_response(ErrorCode.PAYLOAD_TOO_LARGE)

    async def on_outage(_: Request, exc: Exception) -> Response:
        # The class name only: driver messages can quote SQL parameters.
        log.error("backing service unavailable: %s", type(exc).__name__)
        return error_response(ErrorCode.SERVICE_UNAVAILABLE)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(ErrorCode.INTERNAL_SERVER_ERROR)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(BodyTooLarge, on_body_too_large)
    for outage in OUTAGES:
        app.add_exception_handler(outage, on_outage)
    app.add_exception_handler(Exception, on_unexpected)


HealthCheck = Callable[[], Awaitable[bool]]


def add_metrics_route(app: FastAPI) -> None:
    """GET /metrics: the process's metrics and the registries in `app.state.metrics_extra`, Prometheus text.

    On the service's own port only: the gateway never routes it (it serves /api/... alone) and guards its own.
    """

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(exposition(metrics_extra(app)), media_type=CONTENT_TYPE_LATEST)


def metrics_extra(app: FastAPI) -> list[Any]:
    """The registries an app adds to the process's metrics (its `state.metrics_extra`, empty by default)."""
    return list(getattr(app.state, "metrics_extra", ()))


def add_health_routes(
    app: FastAPI, checks: Callable[[], Mapping[str, HealthCheck]], timeout: float = 2.0
) -> None:
    """GET /health (alive) and GET /health/ready (every dependency answers; 503 naming the ones that do not)."""

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return ok({"status": "ok"})

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> Response:
        named = dict(checks())
        outcomes = await asyncio.gather(*(_bounded(check, timeout) for check in named.values()))
        results = dict(zip(named, outcomes, strict=True))
        down = sorted(n for n, v in results.items() if v != "ok")
        if down:
            return error_response(ErrorCode.SERVICE_UNAVAILABLE, {"down": down, "checks": results})
        return ok({"status": "ready", "checks": results})


async def _bounded(check: HealthCheck, seconds: float) -> str:
    try:
        return "ok" if await asyncio.wait_for(check(), seconds) else "down"
    except Exception:  # a failing or slow check is an answer, not a crash
        return "down"


class KitApp(FastAPI):
    """A FastAPI app that only takes routers whose bodies are read with exact numbers."""

    def include_router(self, router: APIRouter, *args: Any, **kwargs: Any) -> None:
        """Include `router` (TypeError when one of its routes would parse JSON numbers as floats)."""
        require_exact_routes(router)
        super().include_router(router, *args, **kwargs)


def create_app(
    *,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    max_body_bytes: int = 64 * 1024,
    access_log: bool = True,
    openapi_url: str | None = "/openapi.json",
    version: str = "0.1.0",
    service: str | None = None,
) -> FastAPI:
    """A FastAPI app with the kit's middleware, error handlers and `GET /metrics` installed.

    `service` labels its HTTP metrics (default: the title without "gridbot ").

    No slash redirects: Starlette would answer `POST /api/bots/` with a 307 to the service's own (internal)
    address; a path is served exactly as written, else the 404 envelope.
    """
    app = KitApp(
        title=title,
        version=version,
        lifespan=lifespan,
        default_response_class=JsonResponse,
        openapi_url=openapi_url,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.router.route_class = ExactJsonRoute
    install_error_handlers(app)
    install_openapi(app)
    add_metrics_route(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=max_body_bytes,
        access_log=access_log,
        service=service or title.removeprefix("gridbot ").replace(" ", "-"),
    )
    tracing.instrument_app(app)  # outermost: the request's span is current in every middleware and handler
    return app


def configure_observability(service: str, settings: ServiceSettings | None = None) -> None:
    """Tracing (OTEL_TRACES_EXPORTER) and error tracking (SENTRY_DSN) for this process, before its apps are
    built; both stay off when their variables are unset. `settings`' values (the environment's, or the .env
    file's) become the process environment's, which the OpenTelemetry SDK reads; empty ones are removed."""
    if settings is not None:
        for name, value in settings.observability_env().items():
            if value is None:
                os.environ.pop(name, None)  # the SDK would take an empty endpoint or sampler as given
            else:
                os.environ[name] = value
    tracing.configure_tracing(service)
    errortracking.configure_error_tracking(service)


def serve(factory: Callable[[Any], FastAPI], settings: ServiceSettings, service: str, **options: Any) -> None:
    """Run one service in the foreground: JSON logs, uvicorn on uvloop/httptools at settings.host:port, the
    objects its start-up built frozen out of the collector's full passes (common.collector).

    `options` go to uvicorn as they are (the gateway's WebSocket settings).
    """
    import uvicorn

    configure_logging(service, settings.log_level, settings.log_json)
    configure_observability(service, settings)
    uvicorn.run(
        FreezeAfterStartup(factory(settings)),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,  # our middleware writes one access line per request, with the request id
        # Services never trust X-Forwarded-* blindly; the gateway applies TRUSTED_PROXIES itself.
        proxy_headers=False,
        server_header=False,
        **options,
    )
