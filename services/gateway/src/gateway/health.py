"""The gateway's own routes: liveness, readiness of the whole system, and the API docs."""

from __future__ import annotations

from fastapi import Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from common.errors import ErrorCode
from common.web import ApiRouter, error_response, ok
from gateway.openapi import MergedOpenApi
from gateway.readiness import Readiness
from gateway.security_headers import DOCS_CSP

router = ApiRouter(include_in_schema=False)

DOCS_ASSETS_PATH = "/api-docs/assets"


def docs_assets() -> StaticFiles:
    """Swagger UI's scripts, styles and icon, served from the fastapi-offline package (never a CDN)."""
    return StaticFiles(packages=[("fastapi_offline", "static")])


@router.get("/health")
async def health() -> Response:
    """The gateway process is alive."""
    return ok({"status": "ok"})


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    """Redis, the bus, every upstream and every READINESS_CHECKS process answer; else 503 naming the others."""
    readiness: Readiness = request.app.state.readiness
    results = await readiness.report()
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
