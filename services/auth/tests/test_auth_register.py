"""POST /api/auth/register: the 201 shape, email rules, the password policy and hostile bodies."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from auth.testing import PASSWORD, Account, error_code

REGISTER = "/api/auth/register"
LOGIN = "/api/auth/login"
Register = Callable[..., Awaitable[Account]]


def _email(namespace: str, tag: str = "a") -> str:
    return f"{tag}-{namespace}@example.com"


async def test_register_answers_201_with_the_contract_shape(
    client: httpx.AsyncClient, namespace: str
) -> None:
    email = _email(namespace)
    response = await client.post(REGISTER, json={"email": email, "password": PASSWORD, "name": "홍길동"})
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "회원가입이 완료되었습니다"
    assert set(body["data"]) == {"userId", "email", "token", "refreshToken"}
    assert isinstance(body["data"]["userId"], str)
    assert re.fullmatch(r"[0-9a-f-]{36}", body["data"]["userId"])
    assert body["data"]["email"] == email
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['data']['token']}"})
    assert me.json()["data"]["name"] == "홍길동"


async def test_email_is_trimmed_and_lower_cased(client: httpx.AsyncClient, namespace: str) -> None:
    response = await client.post(
        REGISTER, json={"email": f"  MiXeD-{namespace}@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["data"]["email"] == f"mixed-{namespace}@example.com"
    login = await client.post(LOGIN, json={"email": f"MIXED-{namespace}@EXAMPLE.com", "password": PASSWORD})
    assert login.status_code == 200


async def test_duplicate_email_in_another_case_is_409(
    client: httpx.AsyncClient, register: Register, namespace: str
) -> None:
    account = await register()
    response = await client.post(
        REGISTER, json={"email": account.email.upper(), "password": "another password"}
    )
    assert response.status_code == 409
    assert error_code(response) == "EMAIL_ALREADY_EXISTS"
    assert response.json()["error"]["message"] == "이미 가입된 이메일입니다"
    # The first account is untouched: its password still works, the second one does not.
    ok = await client.post(LOGIN, json={"email": account.email, "password": PASSWORD})
    assert ok.status_code == 200
    bad = await client.post(LOGIN, json={"email": account.email, "password": "another password"})
    assert bad.status_code == 401


async def test_concurrent_registrations_of_one_email_leave_one_account(
    client: httpx.AsyncClient, namespace: str
) -> None:
    email = _email(namespace, "race")
    responses = await asyncio.gather(
        *(client.post(REGISTER, json={"email": email, "password": f"{PASSWORD}{i}"}) for i in range(3))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    assert all(error_code(r) == "EMAIL_ALREADY_EXISTS" for r in responses if r.status_code == 409)


async def test_name_is_optional_and_blank_means_none(client: httpx.AsyncClient, namespace: str) -> None:
    for tag, extra in (("noname", {}), ("blank", {"name": "   "}), ("null", {"name": None})):
        response = await client.post(
            REGISTER, json={"email": _email(namespace, tag), "password": PASSWORD, **extra}
        )
        assert response.status_code == 201, response.text
        token = response.json()["data"]["token"]
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["data"]["name"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@", "password": PASSWORD}, "email"),
        ({"email": "x" * 400 + "@example.com", "password": PASSWORD}, "email"),
        ({"email": "{ns}@example.com", "password": "short7!"}, "password"),
        ({"email": "{ns}@example.com", "password": "p" * 129}, "password"),
        ({"email": "{ns}@example.com", "password": PASSWORD, "name": "n" * 101}, "name"),
        ({"email": "{ns}@example.com", "password": PASSWORD, "name": "a\u0000b"}, "name"),
        ({"email": "{ns}@example.com", "password": PASSWORD, "role": "admin"}, "role"),
        ({"email": "{ns}@example.com", "password": 12345678}, "password"),
        ({"email": ["{ns}@example.com"], "password": PASSWORD}, "email"),
        ({"email": "{ns}@example.com", "password": PASSWORD, "name": 7}, "name"),
        ({"email": "{ns}@example.com"}, "password"),
        ({"password": PASSWORD}, "email"),
    ],
)
async def test_invalid_bodies_are_validation_errors_naming_the_field(
    client: httpx.AsyncClient, namespace: str, body: dict[str, Any], field: str
) -> None:
    body = {k: (v.replace("{ns}", namespace) if isinstance(v, str) else v) for k, v in body.items()}
    if isinstance(body.get("email"), list):
        body["email"] = [e.replace("{ns}", namespace) for e in body["email"]]
    response = await client.post(REGISTER, json=body)
    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"
    fields = response.json()["error"]["details"]["fields"]
    assert field in [f["field"] for f in fields]
    assert all(isinstance(f["reason"], str) and f["reason"] for f in fields)
    # Nothing was created.
    if isinstance(body.get("email"), str) and "@example.com" in body["email"]:
        login = await client.post(LOGIN, json={"email": body["email"], "password": PASSWORD})
        assert login.status_code in (400, 401)


async def test_unknown_field_reason_says_so(client: httpx.AsyncClient, namespace: str) -> None:
    response = await client.post(
        REGISTER, json={"email": _email(namespace), "password": PASSWORD, "isAdmin": True}
    )
    assert response.json()["error"]["details"]["fields"] == [{"field": "isAdmin", "reason": "unknown field"}]


async def test_missing_fields_are_all_listed(client: httpx.AsyncClient) -> None:
    response = await client.post(REGISTER, json={})
    assert response.status_code == 400
    listed = {f["field"] for f in response.json()["error"]["details"]["fields"]}
    assert listed == {"email", "password"}


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"email": "a@example.com", "password": ', {"Content-Type": "application/json"}),
        (b"\xff\xfe\x00garbage", {"Content-Type": "application/json"}),
        (b"[1, 2, 3]", {"Content-Type": "application/json"}),
        (b'"just a string"', {"Content-Type": "application/json"}),
        (b"null", {"Content-Type": "application/json"}),
        (b"[" * 5000 + b"]" * 5000, {"Content-Type": "application/json"}),
        (
            b"email=a@example.com&password=12345678",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        (
            b'{"email": "a@example.com", "password": "\\ud800\\ud800\\ud800\\ud800"}',
            {"Content-Type": "application/json"},
        ),
        (b"", {"Content-Type": "application/json"}),
    ],
)
async def test_malformed_bodies_are_400_never_500(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    response = await client.post(REGISTER, content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert error_code(response) == "VALIDATION_ERROR"


async def test_malformed_json_is_reported_as_such(client: httpx.AsyncClient) -> None:
    response = await client.post(REGISTER, content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.json()["error"]["details"]["fields"] == [{"field": "body", "reason": "malformed JSON"}]


async def test_huge_body_is_413(client: httpx.AsyncClient, namespace: str) -> None:
    body = {"email": _email(namespace), "password": PASSWORD, "name": "x" * 200_000}
    response = await client.post(REGISTER, json=body)
    assert response.status_code == 413
    assert error_code(response) == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "' + _email(namespace).encode() + b'", "name": "'
        for _ in range(20):
            yield b"y" * 8192
        yield b'"}'

    # No Content-Length (chunked): the limit is enforced while the body streams in.
    streamed = await client.post(REGISTER, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert error_code(streamed) == "PAYLOAD_TOO_LARGE"
    login = await client.post(LOGIN, json={"email": _email(namespace), "password": PASSWORD})
    assert login.status_code == 401


async def test_multibyte_password_beyond_72_bytes_is_never_truncated(
    client: httpx.AsyncClient, register: Register
) -> None:
    # 30 Hangul syllables = 90 UTF-8 bytes: over bcrypt's 72-byte limit, within 128 characters.
    password = "가" * 30
    account = await register(password=password)
    ok = await client.post(LOGIN, json={"email": account.email, "password": password})
    assert ok.status_code == 200
    # Same first 72 bytes (24 syllables), different tail: must not log in.
    for wrong in ("가" * 24 + "나" * 6, "가" * 29, "가" * 31):
        response = await client.post(LOGIN, json={"email": account.email, "password": wrong})
        assert response.status_code == 401, wrong
    # 128 four-byte characters (512 bytes) are accepted; 129 characters are not.
    emoji = "😀" * 128
    long_account = await register(password=emoji)
    assert (
        await client.post(LOGIN, json={"email": long_account.email, "password": emoji})
    ).status_code == 200
    too_long = await client.post(REGISTER, json={"email": "x" + long_account.email, "password": emoji + "😀"})
    assert too_long.status_code == 400


async def test_english_messages_with_accept_language(client: httpx.AsyncClient, namespace: str) -> None:
    en = {"Accept-Language": "en-US,en;q=0.9"}
    response = await client.post(
        REGISTER, json={"email": _email(namespace), "password": PASSWORD}, headers=en
    )
    assert response.json()["message"] == "Registration completed"
    again = await client.post(REGISTER, json={"email": _email(namespace), "password": PASSWORD}, headers=en)
    assert again.json()["error"]["message"] == "Email is already registered"
    invalid = await client.post(REGISTER, json={}, headers=en)
    assert invalid.json()["error"]["message"] == "Invalid request input"
    korean = await client.post(REGISTER, json={})
    assert korean.json()["error"]["message"] == "입력값이 올바르지 않습니다"
