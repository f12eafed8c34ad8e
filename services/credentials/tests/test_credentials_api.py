"""The credential routes as API.md describes them, with keys minted by the exchange simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from common.contracts.credentials import CredentialEvent, CredentialEventType
from common.testing.wait import eventually
from credentials.testing import EventSink, SimKeys, User, error_code

Mint = Callable[..., Awaitable[SimKeys]]
MASK = "****_****_****-"


def _mask(keys: SimKeys) -> str:
    return MASK + keys.api_key[-4:]


async def test_full_flow(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    events: EventSink,
    internal: dict[str, str],
) -> None:
    user = new_user()
    first = await mint()

    created = await client.post(
        "/api/credentials", json=first.body("upbit", ipWhitelist="10.0.0.0/8, 1.2.3.4"), headers=user.auth
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["success"] is True
    assert body["message"] == "인증 정보가 저장되었습니다"
    assert set(body["data"]) == {"credentialId", "exchange", "isValid", "warnings"}
    assert body["data"]["exchange"] == "upbit"
    assert body["data"]["isValid"] is True
    credential_id = body["data"]["credentialId"]

    listed = await client.get("/api/credentials", headers=user.auth)
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    [summary] = listed.json()["data"]["credentials"]
    assert summary["_id"] == credential_id
    assert summary["apiKey"] == _mask(first)
    assert set(summary) == {"_id", "exchange", "apiKey", "isValid", "lastValidatedAt", "createdAt"}
    assert summary["isValid"] is True
    assert summary["lastValidatedAt"].endswith("Z") and summary["createdAt"].endswith("Z")
    assert first.api_key not in listed.text and first.secret_key not in listed.text

    one = await client.get("/api/credentials/upbit", headers=user.auth)
    assert one.status_code == 200
    detail = one.json()["data"]
    assert detail["apiKey"] == _mask(first)
    assert detail["ipWhitelist"] == "10.0.0.0/8, 1.2.3.4"
    assert first.api_key not in one.text and first.secret_key not in one.text

    # PUT with other keys: re-validated, then stored; the engine now gets the new keys.
    second = await mint()
    updated = await client.put(
        "/api/credentials/upbit",
        json={"apiKey": second.api_key, "secretKey": second.secret_key},
        headers=user.auth,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["message"] == "인증 정보가 업데이트되었습니다"
    data = updated.json()["data"]
    assert data["exchange"] == "upbit" and data["isValid"] is True and data["updatedAt"].endswith("Z")
    keys = await client.get(f"/internal/credentials/{user.user_id}/upbit", headers=internal)
    assert keys.json()["data"] == {"apiKey": second.api_key, "secretKey": second.secret_key}
    again = await client.get("/api/credentials/upbit", headers=user.auth)
    assert again.json()["data"]["apiKey"] == _mask(second)
    assert again.json()["data"]["ipWhitelist"] == "10.0.0.0/8, 1.2.3.4"  # kept: not in the PUT
    # The new keys are announced after commit (the engine drops the client it built from the old ones).
    await eventually(lambda: bool(events.of(CredentialEventType.UPDATED.value)), timeout=10)
    [envelope] = events.of(CredentialEventType.UPDATED.value)
    event = envelope.payload_as(CredentialEvent)
    assert (event.user_id, event.exchange.value, event.credential_id, event.reason) == (
        user.user_id,
        "upbit",
        credential_id,
        "updated_by_user",
    )
    assert (
        second.api_key not in envelope.model_dump_json()
        and second.secret_key not in envelope.model_dump_json()
    )

    # A PUT whose merged keys the exchange refuses stores nothing.
    rejected = await client.put(
        "/api/credentials/upbit", json={"secretKey": first.secret_key}, headers=user.auth
    )
    assert rejected.status_code == 400
    assert error_code(rejected) == "INVALID_CREDENTIALS"
    keys = await client.get(f"/internal/credentials/{user.user_id}/upbit", headers=internal)
    assert keys.json()["data"]["secretKey"] == second.secret_key

    # Clearing the whitelist.
    cleared = await client.put("/api/credentials/upbit", json={"ipWhitelist": None}, headers=user.auth)
    assert cleared.status_code == 200
    assert (await client.get("/api/credentials/upbit", headers=user.auth)).json()["data"][
        "ipWhitelist"
    ] is None

    deleted = await client.delete("/api/credentials/upbit", headers=user.auth)
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "message": "인증 정보가 삭제되었습니다"}

    # The deletion reaches the bus through the outbox (the engine stops the user's live bots).
    await eventually(lambda: bool(events.of(CredentialEventType.DELETED.value)), timeout=10)
    # On the same ordered queue: neither the refused PUT nor the whitelist-only one announced new keys.
    assert len(events.of(CredentialEventType.UPDATED.value)) == 1
    [envelope] = events.of(CredentialEventType.DELETED.value)
    event = envelope.payload_as(CredentialEvent)
    assert (event.user_id, event.exchange.value, event.credential_id) == (
        user.user_id,
        "upbit",
        credential_id,
    )
    assert event.reason == "deleted_by_user"

    for method in ("GET", "PUT", "DELETE"):
        gone = await client.request(
            method,
            "/api/credentials/upbit",
            headers=user.auth,
            json={"ipWhitelist": ""} if method == "PUT" else None,
        )
        assert gone.status_code == 404, method
        assert error_code(gone) == "CREDENTIAL_NOT_FOUND"
        assert gone.json()["error"]["message"] == "인증 정보를 찾을 수 없습니다"
    assert (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"] == []
    assert (
        await client.get(f"/internal/credentials/{user.user_id}/upbit", headers=internal)
    ).status_code == 404


async def test_one_credential_per_exchange(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    user = new_user()
    keys = await mint()
    assert (
        await client.post("/api/credentials", json=keys.body("binance"), headers=user.auth)
    ).status_code == 201
    duplicate = await client.post("/api/credentials", json=keys.body("binance"), headers=user.auth)
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "CREDENTIAL_ALREADY_EXISTS"
    # Another exchange is another credential.
    assert (
        await client.post("/api/credentials", json=keys.body("upbit"), headers=user.auth)
    ).status_code == 201
    listed = (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"]
    assert sorted(c["exchange"] for c in listed) == ["binance", "upbit"]


async def test_another_users_credential_does_not_exist(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint, internal: dict[str, str]
) -> None:
    owner, intruder = new_user(), new_user()
    keys, intruder_keys = await mint(), await mint()
    assert (
        await client.post("/api/credentials", json=keys.body("upbit"), headers=owner.auth)
    ).status_code == 201

    attempts = [
        await client.get("/api/credentials/upbit", headers=intruder.auth),
        await client.put(
            "/api/credentials/upbit", json={"apiKey": intruder_keys.api_key}, headers=intruder.auth
        ),
        await client.delete("/api/credentials/upbit", headers=intruder.auth),
    ]
    for response in attempts:
        assert response.status_code == 404
        assert error_code(response) == "CREDENTIAL_NOT_FOUND"
        assert keys.api_key[-4:] not in response.text
    assert (await client.get("/api/credentials", headers=intruder.auth)).json()["data"]["credentials"] == []

    # The owner's credential is untouched, and the intruder may have their own.
    owned = await client.get(f"/internal/credentials/{owner.user_id}/upbit", headers=internal)
    assert owned.json()["data"]["apiKey"] == keys.api_key
    own = await client.post("/api/credentials", json=intruder_keys.body("upbit"), headers=intruder.auth)
    assert own.status_code == 201


async def test_english_messages(client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint) -> None:
    user = new_user()
    en = {**user.auth, "Accept-Language": "en"}
    keys = await mint()
    created = await client.post("/api/credentials", json=keys.body("upbit"), headers=en)
    assert created.json()["message"] == "Credentials saved"
    missing = await client.get("/api/credentials/binance", headers=en)
    assert missing.json()["error"]["message"] == "Credential not found"
    valid = await client.post("/api/exchange/validate-credentials", json=keys.body("binance"), headers=en)
    assert valid.json()["message"] == "API credentials are valid"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"exchange": "bithumb", "apiKey": "a" * 20, "secretKey": "b" * 20}, "UNSUPPORTED_EXCHANGE", None),
        ({"exchange": "upbit", "apiKey": "a" * 20}, "VALIDATION_ERROR", "secretKey"),
        ({"exchange": "upbit", "apiKey": "a" * 20, "secretKey": "b" * 20, "x": 1}, "VALIDATION_ERROR", "x"),
        ({"exchange": "upbit", "apiKey": "short", "secretKey": "b" * 20}, "VALIDATION_ERROR", "apiKey"),
        ({"exchange": "upbit", "apiKey": "a b c d e f", "secretKey": "b" * 20}, "VALIDATION_ERROR", "apiKey"),
        (
            {"exchange": "upbit", "apiKey": "a" * 20, "secretKey": "b" * 20, "ipWhitelist": "123.456.789.0"},
            "VALIDATION_ERROR",
            "ipWhitelist",
        ),
        ({"exchange": "upbit", "apiKey": 12345678, "secretKey": "b" * 20}, "VALIDATION_ERROR", "apiKey"),
    ],
)
async def test_create_rejects_bad_input(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    body: dict[str, object],
    code: str,
    field: str | None,
) -> None:
    user = new_user()
    response = await client.post("/api/credentials", json=body, headers=user.auth)
    assert response.status_code == 400
    assert error_code(response) == code
    if field is not None:
        assert field in [f["field"] for f in response.json()["error"]["details"]["fields"]]
    # Validation reasons never quote what was sent.
    assert "b" * 20 not in response.text
    assert (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"] == []


async def test_put_needs_a_change_and_a_token(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    user = new_user()
    keys = await mint()
    await client.post("/api/credentials", json=keys.body("upbit"), headers=user.auth)
    empty = await client.put("/api/credentials/upbit", json={}, headers=user.auth)
    assert empty.status_code == 400 and error_code(empty) == "VALIDATION_ERROR"
    unsupported = await client.get("/api/credentials/kraken", headers=user.auth)
    assert unsupported.status_code == 400 and error_code(unsupported) == "UNSUPPORTED_EXCHANGE"

    anonymous = await client.get("/api/credentials")
    assert anonymous.status_code == 401 and error_code(anonymous) == "UNAUTHORIZED"
    forged = await client.get("/api/credentials", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401 and error_code(forged) == "INVALID_TOKEN"
    no_token_validate = await client.post("/api/exchange/validate-credentials", json=keys.body("upbit"))
    assert no_token_validate.status_code == 401


@pytest.mark.settings(egress_ip="203.0.113.7")
async def test_whitelist_warnings_against_the_egress_ip(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    keys = await mint()
    inside = await client.post(
        "/api/credentials", json=keys.body("upbit", ipWhitelist="203.0.113.0/24"), headers=new_user().auth
    )
    assert inside.json()["data"]["warnings"] == []

    user = new_user()
    outside = await client.post(
        "/api/credentials",
        json=keys.body("upbit", ipWhitelist="198.51.100.1 198.51.100.2"),
        headers=user.auth,
    )
    assert outside.status_code == 201
    [warning] = outside.json()["data"]["warnings"]
    assert "203.0.113.7" in warning and "화이트리스트" in warning

    fixed = await client.put(
        "/api/credentials/upbit",
        json={"ipWhitelist": "198.51.100.1, 203.0.113.7"},
        headers={**user.auth, "Accept-Language": "en"},
    )
    assert fixed.json()["data"]["warnings"] == []
    broken = await client.put(
        "/api/credentials/upbit",
        json={"ipWhitelist": "198.51.100.1"},
        headers={**user.auth, "Accept-Language": "en"},
    )
    assert "does not include this server's egress IP (203.0.113.7)" in broken.json()["data"]["warnings"][0]

    without = await client.post("/api/credentials", json=keys.body("binance"), headers=user.auth)
    assert without.json()["data"]["warnings"] == []


async def test_whitelist_warns_when_the_egress_ip_is_unknown(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    keys = await mint()
    response = await client.post(
        "/api/credentials",
        json=keys.body("upbit", ipWhitelist="198.51.100.1"),
        headers={**new_user().auth, "Accept-Language": "en"},
    )
    assert response.status_code == 201
    assert response.json()["data"]["warnings"] == [
        "This server's egress IP (EGRESS_IP) is unknown, so the IP whitelist could not be checked"
    ]


# 999 characters as sent; ", " between the 50 canonical entries makes 1,048 stored, over the 1,000 column.
GROWING_WHITELIST = ",".join(["1:2:3:4:5:6:7:0/112"] * 50)


async def test_a_whitelist_whose_stored_form_is_too_long_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    assert len(GROWING_WHITELIST) == 999
    user, keys = new_user(), await mint()
    created = await client.post(
        "/api/credentials", json=keys.body("upbit", ipWhitelist=GROWING_WHITELIST), headers=user.auth
    )
    assert created.status_code == 400, created.text
    assert created.json()["error"]["details"]["fields"] == [
        {"field": "ipWhitelist", "reason": "at most 1000 characters once normalised (1048)"}
    ]
    assert (await client.get("/api/credentials/upbit", headers=user.auth)).status_code == 404
    # The same on a change: refused, the stored whitelist untouched.
    saved = await client.post(
        "/api/credentials", json=keys.body("upbit", ipWhitelist="10.0.0.0/8"), headers=user.auth
    )
    assert saved.status_code == 201, saved.text
    changed = await client.put(
        "/api/credentials/upbit", json={"ipWhitelist": GROWING_WHITELIST}, headers=user.auth
    )
    assert changed.status_code == 400 and error_code(changed) == "VALIDATION_ERROR"
    shown = await client.get("/api/credentials/upbit", headers=user.auth)
    assert shown.json()["data"]["ipWhitelist"] == "10.0.0.0/8"
