"""common.crypto: AES-256-GCM under a versioned key ring, bound to its associated data."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from common.crypto import (
    KEY_BYTES,
    DecryptionError,
    EncryptionSettings,
    KeyRing,
    KeyRingError,
    Sealed,
    aad,
    generate_key,
    is_placeholder_key,
    parse_key,
)
from common.settings import DEV_ENCRYPTION_KEY

KEY_1 = os.urandom(KEY_BYTES)
KEY_2 = os.urandom(KEY_BYTES)
AAD = aad("test.purpose", "user-1", "upbit", "api_key")


def ring(current: int = 1, **keys: bytes) -> KeyRing:
    return KeyRing(current, {int(v[1:]): k for v, k in keys.items()})


def test_round_trip_with_fresh_nonces() -> None:
    keyring = ring(v1=KEY_1)
    first, second = keyring.encrypt("my-secret", AAD), keyring.encrypt("my-secret", AAD)
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext
    assert len(first.nonce) == 12
    assert keyring.decrypt(first, AAD) == keyring.decrypt(second, AAD) == "my-secret"
    token = keyring.seal("비밀 ✓", AAD)
    assert token.startswith("v1.") and "비밀" not in token
    assert keyring.open(token, AAD) == "비밀 ✓"


@pytest.mark.parametrize(
    "other",
    [
        aad("test.purpose", "user-2", "upbit", "api_key"),  # another owner
        aad("test.purpose", "user-1", "binance", "api_key"),  # another exchange
        aad("test.purpose", "user-1", "upbit", "secret_key"),  # another field
        aad("other.purpose", "user-1", "upbit", "api_key"),  # another purpose
        b"",
    ],
)
def test_associated_data_must_match(other: bytes) -> None:
    keyring = ring(v1=KEY_1)
    sealed = keyring.encrypt("my-secret", AAD)
    with pytest.raises(DecryptionError):
        keyring.decrypt(sealed, other)


def test_associated_data_is_unambiguous() -> None:
    assert aad("p", "ab", "c") != aad("p", "a", "bc")
    assert aad("p", "a") != aad("p", "a", "")


def test_tampering_and_relabelling_fail() -> None:
    keyring = ring(2, v1=KEY_1, v2=KEY_1)  # even two versions sharing a key are not interchangeable
    sealed = keyring.encrypt("my-secret", AAD)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    for bad in (
        Sealed(sealed.version, sealed.nonce, flipped),
        Sealed(sealed.version, os.urandom(12), sealed.ciphertext),
        Sealed(1, sealed.nonce, sealed.ciphertext),
        Sealed(7, sealed.nonce, sealed.ciphertext),
    ):
        with pytest.raises(DecryptionError):
            keyring.decrypt(bad, AAD)


@pytest.mark.parametrize(
    "token", ["", "v1", "v1.abc", "x1.AAAA.BBBB", "v0.AAAA.BBBB", "v1.AAAA.BBBB", "v1.!!.??"]
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(DecryptionError):
        ring(v1=KEY_1).open(token, AAD)


def test_previous_versions_open_and_current_seals() -> None:
    old = ring(1, v1=KEY_1)
    token = old.seal("my-secret", AAD)
    rotated = ring(2, v1=KEY_1, v2=KEY_2)
    assert rotated.open(token, AAD) == "my-secret"
    assert Sealed.from_token(rotated.seal("my-secret", AAD)).version == 2
    with pytest.raises(DecryptionError, match="no key for version 1"):
        ring(2, v2=KEY_2).open(token, AAD)


def test_wrong_key_fails() -> None:
    token = ring(v1=KEY_1).seal("my-secret", AAD)
    with pytest.raises(DecryptionError):
        ring(v1=KEY_2).open(token, AAD)


def test_repr_shows_no_key_material() -> None:
    keyring = ring(v1=KEY_1)
    sealed = keyring.encrypt("my-secret", AAD)
    assert KEY_1.hex() not in repr(keyring) and base64.b64encode(KEY_1).decode() not in repr(keyring)
    assert sealed.ciphertext.hex() not in repr(sealed)


@pytest.mark.parametrize(
    "form",
    [
        base64.b64encode(KEY_1).decode(),
        base64.b64encode(KEY_1).decode().rstrip("="),
        base64.urlsafe_b64encode(KEY_1).decode(),
        KEY_1.hex(),
        KEY_1.hex().upper(),
        f"  {KEY_1.hex()}\n",
    ],
    ids=["base64", "base64-unpadded", "base64url", "hex", "HEX", "hex-with-whitespace"],
)
def test_key_forms(form: str) -> None:
    assert parse_key(form) == KEY_1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        (base64.b64encode(b"x" * 16).decode(), "decodes to 16 bytes"),
        (base64.b64encode(b"x" * 33).decode(), "decodes to 33 bytes"),
        ("ab" * 31, "decodes to"),
        ("zz" * 32, "decodes to 48 bytes"),  # valid base64 of the wrong length, not hex
        ("correct horse battery staple!!", "neither base64 nor hex"),
    ],
)
def test_malformed_keys_name_the_variable_not_the_value(value: str, reason: str) -> None:
    with pytest.raises(KeyRingError) as caught:
        parse_key(value, "ENCRYPTION_KEY")
    message = str(caught.value)
    assert message.startswith("ENCRYPTION_KEY ") and reason in message
    assert not value or value not in message


def test_settings_refuse_malformed_keys_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", "sixteen-byte-key")
    with pytest.raises(ValidationError) as caught:
        EncryptionSettings()
    assert "ENCRYPTION_KEY" in str(caught.value) and "sixteen-byte-key" not in str(caught.value)
    monkeypatch.setenv("ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("ENCRYPTION_KEY_VERSION", "3")
    monkeypatch.setenv("ENCRYPTION_PREVIOUS_KEYS", f'{{"2": "{KEY_2.hex()}"}}')
    keyring = EncryptionSettings().key_ring()
    assert (keyring.current_version, keyring.versions) == (3, frozenset({2, 3}))


def test_development_key_is_usable_in_development_only() -> None:
    assert len(parse_key(DEV_ENCRYPTION_KEY)) == KEY_BYTES
    assert is_placeholder_key(parse_key(DEV_ENCRYPTION_KEY))
    assert not is_placeholder_key(parse_key(generate_key()))
    assert EncryptionSettings(environment="development").key_ring().current_version == 1
    with pytest.raises(ValidationError, match="development placeholder"):
        EncryptionSettings(environment="production")
    assert EncryptionSettings(environment="production", encryption_key=generate_key()).key_ring()
