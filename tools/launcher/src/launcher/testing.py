"""Helpers for whole-system tests and scripts that drive a running system over HTTP only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class System:
    """Where a running system answers: the gateway (the only public port) and the exchange simulator."""

    gateway: str
    sim: str


async def register(client: httpx.AsyncClient) -> dict[str, str]:
    """A fresh user; returns the Authorization header of its access token."""
    address = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post("/api/auth/register", json={"email": address, "password": "securePassword123"})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['data']['token']}"}


async def sim_account(sim: str, **balances: str) -> dict[str, str]:
    """Keys of a fresh simulator account (valid on both exchanges)."""
    async with httpx.AsyncClient(base_url=sim, timeout=10) as c:
        r = await c.post("/_sim/accounts", json={"balances": balances})
        assert r.status_code in (200, 201), r.text
        keys = r.json()
        return {"apiKey": keys["apiKey"], "secretKey": keys["secretKey"]}
