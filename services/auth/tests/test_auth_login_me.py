"""POST /api/auth/login and GET /api/auth/me."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import bcrypt
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event

from auth.models import User
from auth.testing import PASSWORD, Account, error_code

LOGIN = "/api/auth/login"
ME = "/api/auth/me"
Register = Callable[..., Awaitable[Account]]


async def test_login_answers_the_contract_shape(client: httpx.AsyncClient, register: Register) -> None:
    account = await register(name="홍길동")
    response = await client.post(LOGIN, json={"email": account.email, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert set(body["data"]) == {"userId", "email", "name", "token", "refreshToken"}
    assert body["data"]["userId"] == account.user_id
    assert body["data"]["email"] == account.email
    assert body["data"]["name"] == "홍길동"
    # A fresh token pair, usable at once.
    assert body["data"]["token"] != account.token
    me = await client.get(ME, headers={"Authorization": f"Bearer {body['data']['token']}"})
    assert me.status_code == 200


async def test_wrong_password_and_unknown_email_answer_identically(
    client: httpx.AsyncClient, register: Register, namespace: str
) -> None:
    account = await register()
    wrong = await client.post(LOGIN, json={"email": account.email, "password": "not the password"})
    unknown = await client.post(
        LOGIN, json={"email": f"nobody-{namespace}@example.com", "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert error_code(wrong) == "INVALID_LOGIN"
    assert wrong.json()["error"]["message"] == "이메일 또는 비밀번호가 올바르지 않습니다"
    short = await client.post(LOGIN, json={"email": account.email, "password": "x"})
    assert short.content == wrong.content


async def test_unknown_email_still_spends_one_bcrypt_check_off_the_loop(
    client: httpx.AsyncClient, register: Register, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await register()
    calls: list[int] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(threading.get_ident())
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    loop_thread = threading.get_ident()
    await client.post(LOGIN, json={"email": f"ghost-{namespace}@example.com", "password": PASSWORD})
    await client.post(LOGIN, json={"email": account.email, "password": "wrong password"})
    assert len(calls) == 2
    assert loop_thread not in calls


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    response = await client.post(LOGIN, json={"email": f" {account.email.upper()} ", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["data"]["email"] == account.email


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "a@example.com"},
        {"email": "a@example.com", "password": 1},
        {"email": "bad", "password": "x"},
    ],
)
async def test_login_validation(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(LOGIN, json=body)
    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"


async def test_me_returns_the_profile(client: httpx.AsyncClient, register: Register) -> None:
    account = await register(name="Kim")
    response = await client.get(ME, headers=account.auth)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "success": True,
        "data": {
            "userId": account.user_id,
            "email": account.email,
            "name": "Kim",
            "createdAt": body["data"]["createdAt"],
            "role": "user",
        },
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["data"]["createdAt"])


async def test_me_is_one_statement(app: FastAPI, client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert (await client.get(ME, headers=account.auth)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1
    assert "password_hash" not in statements[0]


async def test_me_of_a_deleted_user_is_404(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    account = await register()
    async with app.state.session_factory() as session, session.begin():
        await session.execute(delete(User).where(User.id == uuid.UUID(account.user_id)))
    response = await client.get(ME, headers=account.auth)
    assert response.status_code == 404
    assert error_code(response) == "USER_NOT_FOUND"
    en = await client.get(ME, headers={**account.auth, "Accept-Language": "en"})
    assert en.json()["error"]["message"] == "User not found"
    # Its refresh tokens went with it (cascade): refreshing is an invalid token, not a crash.
    refreshed = await client.post("/api/auth/refresh", json={"refreshToken": account.refresh_token})
    assert refreshed.status_code == 401
    assert error_code(refreshed) == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_me_without_a_bearer_token_is_unauthorized(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    assert response.json()["error"]["message"] == "인증이 필요합니다"


async def test_request_id_is_echoed_or_minted(client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    ok = await client.get(ME, headers={**account.auth, "X-Request-ID": "trace-123.abc"})
    assert ok.headers["x-request-id"] == "trace-123.abc"
    failed = await client.get(ME, headers={"X-Request-ID": "trace-456"})
    assert failed.status_code == 401
    assert failed.headers["x-request-id"] == "trace-456"
    minted = await client.get(ME)
    assert re.fullmatch(r"[0-9a-f]{32}", minted.headers["x-request-id"])


async def test_unknown_route_and_wrong_method_use_the_envelope(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/auth/nope")
    assert missing.status_code == 404
    assert error_code(missing) == "NOT_FOUND"
    wrong = await client.get("/api/auth/login")
    assert wrong.status_code == 405
    assert error_code(wrong) == "METHOD_NOT_ALLOWED"
