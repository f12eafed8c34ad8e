"""Roles and administration (API.md): administrators named by ADMIN_EMAILS or `make admin`, the user list,
disabling (every token refused at once, login and refresh refused, the bots service asked to stop the
user's bots with the administrator's token) and enabling; anyone else gets 403 on every admin route."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth.main import create_app
from auth.promote import promote
from auth.settings import Settings
from auth.testing import PASSWORD, Backend, make_settings
from common.testing.wait import eventually


class BotsStandIn:
    """The bots service's admin route as auth calls it: records the calls; fails while told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failing = False

    async def _stop(self, request: Request) -> JSONResponse:
        self.calls.append((request.path_params["user_id"], request.headers.get("authorization", "")))
        if self.failing:
            return JSONResponse({"success": False}, status_code=503)
        return JSONResponse({"success": True, "data": {"botsStopped": 2}})

    def transport(self) -> httpx.AsyncBaseTransport:
        app = Starlette(
            routes=[Route("/internal/admin/users/{user_id}/stop-bots", self._stop, methods=["POST"])]
        )
        return httpx.ASGITransport(app)


@pytest.fixture
def bots() -> BotsStandIn:
    """The stand-in bots service."""
    return BotsStandIn()


@pytest.fixture
def admin(namespace: str) -> str:
    """The administrator's email (one per test: the database is shared)."""
    return f"boss-{namespace}@example.com"


@pytest.fixture
def admin_settings(backend: Backend, namespace: str, admin: str) -> Settings:
    """ADMIN_EMAILS names one administrator (as an operator writes it: comma separated, any case)."""
    return make_settings(
        backend,
        namespace,
        admin_emails=f" {admin.upper()} , other@example.com",
        disabled_refresh_seconds=0.2,
    )


@pytest.fixture
async def api(admin_settings: Settings, bots: BotsStandIn) -> AsyncIterator[httpx.AsyncClient]:
    """The auth app (lifespan running) with the stand-in bots service."""
    application = create_app(admin_settings, bots_transport=bots.transport())
    async with (
        LifespanManager(application, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(application), base_url="http://auth") as client,
    ):
        client.app = application  # type: ignore[attr-defined]
        yield client


async def _register(api: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    data: dict[str, str] = r.json()["data"]
    return data


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_admin_emails_make_administrators_and_me_shows_the_role(
    api: httpx.AsyncClient, admin: str
) -> None:
    boss = await _register(api, admin)
    plain = await _register(api, f"{uuid.uuid4().hex[:8]}@example.com")
    me = (await api.get("/api/auth/me", headers=_bearer(boss["token"]))).json()["data"]
    assert me["role"] == "admin"
    assert (await api.get("/api/auth/me", headers=_bearer(plain["token"]))).json()["data"]["role"] == "user"
    listed = await api.get("/api/admin/users?limit=1&offset=0", headers=_bearer(boss["token"]))
    assert listed.status_code == 200, listed.text
    page = listed.json()["data"]
    assert page["pagination"]["total"] >= 2 and page["pagination"]["hasMore"] is True
    assert set(page["users"][0]) == {"userId", "email", "name", "role", "disabled", "disabledAt", "createdAt"}


async def test_anyone_else_gets_403_on_every_admin_route_whether_the_target_exists_or_not(
    api: httpx.AsyncClient, bots: BotsStandIn
) -> None:
    plain = await _register(api, f"{uuid.uuid4().hex[:8]}@example.com")
    headers = _bearer(plain["token"])
    for method, path in [
        ("GET", "/api/admin/users"),
        ("POST", f"/api/admin/users/{plain['userId']}/disable"),
        ("POST", f"/api/admin/users/{uuid.uuid4()}/disable"),
        ("POST", f"/api/admin/users/{uuid.uuid4()}/enable"),
    ]:
        assert _code(await api.request(method, path, headers=headers)) == (403, "FORBIDDEN"), path
        assert _code(await api.request(method, path)) == (401, "UNAUTHORIZED"), path
    assert bots.calls == []


async def test_disabling_refuses_every_token_login_and_refresh_and_stops_the_bots(
    api: httpx.AsyncClient, bots: BotsStandIn, admin: str
) -> None:
    boss = await _register(api, admin)
    victim = await _register(api, f"{uuid.uuid4().hex[:8]}@example.com")
    second = (await api.post("/api/auth/login", json={"email": victim["email"], "password": PASSWORD})).json()
    tokens = [victim["token"], second["data"]["token"]]
    for token in tokens:
        assert (await api.get("/api/auth/me", headers=_bearer(token))).status_code == 200

    # The bots service is down: the user is disabled all the same, the answer says what is left to do.
    bots.failing = True
    r = await api.post(f"/api/admin/users/{victim['userId']}/disable", headers=_bearer(boss["token"]))
    assert _code(r) == (503, "SERVICE_UNAVAILABLE")
    for token in tokens:
        assert _code(await api.get("/api/auth/me", headers=_bearer(token))) == (403, "ACCOUNT_DISABLED")
    # Repeated once it is back: the bots are stopped, asked with the administrator's own token.
    bots.failing = False
    r = await api.post(f"/api/admin/users/{victim['userId']}/disable", headers=_bearer(boss["token"]))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["user"]["disabled"], data["botsStopped"]) == (True, 2)
    assert bots.calls == [(victim["userId"], f"Bearer {boss['token']}")] * 2

    login = await api.post("/api/auth/login", json={"email": victim["email"], "password": PASSWORD})
    assert _code(login) == (403, "ACCOUNT_DISABLED")
    wrong = await api.post("/api/auth/login", json={"email": victim["email"], "password": PASSWORD + "x"})
    assert _code(wrong) == (401, "INVALID_LOGIN")  # the state is told only to whoever knows the password
    refresh = await api.post("/api/auth/refresh", json={"refreshToken": victim["refreshToken"]})
    assert refresh.status_code in (401, 403)  # revoked with every other refresh token of the user

    # Enabled again: a new login works; the tokens of before stay revoked.
    r = await api.post(f"/api/admin/users/{victim['userId']}/enable", headers=_bearer(boss["token"]))
    assert r.status_code == 200 and r.json()["data"]["disabled"] is False
    login = await api.post("/api/auth/login", json={"email": victim["email"], "password": PASSWORD})
    assert login.status_code == 200
    assert (await api.get("/api/auth/me", headers=_bearer(login.json()["data"]["token"]))).status_code == 200
    for token in tokens:
        assert _code(await api.get("/api/auth/me", headers=_bearer(token))) == (401, "INVALID_TOKEN")


async def test_an_administrator_cannot_disable_themself_nor_a_user_that_does_not_exist(
    api: httpx.AsyncClient, admin: str
) -> None:
    boss = await _register(api, admin)
    r = await api.post(f"/api/admin/users/{boss['userId']}/disable", headers=_bearer(boss["token"]))
    assert _code(r) == (400, "VALIDATION_ERROR")
    r = await api.post(f"/api/admin/users/{uuid.uuid4()}/disable", headers=_bearer(boss["token"]))
    assert _code(r) == (404, "USER_NOT_FOUND")


async def test_a_disabled_users_marker_comes_back_when_the_cache_loses_it(
    api: httpx.AsyncClient, admin: str
) -> None:
    boss = await _register(api, admin)
    victim = await _register(api, f"{uuid.uuid4().hex[:8]}@example.com")
    r = await api.post(f"/api/admin/users/{victim['userId']}/disable", headers=_bearer(boss["token"]))
    assert r.status_code == 200
    login = await api.post("/api/auth/login", json={"email": admin, "password": PASSWORD})
    assert login.status_code == 200
    # The cache loses the marker (Redis keeps nothing on disk); the database is the record and it returns.
    cache: Any = api.app.state.cache  # type: ignore[attr-defined]
    await cache.delete(f"disabled-user:{victim['userId']}")

    async def marked() -> bool:
        return bool(await cache.exists(f"disabled-user:{victim['userId']}"))

    await eventually(marked, timeout=5)


async def test_make_admin_promotes_a_registered_user(
    api: httpx.AsyncClient, admin_settings: Settings
) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    await _register(api, email)
    url = admin_settings.database_url.get_secret_value()
    assert await promote(url, [email]) == 0
    assert await promote(url, [f"nobody-{email}"]) == 1
    # The role reaches the user's tokens at their next login.
    login = (await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})).json()["data"]
    assert (await api.get("/api/auth/me", headers=_bearer(login["token"]))).json()["data"]["role"] == "admin"
    assert (await api.get("/api/admin/users", headers=_bearer(login["token"]))).status_code == 200
