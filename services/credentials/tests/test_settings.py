"""The process refuses unusable secrets, and says which setting is wrong without quoting its value."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from common.crypto import KeyRing
from common.settings import DEV_ENCRYPTION_KEY
from credentials.settings import Settings
from credentials.testing import BALANCE_TOKEN, ENCRYPTION_KEY_V1, ENCRYPTION_KEY_V2, JWT_SECRET, KEYS_TOKEN

STRONG = {
    "environment": "production",
    "jwt_secret": JWT_SECRET,
    "encryption_key": ENCRYPTION_KEY_V1,
    "internal_keys_token": KEYS_TOKEN,
    "internal_balance_token": BALANCE_TOKEN,
}
MALFORMED = {
    "too short": base64.b64encode(b"sixteen byte key").decode(),
    "31 bytes": base64.b64encode(b"k" * 31).decode(),
    "33 bytes": base64.b64encode(b"k" * 33).decode(),
    "63 hex digits": "ab" * 31 + "c",
    "hex of 31 bytes": "ab" * 31,
    "neither base64 nor hex": "this is my very secret passphrase!!",
    "empty": "",
}


@pytest.mark.parametrize("value", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_encryption_key_is_refused_without_quoting_it(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{**STRONG, "environment": "development", "encryption_key": value})
    message = str(caught.value)
    assert "ENCRYPTION_KEY" in message
    assert not value or value not in message


def test_accepted_key_forms() -> None:
    raw = os.urandom(32)
    forms = [
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        raw.hex().upper(),
    ]
    sealed = None
    for form in forms:
        ring = Settings(**{**STRONG, "encryption_key": form}).key_ring()
        sealed = sealed or ring.seal("x", b"aad")
        assert ring.open(sealed, b"aad") == "x"  # every form names the same key


def test_development_placeholders_are_refused_in_production() -> None:
    # The repository's development key does decode to 32 bytes (it works in development)...
    assert len(base64.b64decode(DEV_ENCRYPTION_KEY)) == 32
    assert isinstance(Settings(environment="development").key_ring(), KeyRing)
    # ...and is refused anywhere else, as are the development internal tokens.
    with pytest.raises(ValidationError, match="ENCRYPTION_KEY is the development placeholder"):
        Settings(**{**STRONG, "encryption_key": DEV_ENCRYPTION_KEY})
    for token in ("internal_keys_token", "internal_balance_token"):
        with pytest.raises(ValidationError, match=token):
            Settings(**{k: v for k, v in STRONG.items() if k != token})
    assert Settings(**STRONG).environment == "production"


def test_development_placeholders_are_refused_off_loopback_whatever_the_environment() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(environment="development", host="0.0.0.0")
    assert "HOST=0.0.0.0 is not a loopback address" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        Settings(environment="development", host="0.0.0.0", encryption_key=ENCRYPTION_KEY_V1)
    for field in ("jwt_secret", "internal_keys_token", "internal_balance_token"):
        assert field in str(caught.value)
    with pytest.raises(ValidationError, match="ENCRYPTION_KEY is the development placeholder"):
        Settings(
            **{
                **STRONG,
                "environment": "development",
                "host": "0.0.0.0",
                "encryption_key": DEV_ENCRYPTION_KEY,
            }
        )
    assert Settings(**{**STRONG, "environment": "development", "host": "0.0.0.0"}).host == "0.0.0.0"


def test_previous_keys_are_checked_too() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            **{**STRONG, "environment": "development"},
            encryption_key_version=2,
            encryption_previous_keys={"1": "not-a-key"},
        )
    assert "ENCRYPTION_PREVIOUS_KEYS[1]" in str(caught.value) and "not-a-key" not in str(caught.value)
    with pytest.raises(ValidationError, match="names the current ENCRYPTION_KEY_VERSION with another key"):
        Settings(**STRONG, encryption_key_version=1, encryption_previous_keys={"1": ENCRYPTION_KEY_V2})
    ring = Settings(
        **{**STRONG, "encryption_key": ENCRYPTION_KEY_V2},
        encryption_key_version=2,
        encryption_previous_keys={"1": ENCRYPTION_KEY_V1},
    ).key_ring()
    assert ring.current_version == 2 and ring.versions == {1, 2}


@pytest.mark.parametrize("module", ["credentials", "credentials.rotate"])
def test_the_process_refuses_to_start_with_a_malformed_key(module: str) -> None:
    bad = "hunter2-is-not-a-32-byte-key-but-looks-secret"
    env = {
        **os.environ,
        "ENCRYPTION_KEY": bad,
        "ENVIRONMENT": "development",
        "DATABASE_URL": "sqlite+aiosqlite:///:memory:",
        "PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "ENCRYPTION_KEY" in result.stderr
    assert bad not in result.stderr and bad not in result.stdout


def test_the_balance_token_must_differ_from_the_keys_token_outside_development() -> None:
    with pytest.raises(ValidationError, match="INTERNAL_BALANCE_TOKEN and INTERNAL_KEYS_TOKEN must differ"):
        Settings(**{**STRONG, "internal_balance_token": KEYS_TOKEN})
    loopback_dev = {**STRONG, "environment": "development", "internal_balance_token": KEYS_TOKEN}
    assert Settings(**loopback_dev).environment == "development"
    with pytest.raises(ValidationError, match="must differ"):
        Settings(**{**loopback_dev, "host": "0.0.0.0"})
