"""The real auth service behind two gateway replicas (in-process, real PostgreSQL and Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth.main import create_app as create_auth_app
from auth.migrate import upgrade
from auth.testing import JWT_SECRET, Backend
from auth.testing import make_settings as auth_settings
from gateway.main import create_app as create_gateway_app
from gateway.settings import Settings as GatewaySettings

PASSWORD = "securePassword123"


class CountingTransport(httpx.ASGITransport):
    """An in-process transport that remembers which paths reached the service."""

    def __init__(self, app: object) -> None:
        super().__init__(app, raise_app_exceptions=False)  # type: ignore[arg-type]
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


@dataclass
class Deployment:
    """Auth and two gateway replicas sharing one Redis namespace."""

    auth_transport: CountingTransport
    replicas: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, index: int) -> httpx.AsyncClient:
        """Gateway replica `index` (0 = A, 1 = B)."""
        return self.replicas[index]


@pytest.fixture(scope="session")
def auth_database(postgres_url: str) -> str:
    """The test database with the auth schema migrated."""
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
async def deployment(auth_database: str, redis_url: str, namespace: str) -> AsyncIterator[Deployment]:
    """Auth on PostgreSQL + Redis, and gateways A and B in front of it."""
    auth_app = create_auth_app(auth_settings(Backend("postgres", auth_database, redis_url), namespace))
    transport = CountingTransport(auth_app)
    gateway_settings = GatewaySettings(
        environment="test",
        jwt_secret=JWT_SECRET,
        redis_url=redis_url,
        cache_namespace=namespace,
        services={},
        access_log=False,
    )
    deployment = Deployment(transport)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(LifespanManager(auth_app))
        for client_port in (1, 2):
            app = create_gateway_app(gateway_settings, transports={"auth": transport})
            manager = await stack.enter_async_context(LifespanManager(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(manager.app, client=("198.51.100.20", client_port)),
                    base_url="http://gateway.test",
                )
            )
            deployment.replicas.append(client)
        yield deployment


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_full_flow_through_the_gateway(deployment: Deployment) -> None:
    a, b = deployment.client(0), deployment.client(1)
    email = f"flow-{uuid.uuid4().hex[:8]}@example.com"

    registered = await a.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "홍길동"}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["message"] == "회원가입이 완료되었습니다"
    assert registered.headers["x-ratelimit-limit"] == "5"

    login = await a.post("/api/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert login.status_code == 200, login.text
    data = login.json()["data"]
    access, refresh = data["token"], data["refreshToken"]
    assert data["email"] == email

    me = await a.get("/api/auth/me", headers={"Authorization": f"Bearer {access}", "X-Request-ID": "flow-1"})
    assert me.status_code == 200, me.text
    assert me.json()["data"]["email"] == email
    assert me.json()["data"]["name"] == "홍길동"
    assert me.headers["x-request-id"] == "flow-1"
    assert me.headers["x-ratelimit-limit"] == "100"

    rotated = await b.post("/api/auth/refresh", json={"refreshToken": refresh})
    assert rotated.status_code == 200, rotated.text
    new_access = rotated.json()["data"]["token"]
    rotated_me = await b.get("/api/auth/me", headers={"Authorization": f"Bearer {new_access}"})
    assert rotated_me.status_code == 200
    reuse = await a.post("/api/auth/refresh", json={"refreshToken": refresh})
    assert _code(reuse) == (401, "INVALID_TOKEN")

    # The reuse above revoked the family; log in again for a clean session to log out of.
    relog = await a.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    session = relog.json()["data"]
    bearer = {"Authorization": f"Bearer {session['token']}"}
    assert (await b.get("/api/auth/me", headers=bearer)).status_code == 200

    logout = await a.post("/api/auth/logout", headers=bearer, json={"refreshToken": session["refreshToken"]})
    assert logout.status_code == 200, logout.text
    assert logout.json() == {"success": True, "message": "로그아웃되었습니다"}

    reached = len(deployment.auth_transport.paths)
    # Replica B refuses the logged-out token itself, at once, without asking auth.
    assert _code(await b.get("/api/auth/me", headers=bearer)) == (401, "INVALID_TOKEN")
    assert _code(await a.get("/api/auth/me", headers=bearer)) == (401, "INVALID_TOKEN")
    assert len(deployment.auth_transport.paths) == reached


async def test_missing_and_bad_tokens_never_reach_auth(deployment: Deployment) -> None:
    a = deployment.client(0)
    missing = await a.get("/api/auth/me")
    bad = await a.get("/api/auth/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert _code(missing) == (401, "UNAUTHORIZED")
    assert _code(bad) == (401, "INVALID_TOKEN")
    assert deployment.auth_transport.paths == []


async def test_auth_rate_limit_is_counted_across_replicas(deployment: Deployment) -> None:
    a, b = deployment.client(0), deployment.client(1)
    email = f"limit-{uuid.uuid4().hex[:8]}@example.com"
    first = await a.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert first.status_code == 201
    codes = [
        (
            await (b if i % 2 == 0 else a).post(
                "/api/auth/login", json={"email": email, "password": PASSWORD}
            )
        ).status_code
        for i in range(5)
    ]
    # Register + 4 logins spend the 5/minute budget of this client IP, whichever replica served them.
    assert codes == [200, 200, 200, 200, 429]
    assert len([p for p in deployment.auth_transport.paths if p == "/api/auth/login"]) == 4
