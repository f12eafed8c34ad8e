"""GET /internal/credentials/{user_id}/{exchange}[/balance]: each route opens with its own caller's token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from common.contracts.credentials import CredentialEvent, CredentialEventType
from common.testing.wait import eventually
from credentials.testing import KEYS_TOKEN, EventSink, SimKeys, User, error_code
from exchange_sim import SimServer

Mint = Callable[..., Awaitable[SimKeys]]


async def test_only_the_keys_token_gets_keys(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint, internal: dict[str, str]
) -> None:
    user = new_user()
    keys = await mint()
    await client.post("/api/credentials", json=keys.body("binance"), headers=user.auth)
    path = f"/internal/credentials/{user.user_id}/binance"

    anonymous = await client.get(path)
    assert anonymous.status_code == 401 and error_code(anonymous) == "UNAUTHORIZED"
    for header in (
        f"Bearer {KEYS_TOKEN[:-1]}x",  # wrong token of the right length
        "Bearer short",
        f"Bearer {KEYS_TOKEN}extra",
        f"Basic {KEYS_TOKEN}",
        f"Bearer {user.token}",  # a user's valid access token is not a service token
    ):
        refused = await client.get(path, headers={"Authorization": header})
        assert refused.status_code == 401, header
        assert keys.secret_key not in refused.text

    granted = await client.get(path, headers=internal)
    assert granted.status_code == 200
    assert granted.headers["cache-control"] == "no-store"
    assert granted.json() == {"success": True, "data": {"apiKey": keys.api_key, "secretKey": keys.secret_key}}

    unknown = await client.get(f"/internal/credentials/{user.user_id}/upbit", headers=internal)
    assert unknown.status_code == 404 and error_code(unknown) == "CREDENTIAL_NOT_FOUND"
    nobody = await client.get(f"/internal/credentials/{new_user().user_id}/binance", headers=internal)
    assert nobody.status_code == 404


async def test_the_internal_route_is_not_documented_or_public(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/internal") for path in document["paths"])
    assert all(path.startswith("/api/") for path in document["paths"])


async def test_the_balance_route_reads_with_stored_keys_without_disclosing_them(
    client: httpx.AsyncClient,
    sim: SimServer,
    sim_http: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    balance_caller: dict[str, str],
    events: EventSink,
) -> None:
    user = new_user()
    keys = await mint(krw="2500000.5", usdt="777")
    for exchange in ("upbit", "binance"):
        await client.post("/api/credentials", json=keys.body(exchange), headers=user.auth)
    path = f"/internal/credentials/{user.user_id}/{{}}/balance"

    assert (await client.get(path.format("upbit"))).status_code == 401
    assert (await client.get(path.format("upbit"), headers=user.auth)).status_code == 401
    upbit = await client.get(path.format("upbit"), headers=balance_caller)
    assert upbit.status_code == 200
    assert upbit.json()["data"] == {"isValid": True, "currency": "KRW", "free": "2500000.5", "locked": "0"}
    assert keys.api_key not in upbit.text and keys.secret_key not in upbit.text
    binance = await client.get(path.format("binance"), headers=balance_caller)
    assert binance.json()["data"]["currency"] == "USDT" and binance.json()["data"]["free"] == "777"
    none = await client.get(
        f"/internal/credentials/{new_user().user_id}/upbit/balance", headers=balance_caller
    )
    assert none.status_code == 404 and error_code(none) == "CREDENTIAL_NOT_FOUND"

    await sim_http.post("/_sim/faults", json={"kind": "http_500", "count": 10, "exchange": "upbit"})
    down = await client.get(path.format("upbit"), headers=balance_caller)
    assert down.status_code == 502 and error_code(down) == "EXCHANGE_API_ERROR"
    await sim_http.delete("/_sim/faults")

    # Keys the exchange no longer accepts: not valid, recorded as such, announced once.
    del sim.state.accounts._accounts[keys.api_key]
    for _ in range(2):
        refused = await client.get(path.format("binance"), headers=balance_caller)
        assert refused.status_code == 200
        assert refused.json()["data"] == {"isValid": False, "currency": "USDT", "free": "0", "locked": "0"}
    listed = (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"]
    assert {c["exchange"]: c["isValid"] for c in listed} == {"upbit": True, "binance": False}
    await eventually(lambda: bool(events.of(CredentialEventType.INVALIDATED.value)), timeout=10)
    [event] = events.of(CredentialEventType.INVALIDATED.value)
    assert event.payload_as(CredentialEvent).exchange.value == "binance"


TICKERS_TOKEN = "credentials-tests-a-token-of-another-route-0123456789abcdef"


async def test_a_token_opens_its_own_route_and_no_other(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    internal: dict[str, str],
    balance_caller: dict[str, str],
) -> None:
    user = new_user()
    keys = await mint()
    await client.post("/api/credentials", json=keys.body("upbit"), headers=user.auth)
    keys_path = f"/internal/credentials/{user.user_id}/upbit"
    balance_path = f"{keys_path}/balance"

    # The bots service's token reads a balance and never the keys...
    refused = await client.get(keys_path, headers=balance_caller)
    assert refused.status_code == 401 and error_code(refused) == "INVALID_TOKEN"
    assert refused.json()["success"] is False and keys.secret_key not in refused.text
    assert (await client.get(balance_path, headers=balance_caller)).json()["data"]["isValid"] is True
    # ...the engine's token reads the keys and not a balance...
    refused = await client.get(balance_path, headers=internal)
    assert refused.status_code == 401 and error_code(refused) == "INVALID_TOKEN"
    assert (await client.get(keys_path, headers=internal)).json()["data"]["secretKey"] == keys.secret_key
    # ...and a token of a route this service does not serve (market-data's) opens neither.
    for path in (keys_path, balance_path):
        foreign = await client.get(path, headers={"Authorization": f"Bearer {TICKERS_TOKEN}"})
        assert foreign.status_code == 401 and error_code(foreign) == "INVALID_TOKEN"
        assert keys.secret_key not in foreign.text


@pytest.mark.parametrize(
    "path",
    [
        "/internal/credentials/%00/upbit",
        "/internal/credentials/a%00b/upbit/balance",
        "/internal/credentials/%FF%FE/upbit",
        "/internal/credentials/" + "u" * 9000 + "/upbit",
    ],
)
async def test_a_user_id_postgresql_cannot_store_is_a_validation_error(
    client: httpx.AsyncClient, internal: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=internal)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
