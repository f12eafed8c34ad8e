"""What a request may carry into any service: a clean URL, one caller identity, JSON numbers read exactly.

These checks sit in the kit (every service and the gateway run them) so that no parameter of any route can
bring a NUL byte to PostgreSQL, undecodable bytes to a log line, or a binary float to money.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

# Far above any URL of the API (a bot's trades page with both dates is ~150 bytes), at common proxies' limit.
MAX_URL_BYTES = 8192
# A second value of these would let one part of the system read one caller and another part a different one
# (e.g. the gateway counting one user's rate limit while the service serves another). Lists such as
# X-Forwarded-For may repeat: their values join into one list.
SINGLE_VALUED_HEADERS: tuple[bytes, ...] = (
    b"authorization",
    b"proxy-authorization",
    b"cookie",
    b"host",
    b"x-real-ip",
)
# A byte that calls for decoding: an escape, a control byte or a non-ASCII byte.
_SUSPECT = re.compile(rb"[%\x00-\x1f\x7f-\xff]")
PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _clean_text(raw: bytes) -> bool:
    """True when percent-decoded `raw` is UTF-8 without control characters."""
    if _SUSPECT.search(raw) is None:
        return True  # plain printable ASCII, no escapes: nearly every URL, without decoding
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def url_problem(raw_path: bytes, query: bytes) -> dict[str, str] | None:
    """The first bad part of a URL as a `details.fields` entry, or None when the URL is clean."""
    if len(raw_path) > MAX_URL_BYTES:
        return {"field": "path", "reason": "too long"}
    if len(raw_path) + len(query) > MAX_URL_BYTES:
        return {"field": "query", "reason": "too long"}
    if not _clean_text(raw_path):
        return {"field": "path", "reason": "not UTF-8 text without control characters"}
    for pair in query.split(b"&"):
        name, _, value = pair.replace(b"+", b" ").partition(b"=")
        if not _clean_text(name):
            return {"field": "query", "reason": "not UTF-8 text without control characters"}
        if not _clean_text(value):
            return {
                "field": unquote_to_bytes(name).decode("utf-8")[:64],
                "reason": "not UTF-8 text without control characters",
            }
    return None


def duplicated_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The name of a single-valued header the request carries more than once, if any."""
    seen: set[bytes] = set()
    for name, _ in headers:
        if name in SINGLE_VALUED_HEADERS:
            if name in seen:
                return name.decode()
            seen.add(name)
    return None


def _no_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259) and not amounts.
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def loads_exact(body: bytes | str) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal (never a binary float)."""
    return json.loads(body, parse_float=Decimal, parse_constant=_no_constant)


class ExactJsonRequest(Request):
    """A request whose JSON body keeps numbers digit for digit."""

    async def json(self) -> Any:
        """The body parsed by `loads_exact` (once)."""
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJsonRoute(APIRoute):
    """A FastAPI route whose body is parsed with exact decimals (FastAPI reads bodies via request.json())."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, handed an ExactJsonRequest."""
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact


class ApiRouter(APIRouter):
    """The router every service declares its routes on: request bodies are read with exact numbers."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", ExactJsonRoute)
        super().__init__(**kwargs)


def require_exact_routes(router: APIRouter) -> None:
    """TypeError unless every body-reading route of `router` parses JSON numbers exactly."""
    for route in router.routes:
        if isinstance(route, APIRoute) and not isinstance(route, ExactJsonRoute):
            raise TypeError(
                f"route {route.path} reads JSON numbers as floats: declare it on common.web.ApiRouter"
            )


def allowed_methods(routes: Iterable[BaseRoute], path: str, root_path: str = "") -> list[str]:
    """The methods some route really serves at `path` (for a 405's Allow header)."""
    found: list[str] = []
    for method in PROBED_METHODS:
        probe: dict[str, Any] = {
            "type": "http",
            "method": method,
            "path": path,
            "root_path": root_path,
            "headers": [],
            "query_string": b"",
        }
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            found.append(method)
    return found
