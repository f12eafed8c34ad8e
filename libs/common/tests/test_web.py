"""The service app kit: envelopes for every failure, request id, language, body limit, JSON rendering."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from common.errors import AppError, ErrorCode
from common.logging import JsonFormatter, redact
from common.schemas import RequestModel
from common.web import create_app, dumps, iso_utc, ok


class Body(RequestModel):
    email: str
    amount_krw: int


def build() -> FastAPI:
    app = create_app(title="t", max_body_bytes=2048)

    @app.post("/things")
    async def make(body: Body) -> object:
        return ok({"email": body.email, "amountKrw": body.amount_krw}, "made", 201)

    @app.get("/boom")
    async def boom() -> object:
        raise RuntimeError("kaboom with Bearer eyJabc.def.ghi")

    @app.get("/missing")
    async def missing() -> object:
        raise AppError(ErrorCode.BOT_NOT_FOUND, {"id": "x"})

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_success_envelope_and_camel_case(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", json={"email": "a@b.co", "amountKrw": 5})
    assert r.status_code == 201
    assert r.json() == {
        "success": True,
        "message": "made",
        "data": {"email": "a@b.co", "amountKrw": 5},
    }


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        (b"{not json", "body", "malformed JSON"),
        (b'{"email": "a@b.co"}', "amountKrw", "Field required"),
        (b'{"email": "a@b.co", "amountKrw": "5"}', "amountKrw", None),
        (b'{"email": "a@b.co", "amountKrw": 5, "admin": true}', "admin", "unknown field"),
    ],
)
async def test_bad_input_is_a_validation_error(
    client: httpx.AsyncClient, content: bytes, field: str, reason: str | None
) -> None:
    r = await client.post("/things", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    assert err["message"] == "입력값이 올바르지 않습니다"
    fields = {f["field"]: f["reason"] for f in err["details"]["fields"]}
    assert field in fields
    if reason:
        assert reason in fields[field]


async def test_unknown_route_method_and_app_error(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope", headers={"accept-language": "en"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["message"]) == (
        404,
        "NOT_FOUND",
        "Route not found",
    )
    r = await client.delete("/things")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
    r = await client.get("/missing")
    assert r.json() == {
        "success": False,
        "error": {
            "code": "BOT_NOT_FOUND",
            "message": "봇을 찾을 수 없습니다",
            "details": {"id": "x"},
        },
    }


async def test_unhandled_error_is_a_500_envelope_and_logged_redacted(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
    rendered = [JsonFormatter("t").format(rec) for rec in caplog.records]
    assert any("kaboom" in line for line in rendered)
    assert not any("eyJabc" in line for line in rendered)


async def test_request_id_echoed_or_minted(client: httpx.AsyncClient) -> None:
    r = await client.get("/missing", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/missing", headers={"x-request-id": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces" and len(r.headers["x-request-id"]) == 32
    r = await client.get("/missing")
    assert len(r.headers["x-request-id"]) == 32


async def test_huge_body_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 1000

    r = await client.post("/things", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_json_rendering_of_decimal_and_datetime() -> None:
    when = datetime(2025, 1, 23, 19, 30, 0, 123456, tzinfo=timezone(timedelta(hours=9)))
    assert iso_utc(when) == "2025-01-23T10:30:00.123Z"
    assert iso_utc(datetime(2025, 1, 1)) == "2025-01-01T00:00:00.000Z"
    assert dumps({"p": Decimal("0.00020000"), "t": when.astimezone(UTC)}) == (
        b'{"p":0.0002,"t":"2025-01-23T10:30:00.123Z"}'
    )


def test_redact_masks_secret_keys_recursively() -> None:
    data = {"apiKey": "AK", "nested": {"secretKey": "SK", "ok": 1}, "list": [{"password": "p"}]}
    assert redact(data) == {
        "apiKey": "[REDACTED]",
        "nested": {"secretKey": "[REDACTED]", "ok": 1},
        "list": [{"password": "[REDACTED]"}],
    }
