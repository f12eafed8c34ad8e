"""The app on its own: migrations at start (embedded mode) and readiness of its dependencies."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from common.security import TokenService, TokenType
from credentials.main import create_app
from credentials.testing import Backend, make_settings
from exchange_sim import SimServer


async def test_migrate_on_start_then_ready(tmp_path: Path, sim: SimServer, namespace: str) -> None:
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", "memory://", "memory://")
    settings = make_settings(backend, sim.url, namespace, migrate_on_start=True)
    token = TokenService.from_settings(settings).issue(TokenType.ACCESS, user_id="u-1", email="u@example.com")
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=20, shutdown_timeout=20),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://credentials") as client,
    ):
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["data"]["checks"] == {"database": "ok", "cache": "ok", "bus": "ok"}
        # The schema exists: an authenticated read reaches the table.
        listed = await client.get("/api/credentials", headers={"Authorization": f"Bearer {token.token}"})
        assert listed.status_code == 200 and listed.json()["data"] == {"credentials": []}
        unknown = await client.get("/api/nothing-here")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
