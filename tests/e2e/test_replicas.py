"""Two gateway processes over one Redis: a logout and a rate limit seen by one are seen by the other."""

from __future__ import annotations

import uuid

import httpx
import pytest

from common.testing.infra import free_port
from launcher.dev import Stack
from launcher.testing import random_client_ip, window_left

pytestmark = pytest.mark.e2e


async def test_logout_and_limits_are_shared_by_replicas(dev_stack: Stack, client_ip: str) -> None:
    port_b = free_port()
    dev_stack.start_replica("gateway", port_b)
    a = f"http://127.0.0.1:{dev_stack.ports['gateway']}/api"
    b = f"http://127.0.0.1:{port_b}/api"
    xff = {"x-forwarded-for": client_ip}
    async with httpx.AsyncClient(timeout=10, headers=xff) as c:
        address = f"rep-{uuid.uuid4().hex[:8]}@example.com"
        r = await c.post(f"{a}/auth/register", json={"email": address, "password": "securePassword123"})
        assert r.status_code == 201, r.text
        # The minute is a clock-aligned window (shifted per client): if it ends before the five calls below
        # are through, the count starts over midway. Such a client is swapped for another (each has a chance
        # of ~25/60 of a short window: twenty in a row is as good as never, five was once in a hundred runs).
        for _ in range(20):
            if window_left(r) > 25:
                break
            xff = {"x-forwarded-for": random_client_ip()}
            r = await c.post(
                f"{a}/auth/login", json={"email": address, "password": "securePassword123"}, headers=xff
            )
        else:
            pytest.fail("twenty clients in a row had less than 25 s left in their window")
        c.headers.update(xff)
        token = r.json()["data"]["token"]
        auth = {"authorization": f"Bearer {token}"}
        assert (await c.get(f"{b}/auth/me", headers=auth)).status_code == 200
        assert (await c.post(f"{a}/auth/logout", headers=auth)).status_code == 200
        r = await c.get(f"{b}/auth/me", headers=auth)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "INVALID_TOKEN")

        # One register above; four more logins on A, then B sees the sixth call of this client.
        for _ in range(4):
            r = await c.post(f"{a}/auth/login", json={"email": address, "password": "securePassword123"})
            assert r.status_code == 200
        r = await c.post(f"{b}/auth/login", json={"email": address, "password": "securePassword123"})
        assert (r.status_code, r.json()["error"]["code"]) == (429, "RATE_LIMIT_EXCEEDED")
