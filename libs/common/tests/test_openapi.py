"""The kit's OpenAPI document: each route's real error answers (never 422), bearer security, examples."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from common.errors import ErrorCode
from common.openapi import ExchangeInPath, errors
from common.schemas import MessageOnly, RequestModel, Success
from common.security import CurrentUser
from common.web import create_app, ok


class Body(RequestModel):
    amount: int


def build() -> FastAPI:
    app = create_app(title="t")

    @app.post("/public", response_model=MessageOnly)
    async def public(body: Body) -> object:
        return ok(message="ok")

    @app.get(
        "/things/{exchange}",
        response_model=Success[Body],
        responses=errors(ErrorCode.BOT_NOT_FOUND, ErrorCode.EXCHANGE_API_ERROR, ErrorCode.BOT_RUNNING),
    )
    async def thing(exchange: ExchangeInPath, user: CurrentUser) -> object:
        return ok({"amount": 1})

    @app.get("/mine")
    async def mine(user: CurrentUser) -> object:
        return ok({})

    return app


def codes(operation: dict[str, Any]) -> dict[str, list[str]]:
    """Status -> documented error codes of an operation."""
    return {
        status: response["x-error-codes"]
        for status, response in operation["responses"].items()
        if "x-error-codes" in response
    }


async def document() -> dict[str, Any]:
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


async def test_every_error_status_with_its_codes_and_never_422() -> None:
    doc = await document()
    thing = doc["paths"]["/things/{exchange}"]["get"]
    assert codes(thing) == {
        "400": ["VALIDATION_ERROR"],
        "401": ["UNAUTHORIZED", "INVALID_TOKEN"],
        "404": ["BOT_NOT_FOUND", "NOT_FOUND"],
        "409": ["BOT_RUNNING"],
        "429": ["RATE_LIMIT_EXCEEDED"],
        "500": ["INTERNAL_SERVER_ERROR"],
        "502": ["EXCHANGE_API_ERROR"],
        "503": ["SERVICE_UNAVAILABLE"],
    }
    public = doc["paths"]["/public"]["post"]
    assert codes(public) == {
        "400": ["VALIDATION_ERROR"],
        "413": ["PAYLOAD_TOO_LARGE"],
        "429": ["RATE_LIMIT_EXCEEDED"],
        "500": ["INTERNAL_SERVER_ERROR"],
        "503": ["SERVICE_UNAVAILABLE"],
    }
    # No parameters, no body: nothing to be invalid.
    assert "400" not in doc["paths"]["/mine"]["get"]["responses"]
    for item in doc["paths"].values():
        for operation in item.values():
            assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


async def test_error_responses_carry_the_envelope_an_example_per_code_and_headers() -> None:
    doc = await document()
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["success", "error"]
    assert envelope["properties"]["error"]["required"] == ["code", "message", "details"]
    assert set(envelope["properties"]["error"]["properties"]["code"]["enum"]) == {c.value for c in ErrorCode}
    not_found = doc["paths"]["/things/{exchange}"]["get"]["responses"]["404"]
    media = not_found["content"]["application/json"]
    assert media["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert media["examples"]["BOT_NOT_FOUND"]["value"] == {
        "success": False,
        "error": {"code": "BOT_NOT_FOUND", "message": "봇을 찾을 수 없습니다", "details": {}},
    }
    assert "`BOT_NOT_FOUND`" in not_found["description"]
    limited = doc["paths"]["/things/{exchange}"]["get"]["responses"]["429"]["headers"]
    assert {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(limited)
    busy = doc["paths"]["/things/{exchange}"]["get"]["responses"]["503"]["headers"]["Retry-After"]
    assert busy["required"] is False  # only the gateway's refusals carry it, not a service that is down
    success = doc["paths"]["/things/{exchange}"]["get"]["responses"]["200"]
    assert success["headers"]["X-Request-ID"]["required"] is True


async def test_routes_with_a_token_carry_the_bearer_scheme_and_the_others_none() -> None:
    doc = await document()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token of POST /api/auth/register, /login or /refresh.",
    }
    assert doc["paths"]["/things/{exchange}"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/mine"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/public"]["post"]["security"] == []
    parameter = doc["paths"]["/things/{exchange}"]["get"]["parameters"][0]
    assert parameter["schema"]["enum"] == ["upbit", "binance"]


async def test_the_document_is_completed_once_however_often_it_is_asked_for() -> None:
    app = build()
    first = app.openapi()
    second = app.openapi()
    assert second is first
    assert codes(second["paths"]["/mine"]["get"])["401"] == ["UNAUTHORIZED", "INVALID_TOKEN"]
