"""No input reaches a 500: every route answers hostile bodies and headers with a documented code."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest

from auth.testing import Account

Register = Callable[..., Awaitable[Account]]
ROUTES = ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]
DOCUMENTED = {200, 201, 400, 401, 404, 409, 413}

BODIES: list[bytes] = [
    b"",
    b"{}",
    b"null",
    b"true",
    b"0",
    b"1e400",
    b'{"email": NaN, "password": Infinity}',
    b'{"email": 1e400, "password": -0}',
    b'{"email": {"$ne": null}, "password": {"$gt": ""}}',
    b'{"email": "a@example.com", "password": "' + b"\\u0000" * 8 + b'"}',
    b'{"email": "a\\u0000@example.com", "password": "12345678"}',
    b'{"email": "\\ud83d@example.com", "password": "12345678"}',
    b'{"email": "user@b\xc3\xbccher.de", "password": "12345678", "name": "\\u202e\\u2028"}',
    b'{"email": "\xef\xbc\xb5SER@example.com", "password": "12345678"}',
    b'{"refreshToken": "\\u0000"}',
    b'{"refreshToken": "eyJhbGciOiJub25lIn0.eyJ0eXBlIjoicmVmcmVzaCJ9."}',
    b'{"refreshToken": "eyJ.eyJ.eyJ"}',
    b'{"refreshToken": "' + b"a." * 1000 + b'"}',
    b'{"refreshToken": ["x"]}',
    b'{"email": "a@example.com", "email": "b@example.com", "password": "12345678"}',
    b"\xc3\x28",
    b"\x00\x00\x00\x00",
    b"{" * 3000,
    json.dumps({"email": "a@example.com", "password": "12345678", "__proto__": {}}).encode(),
]


@pytest.mark.parametrize("route", ROUTES)
async def test_hostile_bodies_never_500(client: httpx.AsyncClient, register: Register, route: str) -> None:
    account = await register()
    statuses = set()
    for body in BODIES:
        for headers in ({"Content-Type": "application/json"}, {}, {"Content-Type": "text/plain"}):
            response = await client.post(route, content=body, headers={**account.auth, **headers})
            assert response.status_code in DOCUMENTED, (body, headers, response.text)
            statuses.add(response.status_code)
            assert response.json()["success"] is (response.status_code < 300)
    assert 400 in statuses


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "A" * 60_000,
        "Bearer a.b",
        "Bearer ....",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "bearer\teyJ",
        "Bearer \u00ff\u00fe",
        "Token abc",
    ],
)
async def test_hostile_authorization_headers_never_500(client: httpx.AsyncClient, authorization: str) -> None:
    for method, route in (("GET", "/api/auth/me"), ("POST", "/api/auth/logout")):
        response = await client.request(
            method,
            route,
            headers={b"Authorization": authorization.encode("latin-1")},
        )
        assert response.status_code == 401, (authorization, response.text)
        assert response.json()["error"]["code"] in {"UNAUTHORIZED", "INVALID_TOKEN"}
