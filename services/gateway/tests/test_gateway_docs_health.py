"""Health, readiness and the merged OpenAPI document."""

# No `from __future__ import annotations`: the stand-in services build their models at run time.

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from common.testing.infra import free_port
from gateway.openapi import merge_documents
from gateway.routing import PublicPaths, RouteTable
from gateway.testing import Tokens, Upstream, bearer, gateway, make_settings, serve, wait_until


async def test_health_is_alive_without_dependencies() -> None:
    settings = make_settings(services={"auth": f"http://127.0.0.1:{free_port()}"})
    async with gateway(settings) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"status": "ok"}}


async def test_ready_when_redis_and_every_upstream_answer(
    auth_up: Upstream, bots_up: Upstream, redis_overrides: dict[str, Any]
) -> None:
    transports = {"auth": auth_up.transport(), "bots": bots_up.transport()}
    async with gateway(make_settings(**redis_overrides), transports) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["data"]["checks"] == {"redis": "ok", "bus": "ok", "auth": "ok", "bots": "ok"}


async def test_not_ready_names_what_is_down(auth_up: Upstream) -> None:
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        services={"market-data": f"http://127.0.0.1:{free_port()}"},
        health_timeout_seconds=0.5,
    )
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert error["details"]["down"] == ["market-data", "redis"]
    assert error["details"]["checks"]["auth"] == "ok"


def _service(title: str, prefix: str, model_name: str, field: str) -> FastAPI:
    app = FastAPI(title=title)
    model = type(model_name, (BaseModel,), {"__annotations__": {field: str}})

    @app.post(f"{prefix}/items", response_model=model)
    async def create(body: model) -> Any:  # type: ignore[valid-type]
        return body

    @app.get("/internal/stats")
    async def internal() -> dict[str, int]:
        return {}

    return app


async def test_merged_openapi_document(auth_up: Upstream) -> None:
    bots = _service("bots", "/api/bots", "Item", "name")
    creds = _service("credentials", "/api/credentials", "Item", "apiKey")
    transports = {
        "auth": auth_up.transport(),
        "bots": httpx.ASGITransport(bots),
        "credentials": httpx.ASGITransport(creds),
    }
    settings = make_settings(services={"market-data": f"http://127.0.0.1:{free_port()}"})
    async with gateway(settings, transports) as client:
        response = await client.get("/api-docs/openapi.json")
        page = await client.get("/api-docs")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["x-unavailable-services"] == ["market-data"]
    assert "/api/bots/items" in doc["paths"]
    assert "/api/credentials/items" in doc["paths"]
    # Routes the gateway does not expose stay out.
    assert "/internal/stats" not in doc["paths"]
    schemas = doc["components"]["schemas"]
    # Same name, different shapes: each service's version is prefixed and its refs follow.
    assert "Item" not in schemas
    assert set(schemas["bots_Item"]["properties"]) == {"name"}
    assert set(schemas["credentials_Item"]["properties"]) == {"apiKey"}
    bots_op = doc["paths"]["/api/bots/items"]["post"]
    assert bots_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == (
        "#/components/schemas/bots_Item"
    )
    # Identical definitions are shared, not duplicated.
    assert "HTTPValidationError" in schemas
    assert not any(name.endswith("_HTTPValidationError") for name in schemas)
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert bots_op["security"] == [{"bearerAuth": []}]
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert "/api-docs/openapi.json" in page.text
    assert "script-src" in page.headers["content-security-policy"]


async def test_openapi_merge_is_cached_briefly() -> None:
    calls: list[int] = []
    app = FastAPI()

    @app.get("/api/auth/me")
    async def me() -> dict[str, str]:
        return {}

    class Counting(httpx.ASGITransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/openapi.json":
                calls.append(1)
            return await super().handle_async_request(request)

    settings = make_settings(openapi_cache_seconds=60)
    async with gateway(settings, {"auth": Counting(app)}) as client:
        first = await client.get("/api-docs/openapi.json")
        second = await client.get("/api-docs/openapi.json")
    assert first.json() == second.json()
    assert "/api/auth/me" in first.json()["paths"]
    assert len(calls) == 1


def test_public_operations_need_no_security() -> None:
    doc: dict[str, Any] = {
        "paths": {
            "/api/auth/login": {"post": {"responses": {}}},
            "/api/auth/me": {"get": {"responses": {}}},
        }
    }
    merged = merge_documents(
        {"auth": doc},
        [],
        RouteTable({"/api/auth": "auth"}, ["auth"]),
        PublicPaths(["POST /api/auth/login"]),
    )
    assert merged["paths"]["/api/auth/login"]["post"]["security"] == []
    assert merged["paths"]["/api/auth/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert merged["x-unavailable-services"] == []


class ProbeCounter:
    """A service stand-in whose /health/ready counts its calls and answers only once released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.app = FastAPI()

        @self.app.get("/health/ready")
        async def ready() -> dict[str, str]:
            self.calls += 1
            await self.release.wait()
            return {"status": "ready"}

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(self.app)


async def test_concurrent_readiness_calls_share_one_probe() -> None:
    bots = ProbeCounter()
    settings = make_settings(health_cache_seconds=0, health_timeout_seconds=30)
    async with gateway(settings, {"bots": bots.transport()}) as client:
        callers = [asyncio.create_task(client.get("/health/ready")) for _ in range(20)]
        await wait_until(lambda: bots.calls == 1)
        bots.release.set()
        answers = await asyncio.gather(*callers)
        assert {r.status_code for r in answers} == {200}
        assert bots.calls == 1
        # With no cache window, the next caller probes again.
        assert (await client.get("/health/ready")).status_code == 200
        assert bots.calls == 2


async def test_a_readiness_answer_is_reused_within_the_cache_window() -> None:
    bots = ProbeCounter()
    bots.release.set()
    async with gateway(make_settings(health_cache_seconds=60), {"bots": bots.transport()}) as client:
        first = await client.get("/health/ready")
        second = await client.get("/health/ready")
    assert first.json() == second.json()
    assert bots.calls == 1


async def test_readiness_never_waits_for_the_request_pool(bots_up: Upstream, tokens: Tokens) -> None:
    async with serve(bots_up.app) as port:
        settings = make_settings(
            services={"bots": f"http://127.0.0.1:{port}"},
            upstream_max_connections=1,
            upstream_timeout_seconds=30,
            health_timeout_seconds=5,
        )
        async with gateway(settings) as client:
            # The pool's only connection is busy with a user request that has not been answered.
            hung = asyncio.create_task(client.get("/api/bots/_slow", headers=bearer(tokens.access())))
            await wait_until(lambda: bots_up.waiting == 1, within=10)
            try:
                response = await client.get("/health/ready")
            finally:
                bots_up.release.set()
                await hung
    assert response.status_code == 200, response.text
    assert response.json()["data"]["checks"]["bots"] == "ok"


async def test_readiness_covers_processes_the_gateway_does_not_route(auth_up: Upstream) -> None:
    engine = ProbeCounter()
    engine.release.set()
    settings = make_settings(readiness_checks={"engine": "http://engine.internal"})
    async with gateway(
        settings, {"auth": auth_up.transport()}, probe_transports={"engine": engine.transport()}
    ) as client:
        up = await client.get("/health/ready")
    assert up.json()["data"]["checks"] == {"cache": "ok", "bus": "ok", "auth": "ok", "engine": "ok"}
    dead = make_settings(
        readiness_checks={"engine": f"http://127.0.0.1:{free_port()}", "engine-2": "http://engine.internal"},
        health_timeout_seconds=0.5,
    )
    async with gateway(
        dead, {"auth": auth_up.transport()}, probe_transports={"engine-2": engine.transport()}
    ) as client:
        down = await client.get("/health/ready")
        # Probed, never routed: no public path reaches it.
        routed = await client.get("/api/engine/health/ready")
    assert down.status_code == 503
    assert down.json()["error"]["details"]["down"] == ["engine"]
    assert down.json()["error"]["details"]["checks"]["engine-2"] == "ok"
    assert routed.status_code == 404
