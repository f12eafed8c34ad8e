"""Authenticated encryption of secrets at rest: AES-256-GCM under a versioned key ring.

Every value is sealed with a fresh random 96-bit nonce and associated data (AAD) that names what the value
is (purpose, owner, exchange, field) and the key version, so a ciphertext copied onto another row, owner,
exchange or field, or relabelled with another version, fails authentication instead of decrypting.
A sealed value travels as one self-describing token `v<version>.<nonce b64url>.<ciphertext b64url>`.

Keys come from settings (`EncryptionSettings`): `ENCRYPTION_KEY` (32 bytes, base64 or hex) under version
`ENCRYPTION_KEY_VERSION`, plus `ENCRYPTION_PREVIOUS_KEYS` (`{"1": "<key>"}`) that are still accepted for
decryption while a rotation re-encrypts what they sealed. No error message ever quotes key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import DEV_ENCRYPTION_KEY, ServiceSettings

KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_MAGIC = b"gridbot.aead.v1"
_TOKEN = re.compile(r"^v([1-9][0-9]{0,8})\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")
_HEX = frozenset(string.hexdigits)
_KEY_HINT = (
    "32 random bytes encoded as base64 (44 characters) or hex (64 characters), e.g. "
    '`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`'
)
# Decoded key material that marks a key as a known placeholder (the repository's development key).
_PLACEHOLDER_KEY_MARKERS = (b"dev-only", b"insecure", b"change-me", b"changeme", b"placeholder")


class KeyRingError(ValueError):
    """The configured encryption keys are unusable (the message names the setting, never its value)."""


class DecryptionError(Exception):
    """A sealed value could not be opened: wrong owner/field/exchange, tampered, or an unknown key version."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """A value encrypted under one key version."""

    version: int
    nonce: bytes
    ciphertext: bytes

    def to_token(self) -> str:
        """The storable form `v<version>.<nonce>.<ciphertext>` (base64url without padding)."""
        return f"v{self.version}.{_b64(self.nonce)}.{_b64(self.ciphertext)}"

    @classmethod
    def from_token(cls, token: str) -> Sealed:
        """Parse a stored token; DecryptionError when it is not one."""
        match = _TOKEN.match(token)
        if match is None:
            raise DecryptionError("not a sealed token")
        try:
            nonce, ciphertext = _unb64(match.group(2)), _unb64(match.group(3))
        except (binascii.Error, ValueError):
            raise DecryptionError("not a sealed token") from None
        if len(nonce) != NONCE_BYTES or len(ciphertext) < 16:
            raise DecryptionError("not a sealed token")
        return cls(int(match.group(1)), nonce, ciphertext)

    def __repr__(self) -> str:
        return f"Sealed(version={self.version}, {len(self.ciphertext)} bytes)"


def aad(purpose: str, *parts: str) -> bytes:
    """Canonical associated data: each part length-prefixed, so ("ab", "c") never equals ("a", "bc")."""
    out = bytearray(_AAD_MAGIC)
    for part in (purpose, *parts):
        encoded = part.encode("utf-8")
        out += len(encoded).to_bytes(4, "big") + encoded
    return bytes(out)


def parse_key(value: str, name: str = "ENCRYPTION_KEY") -> bytes:
    """32 key bytes from base64 (standard or url-safe, padding optional) or hex; KeyRingError otherwise."""
    text = value.strip()
    if not text:
        raise KeyRingError(f"{name} is empty: it must be {_KEY_HINT}")
    if len(text) == 2 * KEY_BYTES and set(text) <= _HEX:
        return bytes.fromhex(text)
    try:
        normalised = text.replace("-", "+").replace("_", "/")
        decoded = base64.b64decode(normalised + "=" * (-len(normalised) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{name} is neither base64 nor hex: it must be {_KEY_HINT}") from None
    if len(decoded) != KEY_BYTES:
        raise KeyRingError(f"{name} decodes to {len(decoded)} bytes, not {KEY_BYTES}: it must be {_KEY_HINT}")
    return decoded


def generate_key() -> str:
    """A fresh random key in the form ENCRYPTION_KEY expects (base64)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def is_placeholder_key(key: bytes) -> bool:
    """True for the repository's development key or any key whose bytes spell a placeholder."""
    lowered = key.lower()
    return any(marker in lowered for marker in _PLACEHOLDER_KEY_MARKERS)


class KeyRing:
    """The current key (used to seal) and older versions (accepted to open) during a rotation."""

    def __init__(self, current_version: int, keys: Mapping[int, bytes]) -> None:
        if current_version not in keys:
            raise KeyRingError("the current key version has no key")
        for version, key in keys.items():
            if version < 1:
                raise KeyRingError("key versions are positive integers")
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"encryption key version {version} is not {KEY_BYTES} bytes")
        self.current_version = current_version
        self._ciphers = {version: AESGCM(key) for version, key in keys.items()}

    @classmethod
    def from_settings(cls, settings: EncryptionSettings) -> KeyRing:
        """Build from ENCRYPTION_KEY, ENCRYPTION_KEY_VERSION and ENCRYPTION_PREVIOUS_KEYS."""
        keys = {
            version: parse_key(secret.get_secret_value(), f"ENCRYPTION_PREVIOUS_KEYS[{version}]")
            for version, secret in settings.encryption_previous_keys.items()
        }
        current = parse_key(settings.encryption_key.get_secret_value())
        if settings.encryption_key_version in keys and keys[settings.encryption_key_version] != current:
            raise KeyRingError(
                "ENCRYPTION_PREVIOUS_KEYS names the current ENCRYPTION_KEY_VERSION with another key"
            )
        keys[settings.encryption_key_version] = current
        return cls(settings.encryption_key_version, keys)

    @property
    def versions(self) -> frozenset[int]:
        """Every key version this ring can open."""
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: str, associated_data: bytes) -> Sealed:
        """Seal `plaintext` under the current key with a fresh random nonce."""
        version = self.current_version
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[version].encrypt(
            nonce, plaintext.encode("utf-8"), _bind(version, associated_data)
        )
        return Sealed(version, nonce, ciphertext)

    def decrypt(self, sealed: Sealed, associated_data: bytes) -> str:
        """Open a sealed value; DecryptionError for any mismatch, tampering or unknown version."""
        cipher = self._ciphers.get(sealed.version)
        if cipher is None:
            raise DecryptionError(f"no key for version {sealed.version}")
        try:
            plaintext = cipher.decrypt(
                sealed.nonce, sealed.ciphertext, _bind(sealed.version, associated_data)
            )
        except InvalidTag:
            raise DecryptionError("authentication failed") from None
        return plaintext.decode("utf-8")

    def seal(self, plaintext: str, associated_data: bytes) -> str:
        """Encrypt to the storable token form."""
        return self.encrypt(plaintext, associated_data).to_token()

    def open(self, token: str, associated_data: bytes) -> str:
        """Decrypt a storable token."""
        return self.decrypt(Sealed.from_token(token), associated_data)

    def __repr__(self) -> str:
        return f"KeyRing(current_version={self.current_version}, versions={sorted(self._ciphers)})"


class EncryptionSettings(ServiceSettings):
    """A service that encrypts secrets at rest: credentials (exchange keys) and notifier (channel secrets), each
    deployed with a key of its own."""

    # Validation errors must never echo ENCRYPTION_KEY back (pydantic quotes inputs by default).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    encryption_key: SecretStr = SecretStr(DEV_ENCRYPTION_KEY)
    encryption_key_version: int = Field(default=1, ge=1, le=999_999_999)
    # Older keys still accepted for decryption during a rotation: {"1": "<base64 key>"}.
    encryption_previous_keys: dict[int, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_encryption_keys(self) -> Self:
        ring_keys = {"ENCRYPTION_KEY": self.encryption_key} | {
            f"ENCRYPTION_PREVIOUS_KEYS[{v}]": k for v, k in self.encryption_previous_keys.items()
        }
        for name, secret in ring_keys.items():
            key = parse_key(secret.get_secret_value(), name)
            if not self.accepts_dev_secrets and is_placeholder_key(key):
                why = self.dev_secrets_refused_because()
                raise KeyRingError(f"{name} is the development placeholder key, refused ({why})")
        KeyRing.from_settings(self)
        return self

    def key_ring(self) -> KeyRing:
        """The key ring these settings describe."""
        return KeyRing.from_settings(self)


def _bind(version: int, associated_data: bytes) -> bytes:
    # The version is authenticated too: relabelling a token with another version cannot succeed even
    # if two versions were ever configured with the same key.
    return version.to_bytes(4, "big") + associated_data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
