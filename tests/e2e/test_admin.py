"""Roles and administration through the gateway, in `make run` and `make dev`: an administrator (ADMIN_EMAILS)
disables a user with a running live bot — their token is refused at once, the bot's orders are gone from the
simulator, they cannot log in — and sees the system; a plain user gets 403 on every admin route."""

from __future__ import annotations

import uuid

import httpx
import pytest

from common.testing.wait import eventually
from launcher.testing import (
    ADMIN_EMAIL,
    POLL,
    System,
    body,
    clients,
    connect_keys,
    grid_around,
    sim_orders,
    sim_price,
)

pytestmark = pytest.mark.e2e

PASSWORD = "securePassword123"
EXCHANGE, SYMBOL = "upbit", "KRW-ETH"


async def _admin(api: httpx.AsyncClient) -> dict[str, str]:
    """The stack's administrator signed in (registered by the first test that needs one)."""
    r = await api.post("/api/auth/register", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    if r.status_code == 409:
        r = await api.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    token = body(r)["token"]
    return {"authorization": f"Bearer {token}"}


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.timeout(240, func_only=True)
async def test_an_administrator_disables_a_user_with_a_live_bot(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, sim):
        admin = await _admin(api)
        assert body(await api.get("/api/auth/me", headers=admin))["role"] == "admin"
        email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
        r = await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        victim = {"authorization": f"Bearer {body(r)['token']}"}
        victim_id = body(r)["userId"]
        api_key = await connect_keys(api, sim, victim, EXCHANGE)
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        spec = grid_around(EXCHANGE, SYMBOL, start, "0.05", 1, 10000, mode="live")
        r = await api.post("/api/bots", headers=victim, json=spec)
        assert r.status_code == 201, r.text
        bot_id = body(r)["botId"]

        async def resting() -> bool:
            return any(o["status"] == "wait" for o in await sim_orders(sim, api_key, EXCHANGE))

        await eventually(resting, timeout=30, interval=POLL, message="the live bot's orders never rested")

        # A plain user: 403 on every admin route, existing or not, and the system view too.
        for method, path in [
            ("GET", "/api/admin/users"),
            ("GET", "/api/admin/system"),
            ("POST", f"/api/admin/users/{victim_id}/disable"),
            ("POST", f"/api/admin/users/{uuid.uuid4()}/enable"),
            ("GET", "/api/admin/no-such-route"),
        ]:
            assert _code(await api.request(method, path, headers=victim)) == (403, "FORBIDDEN"), path

        r = await api.post(f"/api/admin/users/{victim_id}/disable", headers=admin)
        assert r.status_code == 200, r.text
        assert body(r)["botsStopped"] == 1 and body(r)["user"]["disabled"] is True
        # At once: the token refused, the orders gone from the exchange, the login refused.
        assert _code(await api.get(f"/api/bots/{bot_id}", headers=victim)) == (403, "ACCOUNT_DISABLED")
        orders = await sim_orders(sim, api_key, EXCHANGE)
        assert orders and not [o for o in orders if o["status"] == "wait"]
        login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert _code(login) == (403, "ACCOUNT_DISABLED")

        users = body(await api.get("/api/admin/users?limit=100", headers=admin))
        shown = [u for u in users["users"] if u["userId"] == victim_id] or None
        assert users["pagination"]["total"] >= 2
        if shown is not None:
            assert shown[0]["disabled"] is True

        view = body(await api.get("/api/admin/system", headers=admin))
        assert view["services"] and all(state == "ok" for state in view["services"].values()), view
        replicas = view["engine"]["replicas"]
        assert replicas and sum(r["partitions"] for r in replicas) + view["engine"]["unownedPartitions"] == 64
        assert view["queues"]["bots.credential-events"]["deadLetters"] == 0
        assert isinstance(view["exchangeErrors"], dict) and view["unavailable"] == []

        # Enabled again: a new login works (the bot stays stopped).
        r = await api.post(f"/api/admin/users/{victim_id}/enable", headers=admin)
        assert r.status_code == 200, r.text
        login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200
        again = {"authorization": f"Bearer {body(login)['token']}"}
        assert body(await api.get(f"/api/bots/{bot_id}", headers=again))["status"] == "stopped"
