"""POST /api/auth/logout: access revoked at once, optional refresh family, no change on failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from auth.testing import Account, error_code

LOGOUT = "/api/auth/logout"
REFRESH = "/api/auth/refresh"
ME = "/api/auth/me"
Register = Callable[..., Awaitable[Account]]


async def test_logout_revokes_the_access_token_at_once(client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    assert (await client.get(ME, headers=account.auth)).status_code == 200
    response = await client.post(LOGOUT, headers=account.auth)
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "로그아웃되었습니다"}
    me = await client.get(ME, headers=account.auth)
    assert me.status_code == 401
    assert error_code(me) == "INVALID_TOKEN"
    again = await client.post(LOGOUT, headers=account.auth)
    assert again.status_code == 401
    assert error_code(again) == "INVALID_TOKEN"
    # No refresh token in the body: the refresh token still works (only the access one ended).
    assert (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).status_code == 200


async def test_logout_with_refresh_token_revokes_its_family(
    client: httpx.AsyncClient, register: Register
) -> None:
    account = await register()
    rotated = (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).json()["data"]
    response = await client.post(LOGOUT, headers=account.auth, json={"refreshToken": rotated["refreshToken"]})
    assert response.status_code == 200
    refused = await client.post(REFRESH, json={"refreshToken": rotated["refreshToken"]})
    assert refused.status_code == 401
    assert error_code(refused) == "INVALID_TOKEN"
    # The access token issued with the rotated pair dies with the family.
    for token in (rotated["token"], account.token):
        me = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
        assert error_code(me) == "INVALID_TOKEN"


async def test_someone_elses_refresh_token_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, register: Register
) -> None:
    me, other = await register(), await register()
    response = await client.post(LOGOUT, headers=me.auth, json={"refreshToken": other.refresh_token})
    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"
    assert (await client.get(ME, headers=me.auth)).status_code == 200
    assert (await client.get(ME, headers=other.auth)).status_code == 200
    assert (await client.post(REFRESH, json={"refreshToken": other.refresh_token})).status_code == 200
    assert (await client.post(REFRESH, json={"refreshToken": me.refresh_token})).status_code == 200


@pytest.mark.parametrize("refresh", ["garbage", "a.b.c", "access"])
async def test_invalid_refresh_token_in_body_changes_nothing(
    client: httpx.AsyncClient, register: Register, refresh: str
) -> None:
    account = await register()
    token = account.token if refresh == "access" else refresh
    response = await client.post(LOGOUT, headers=account.auth, json={"refreshToken": token})
    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"
    assert (await client.get(ME, headers=account.auth)).status_code == 200
    assert (await client.post(REFRESH, json={"refreshToken": account.refresh_token})).status_code == 200


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (None, {}),
        (b"", {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "application/json"}),
        (b"null", {"Content-Type": "application/json"}),
        (b'{"refreshToken": null}', {"Content-Type": "application/json"}),
    ],
)
async def test_logout_body_is_optional(
    client: httpx.AsyncClient, register: Register, content: bytes | None, headers: dict[str, str]
) -> None:
    account = await register()
    response = await client.post(LOGOUT, headers={**account.auth, **headers}, content=content)
    assert response.status_code == 200, response.text
    me = await client.get(ME, headers=account.auth)
    assert me.status_code == 401
    assert error_code(me) == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"refreshToken": 5}', b'{"refreshToken": "x", "extra": 1}', b"[]"]
)
async def test_malformed_logout_body_is_400_and_changes_nothing(
    client: httpx.AsyncClient, register: Register, content: bytes
) -> None:
    account = await register()
    response = await client.post(
        LOGOUT, headers={**account.auth, "Content-Type": "application/json"}, content=content
    )
    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"
    assert (await client.get(ME, headers=account.auth)).status_code == 200


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT, headers={"Accept-Language": "en"})
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "UNAUTHORIZED",
        "message": "Authentication required",
        "details": {},
    }


async def test_logout_message_in_english(client: httpx.AsyncClient, register: Register) -> None:
    account = await register()
    response = await client.post(LOGOUT, headers={**account.auth, "Accept-Language": "en"})
    assert response.json() == {"success": True, "message": "Logged out"}
