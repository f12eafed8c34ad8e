"""GET /api/admin/system: the operators' view, gathered by the gateway (API.md "Roles and administration").

Each service's health is the gateway's readiness report; the engine replicas, the bots each drives and the
queues come from the bots service (asked with the administrator's own token); the exchange calls that failed,
by exchange and kind, are summed from every process's metrics (this process's registry in the embedded mode,
where every service shares it; each process's /metrics otherwise). A part that cannot be had is null, with
the reason in `unavailable`: the view of a failing system must still show what it can.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import httpx
from fastapi import Request
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field
from starlette.responses import Response

from common import metrics
from common.errors import AppError, ErrorCode
from common.openapi import errors
from common.schemas import ResponseModel, Success
from common.security import ADMIN_ROLE, Principal
from common.web import ApiRouter, ok

log = logging.getLogger(__name__)

router = ApiRouter(prefix="/api/admin", tags=["admin"])
SCRAPE_TIMEOUT_SECONDS = 3.0
# Spelt out, not read off the metric: with METRICS_ENABLED=false it is a no-op without a name.
_EXCHANGE_CALLS = f"{metrics.PREFIX}exchange_calls_total"


class SystemData(ResponseModel):
    """`data` of GET /admin/system."""

    services: dict[str, str] = Field(
        description='"ok" or "down" per service and server (the readiness report)'
    )
    engine: dict[str, Any] | None = Field(
        description="replicas (heartbeat, partitions and running bots each drives), unowned partitions"
    )
    queues: dict[str, Any] | None = Field(
        description="per queue: messages waiting and dead-lettered (`{messages, deadLetters}`), null if absent"
    )
    exchange_errors: dict[str, dict[str, int]] | None = Field(
        description="failed exchange calls since each process started, by exchange and kind"
    )
    unavailable: list[str] = Field(description="parts that could not be gathered now")


def _admin(request: Request) -> Principal:
    # The gateway's middleware authenticated the request and refused non-administrators before routing here.
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None or principal.role != ADMIN_ROLE:
        raise AppError(ErrorCode.FORBIDDEN)
    return principal


@router.get(
    "/system",
    response_model=Success[SystemData],
    responses=errors(ErrorCode.FORBIDDEN),
    summary="The system as operators see it (administrators only)",
)
async def system(request: Request) -> Response:
    """Each service's health, the engine replicas and the bots each drives, queue depths and dead letters,
    and failed exchange calls."""
    _admin(request)
    state = request.app.state
    unavailable: list[str] = []
    services, trading, exchange_errors = await asyncio.gather(
        state.readiness.report(),
        _trading(request, unavailable),
        _exchange_errors(request, unavailable),
    )
    data = SystemData(
        services=services,
        engine=trading.get("engine") if trading else None,
        queues=trading.get("queues") if trading else None,
        exchange_errors=exchange_errors,
        unavailable=unavailable,
    )
    response = ok(data.model_dump(by_alias=True))
    response.headers["Cache-Control"] = "no-store"
    return response


async def _trading(request: Request, unavailable: list[str]) -> dict[str, Any] | None:
    upstreams = request.app.state.upstreams
    if "bots" not in upstreams.names:
        unavailable.append("bots: not deployed")
        return None
    upstream = upstreams.get("bots")
    try:
        response = await upstream.client.get(
            upstream.base_url + "/internal/admin/system",
            headers={"authorization": request.headers.get("authorization", "")},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
    except Exception as exc:
        log.warning("admin system view: bots unavailable: %r", exc)
        unavailable.append("bots")
        return None


async def _exchange_errors(request: Request, unavailable: list[str]) -> dict[str, dict[str, int]] | None:
    state = request.app.state
    if getattr(state, "in_process_services", False):
        return failed_calls([generate_latest(metrics.REGISTRY).decode()])
    targets = {u.name: u.base_url for u in state.upstreams}
    targets.update(state.settings.readiness_checks)
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_SECONDS, trust_env=False) as client:
        pages = await asyncio.gather(
            *(client.get(url + "/metrics") for url in targets.values()), return_exceptions=True
        )
    texts: list[str] = []
    for name, page in zip(targets, pages, strict=True):
        if isinstance(page, httpx.Response) and page.status_code == 200:
            texts.append(page.text)
        else:
            unavailable.append(f"metrics of {name}")
    return failed_calls(texts)


def failed_calls(pages: Iterable[str]) -> dict[str, dict[str, int]]:
    """Σ of the failed exchange calls in these metrics pages: {exchange: {kind: count}} (outcome when no kind)."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for page in pages:
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                if sample.name != _EXCHANGE_CALLS or sample.labels.get("outcome") in ("ok", "cancelled"):
                    continue
                exchange = sample.labels.get("exchange", "?")
                kind = sample.labels.get("kind") or sample.labels.get("outcome", "?")
                found[exchange][kind] = found[exchange].get(kind, 0) + int(sample.value)
    return {exchange: dict(kinds) for exchange, kinds in sorted(found.items())}
