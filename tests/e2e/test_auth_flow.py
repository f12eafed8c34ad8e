"""register → login → me → refresh → logout through the gateway, against `make run` and `make dev`."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import httpx
import jwt
import pytest

from common.testing.wait import eventually
from launcher.dev import Stack
from launcher.testing import random_client_ip, window_left

pytestmark = pytest.mark.e2e


def email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@Example.com"


async def test_the_whole_auth_flow(gateway_url: str, client_ip: str) -> None:
    xff = {"x-forwarded-for": client_ip}
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api", headers=xff, timeout=10) as c:
        address = email()
        r = await c.post(
            "/auth/register",
            json={"email": address, "password": "securePassword123", "name": "홍길동"},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["success"] is True and body["message"] == "회원가입이 완료되었습니다"
        data = body["data"]
        assert set(data) == {"userId", "email", "token", "refreshToken"}
        assert data["email"] == address.lower()
        claims = jwt.decode(data["token"], options={"verify_signature": False})
        assert claims["type"] == "access" and claims["userId"] == data["userId"]

        r = await c.post("/auth/login", json={"email": address.upper(), "password": "securePassword123"})
        assert r.status_code == 200, r.text
        login = r.json()["data"]
        assert (login["userId"], login["email"], login["name"]) == (
            data["userId"],
            address.lower(),
            "홍길동",
        )
        access, refresh = login["token"], login["refreshToken"]

        r = await c.get("/auth/me", headers={"authorization": f"Bearer {access}"})
        assert r.status_code == 200, r.text
        me = r.json()["data"]
        assert me["userId"] == data["userId"] and me["name"] == "홍길동"
        assert me["createdAt"].endswith("Z") and len(me["createdAt"]) == 24

        r = await c.post("/auth/refresh", json={"refreshToken": refresh})
        assert r.status_code == 200, r.text
        rotated = r.json()["data"]
        assert set(rotated) == {"token", "refreshToken"} and rotated["refreshToken"] != refresh

        # Reusing the rotated-out refresh token is theft: refused, and the whole family dies with it.
        r = await c.post("/auth/refresh", json={"refreshToken": refresh})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_TOKEN")
        r = await c.post("/auth/refresh", json={"refreshToken": rotated["refreshToken"]})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_TOKEN")

        # The access token issued with the stolen family is dead too.
        r = await c.get("/auth/me", headers={"authorization": f"Bearer {access}"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_TOKEN")

        # The session opened at registration is another family, untouched by the theft; log it out.
        access = data["token"]
        assert (await c.get("/auth/me", headers={"authorization": f"Bearer {access}"})).status_code == 200
        r = await c.post("/auth/logout", headers={"authorization": f"Bearer {access}"})
        assert r.json() == {"success": True, "message": "로그아웃되었습니다"}
        r = await c.get("/auth/me", headers={"authorization": f"Bearer {access}"})
        assert r.status_code == 401
        assert r.json()["error"] == {
            "code": "INVALID_TOKEN",
            "message": "유효하지 않은 토큰입니다",
            "details": {},
        }


async def test_errors_are_envelopes_and_change_nothing(gateway_url: str, client_ip: str) -> None:
    xff = {"x-forwarded-for": client_ip}
    async with httpx.AsyncClient(base_url=gateway_url, headers=xff, timeout=10) as c:
        r = await c.post("/api/auth/register", content=b"{oops", headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
        address = email()
        r = await c.post("/api/auth/login", json={"email": address, "password": "whatever-123"})
        assert r.json()["error"] == {
            "code": "INVALID_LOGIN",
            "message": "이메일 또는 비밀번호가 올바르지 않습니다",
            "details": {},
        }
        # A register with one bad field creates nothing: the same email registers fine afterwards.
        r = await c.post("/api/auth/register", json={"email": address, "password": "short"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
        r = await c.post("/api/auth/register", json={"email": address, "password": "longEnough123"})
        assert r.status_code == 201
        r = await c.get("/api/nowhere", headers={"accept-language": "en", "x-request-id": "trace-me-1"})
        assert (r.status_code, r.json()["error"]["code"]) == (404, "NOT_FOUND")
        assert r.json()["error"]["message"] == "Route not found"
        assert r.headers["x-request-id"] == "trace-me-1"
        r = await c.get("/api/auth/me")
        assert (r.status_code, r.json()["error"]["code"]) == (401, "UNAUTHORIZED")
        r = await c.get("/api/auth/me", headers={"authorization": "Bearer not.a.token"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_TOKEN")


async def test_auth_routes_are_rate_limited_per_client_ip(gateway_url: str, client_ip: str) -> None:
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api", timeout=10) as c:
        body = {"email": email(), "password": "wrong-password-1"}
        # The minute is a clock-aligned window (shifted per client): one ending before the six logins are
        # through would let the sixth in. Such a client is swapped for another (a random address: neighbours'
        # windows are close). A client has less than 25 s left about 2 times in 5: five tries still failed about
        # once in 80 runs, twenty fail about once in 40 million.
        for _ in range(20):
            first = await c.post("/auth/login", json=body, headers={"x-forwarded-for": client_ip})
            if window_left(first) > 25:
                break
            client_ip = random_client_ip()
        else:
            pytest.fail("twenty clients in a row had less than 25 s left in their window")
        statuses = [first.status_code] + [
            (await c.post("/auth/login", json=body, headers={"x-forwarded-for": client_ip})).status_code
            for _ in range(4)
        ]
        assert statuses == [401] * 5
        r = await c.post("/auth/login", json=body, headers={"x-forwarded-for": client_ip})
        assert (r.status_code, r.json()["error"]["code"]) == (429, "RATE_LIMIT_EXCEEDED")
        assert int(r.headers["retry-after"]) > 0
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["x-ratelimit-limit"] == "5"
        neighbour = client_ip.rsplit(".", 1)[0] + (".254" if not client_ip.endswith(".254") else ".253")
        other = await c.post("/auth/login", json=body, headers={"x-forwarded-for": neighbour})
        assert other.status_code == 401


async def test_health_and_docs(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as c:
        assert (await c.get("/health")).status_code == 200
        r = await c.get("/health/ready")
        assert r.status_code == 200, r.text
        doc = (await c.get("/api-docs/openapi.json")).json()
        assert "/api/auth/login" in doc["paths"]
        assert "/api/auth/me" in doc["paths"]
        assert (await c.get("/api-docs")).status_code == 200


async def _readiness(c: httpx.AsyncClient, wanted: int) -> dict[str, Any]:
    """Poll /health/ready until it answers `wanted` (its answer is cached for a second or so)."""
    answers: list[httpx.Response] = []

    async def answered() -> bool:
        answers.append(await c.get("/health/ready"))
        return answers[-1].status_code == wanted

    await eventually(answered, timeout=30, interval=0.2, message=f"readiness never {wanted}")
    body: dict[str, Any] = answers[-1].json()
    return body


@pytest.mark.outage  # kills the shared stack's engine: after the other tests of that stack
async def test_readiness_names_a_dead_engine(dev_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{dev_stack.ports['gateway']}", timeout=10) as c:
        assert (await _readiness(c, 200))["data"]["checks"]["engine"] == "ok"
        # Held down (the launcher would start it again within a second) while readiness is looked at.
        await asyncio.to_thread(dev_stack.kill, "engine-1", signal.SIGKILL, True)
        try:
            down = await _readiness(c, 503)
            assert down["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert down["error"]["details"]["down"] == ["engine"]
        finally:
            # The other tests of the session need their engine back: the launcher starts it again.
            await asyncio.to_thread(dev_stack.restart, "engine-1")
        assert (await _readiness(c, 200))["data"]["checks"]["engine"] == "ok"
