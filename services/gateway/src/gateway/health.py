"""The gateway's own routes: liveness, readiness of Redis and every upstream, and the API docs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from common.errors import ErrorCode
from common.web import ApiRouter, error_response, ok
from gateway.openapi import MergedOpenApi
from gateway.proxy import Upstream
from gateway.security_headers import DOCS_CSP

Check = Callable[[], Awaitable[bool]]

router = ApiRouter(include_in_schema=False)

DOCS_ASSETS_PATH = "/api-docs/assets"


def docs_assets() -> StaticFiles:
    """Swagger UI's scripts, styles and icon, served from the fastapi-offline package (never a CDN)."""
    return StaticFiles(packages=[("fastapi_offline", "static")])


async def run_checks(checks: dict[str, Check], limit_seconds: float) -> dict[str, str]:
    """Every check concurrently, each bounded by `limit_seconds`: "ok" or "down" per name."""

    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(limit_seconds):
                return "ok" if await check() else "down"
        except Exception:  # a failing check is an answer, not a crash
            return "down"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


def upstream_check(upstream: Upstream) -> Check:
    """Ready when the service's own /health/ready answers 200."""

    async def check() -> bool:
        response = await upstream.client.get(upstream.base_url + "/health/ready")
        return response.status_code == 200

    return check


@router.get("/health")
async def health() -> Response:
    """The gateway process is alive."""
    return ok({"status": "ok"})


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    """Redis and every upstream answer; else 503 SERVICE_UNAVAILABLE naming the ones that do not."""
    state = request.app.state
    results = await run_checks(state.readiness_checks(), state.settings.health_timeout_seconds)
    down = sorted(name for name, status in results.items() if status != "ok")
    if down:
        return error_response(ErrorCode.SERVICE_UNAVAILABLE, {"down": down, "checks": results})
    return ok({"status": "ready", "checks": results})


@router.get("/api-docs")
async def docs() -> Response:
    """Swagger UI over the merged document."""
    page: HTMLResponse = get_swagger_ui_html(
        openapi_url="/api-docs/openapi.json",
        title="gridbot API",
        swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        # No validator badge: it would ask validator.swagger.io about our document.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )
    page.headers["content-security-policy"] = DOCS_CSP
    return page


@router.get("/api-docs/openapi.json")
async def openapi_json(request: Request) -> Response:
    """The merged OpenAPI document of every public route."""
    merged: MergedOpenApi = request.app.state.openapi
    return Response(await merged.json(), media_type="application/json")
