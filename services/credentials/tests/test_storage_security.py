"""What a database dump holds: sealed tokens only, each bound to its owner, exchange and field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from common.crypto import DecryptionError
from credentials.models import Credential
from credentials.testing import SimKeys, User, error_code
from credentials.vault import CredentialVault

Mint = Callable[..., Awaitable[SimKeys]]


async def _dump(engine: AsyncEngine) -> list[str]:
    """Every row of every table of the credentials schema, as text (what a dump would show)."""
    lines: list[str] = []
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'credentials'"
                    )
                )
            ).scalars()
            for table in list(tables):
                rows = await conn.execute(text(f'SELECT t::text FROM credentials."{table}" t'))
                lines.extend(rows.scalars())
        else:
            tables = (
                await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            ).scalars()
            for table in list(tables):
                lines.extend(str(tuple(row)) for row in await conn.execute(text(f'SELECT * FROM "{table}"')))
    return lines


async def test_no_table_holds_a_plaintext_key_or_secret(
    app: FastAPI, client: httpx.AsyncClient, new_user: Callable[[], User], mint: Mint
) -> None:
    user = new_user()
    first, second = await mint(), await mint()
    for exchange in ("upbit", "binance"):
        response = await client.post("/api/credentials", json=first.body(exchange), headers=user.auth)
        assert response.status_code == 201
    updated = await client.put(
        "/api/credentials/binance",
        json={"apiKey": second.api_key, "secretKey": second.secret_key},
        headers=user.auth,
    )
    assert updated.status_code == 200
    assert (await client.delete("/api/credentials/upbit", headers=user.auth)).status_code == 200

    engine: AsyncEngine = app.state.engine
    dump = "\n".join(await _dump(engine))
    assert user.user_id in dump  # the scan does see this test's rows
    for secret in (first.api_key, first.secret_key, second.api_key, second.secret_key):
        assert secret not in dump
    if engine.dialect.name == "sqlite":
        database = Path(str(engine.url.database))
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                raw = path.read_bytes()
                for secret in (first.api_key, first.secret_key, second.api_key, second.secret_key):
                    assert secret.encode() not in raw

    async with app.state.session_factory() as session:
        row = (
            await session.execute(select(Credential).where(Credential.user_id == user.user_id))
        ).scalar_one()
    assert row.api_key.startswith("v1.") and row.secret_key.startswith("v1.")
    assert row.key_version == 1
    assert row.key_last4 == second.api_key[-4:]


async def test_a_ciphertext_moved_to_another_row_or_field_does_not_decrypt(
    app: FastAPI,
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    internal: dict[str, str],
) -> None:
    alice, bob = new_user(), new_user()
    alice_keys, bob_keys = await mint(), await mint()
    for exchange in ("upbit", "binance"):
        await client.post("/api/credentials", json=alice_keys.body(exchange), headers=alice.auth)
    await client.post("/api/credentials", json=bob_keys.body("upbit"), headers=bob.auth)

    async def row(user: User, exchange: str) -> Credential:
        async with app.state.session_factory() as session:
            query = select(Credential).where(
                Credential.user_id == user.user_id, Credential.exchange == exchange
            )
            return (await session.execute(query)).scalar_one()

    alice_upbit, alice_binance, bob_upbit = (
        await row(alice, "upbit"),
        await row(alice, "binance"),
        await row(bob, "upbit"),
    )
    # The same keys sealed twice give different ciphertexts (fresh nonces).
    assert alice_upbit.api_key != alice_binance.api_key

    vault: CredentialVault = app.state.vault
    moves = [
        (bob.user_id, "upbit", alice_upbit.api_key, bob_upbit.secret_key),  # another user's row
        (alice.user_id, "binance", alice_upbit.api_key, alice_binance.secret_key),  # another exchange
        (alice.user_id, "upbit", alice_upbit.secret_key, alice_upbit.api_key),  # fields swapped
        (alice.user_id, "upbit", alice_upbit.api_key[:-2] + "AA", alice_upbit.secret_key),  # tampered
    ]
    for user_id, exchange, api_token, secret_token in moves:
        try:
            vault.open(user_id, exchange, api_token, secret_token)
        except DecryptionError:
            continue
        raise AssertionError(f"a moved ciphertext decrypted for {exchange}")

    # Through the service: Bob's row now carries Alice's sealed key. The engine gets an error, not a key.
    async with app.state.session_factory() as session, session.begin():
        await session.execute(
            update(Credential).where(Credential.id == bob_upbit.id).values(api_key=alice_upbit.api_key)
        )
    stolen = await client.get(f"/internal/credentials/{bob.user_id}/upbit", headers=internal)
    assert stolen.status_code == 500 and error_code(stolen) == "INTERNAL_SERVER_ERROR"
    assert alice_keys.api_key not in stolen.text
    updated = await client.put("/api/credentials/upbit", json={"ipWhitelist": "1.2.3.4"}, headers=bob.auth)
    assert updated.status_code == 500
    # Bob repairs his row by sending both keys again (nothing stored needs opening for that).
    repaired = await client.put(
        "/api/credentials/upbit",
        json={"apiKey": bob_keys.api_key, "secretKey": bob_keys.secret_key},
        headers=bob.auth,
    )
    assert repaired.status_code == 200
    assert (await client.get(f"/internal/credentials/{bob.user_id}/upbit", headers=internal)).json()["data"][
        "apiKey"
    ] == bob_keys.api_key
    # Alice's own rows are untouched and still open.
    own = await client.get(f"/internal/credentials/{alice.user_id}/upbit", headers=internal)
    assert own.json()["data"] == {"apiKey": alice_keys.api_key, "secretKey": alice_keys.secret_key}
