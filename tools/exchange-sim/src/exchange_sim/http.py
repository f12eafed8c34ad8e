"""Small HTTP helpers shared by both venues and the control API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from starlette.responses import Response

from exchange_sim.wire import dumps

KST = timezone(timedelta(hours=9))
JSON_TYPE = "application/json;charset=UTF-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response whose Decimals are written as exact JSON numbers."""
    return Response(dumps(body), status_code=status, headers=headers, media_type=JSON_TYPE)


def utc(ms: int) -> datetime:
    """A UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def kst(ms: int) -> datetime:
    """A Korea Standard Time datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=KST)


def kst_iso(ms: int, micros: bool = False) -> str:
    """Upbit's timestamp text, e.g. "2025-08-09T16:52:49+09:00" (micros: "...49.176073+09:00")."""
    moment = kst(ms)
    return moment.isoformat(timespec="microseconds" if micros else "seconds")


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time; a time without offset is taken as UTC."""
    cleaned = text.strip().replace(" ", "T").replace("Z", "+00:00")
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
