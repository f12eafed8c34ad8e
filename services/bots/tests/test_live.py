"""Live bots: a valid credential and enough quote for the initial buys, asked of the credentials service.

The credentials service is played by `CredentialsContract` (bots.testing), which serves exactly the internal
route the bots service relies on: this is the contract the credentials service must honour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bots.testing import CredentialsContract, FakeEngine, User, error_code
from common.testing.wait import eventually

from .conftest import SPEC_BOT

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

SetPrice = Callable[[str, str, str], Awaitable[None]]
LIVE = {**SPEC_BOT, "mode": "live"}


async def _post(client: httpx.AsyncClient, user: User, **overrides: Any) -> httpx.Response:
    return await client.post("/api/bots", json={**LIVE, **overrides}, headers=user.auth)


async def test_no_credential(client: httpx.AsyncClient, user: User, credentials: CredentialsContract) -> None:
    response = await _post(client, user)
    assert response.status_code == 404 and error_code(response) == "CREDENTIAL_NOT_FOUND"
    assert response.json()["error"]["message"] == "인증 정보를 찾을 수 없습니다"
    assert credentials.calls == 1


async def test_rejected_credential(
    client: httpx.AsyncClient, user: User, credentials: CredentialsContract
) -> None:
    credentials.set(user.user_id, "upbit", valid=False)
    response = await _post(client, user)
    assert response.status_code == 400 and error_code(response) == "INVALID_CREDENTIALS"


async def test_only_slots_below_the_market_need_quote(
    client: httpx.AsyncClient, user: User, credentials: CredentialsContract, set_price: SetPrice
) -> None:
    # At 60,000,000 the buy levels 50,000,000 … 59,161,000 (9 slots) rest below the market: at most
    # 9 × 10,000 KRW with Upbit's fee inside each order amount.
    await set_price("upbit", "KRW-BTC", "60000000")
    credentials.set(user.user_id, "upbit", free="89000")
    response = await _post(client, user)
    assert response.status_code == 400 and error_code(response) == "INSUFFICIENT_BALANCE"
    details = response.json()["error"]["details"]
    assert 89900 < details["required"] <= 90000
    assert details["available"] == 89000 and details["currency"] == "KRW"
    credentials.set(user.user_id, "upbit", free="90000")
    response = await _post(client, user)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["mode"] == "live" and response.json()["data"]["status"] == "running"


async def test_without_a_cached_price_the_exchange_price_is_used(
    client: httpx.AsyncClient, user: User, credentials: CredentialsContract
) -> None:
    # The simulator trades KRW-BTC far above 70,000,000: all 16 slots buy at once (≈ 160,000 KRW).
    credentials.set(user.user_id, "upbit", free="150000")
    response = await _post(client, user)
    assert response.status_code == 400 and error_code(response) == "INSUFFICIENT_BALANCE"
    assert 159_000 < response.json()["error"]["details"]["required"] <= 160_000


async def test_credentials_service_down_is_503(
    client: httpx.AsyncClient, user: User, credentials: CredentialsContract
) -> None:
    credentials.down = True
    response = await _post(client, user)
    assert response.status_code == 503 and error_code(response) == "SERVICE_UNAVAILABLE"


async def test_start_checks_again(
    client: httpx.AsyncClient,
    user: User,
    credentials: CredentialsContract,
    set_price: SetPrice,
    engine: FakeEngine,
) -> None:
    await set_price("upbit", "KRW-BTC", "60000000")
    credentials.set(user.user_id, "upbit", free="1000000")
    response = await _post(client, user, autoStart=False)
    assert response.status_code == 201
    bot_id = response.json()["data"]["botId"]
    credentials.set(user.user_id, "upbit", free="1000")
    response = await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "INSUFFICIENT_BALANCE"
    credentials.set(user.user_id, "upbit", valid=False)
    response = await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)
    assert response.status_code == 400 and error_code(response) == "INVALID_CREDENTIALS"
    got = (await client.get(f"/api/bots/{bot_id}", headers=user.auth)).json()["data"]
    assert got["status"] == "stopped"
    credentials.set(user.user_id, "upbit", free="1000000")
    assert (await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)).status_code == 200
    await eventually(lambda: bool(engine.commands.of("bot.start", bot_id=bot_id)))


async def test_paper_bots_never_ask(
    client: httpx.AsyncClient, user: User, credentials: CredentialsContract
) -> None:
    response = await client.post("/api/bots", json=SPEC_BOT, headers=user.auth)
    assert response.status_code == 201 and credentials.calls == 0
