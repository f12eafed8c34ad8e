"""Sealing and opening a user's exchange keys: common.crypto with the credential's identity as AAD."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.crypto import KeyRing, Sealed, aad

PURPOSE = "gridbot.credentials"
MASK_PREFIX = "****_****_****-"


class SecretField(StrEnum):
    """Which secret of a credential a ciphertext holds (bound into its AAD)."""

    API_KEY = "api_key"
    SECRET_KEY = "secret_key"


@dataclass(frozen=True, slots=True)
class ExchangeKeys:
    """Plaintext keys, held in memory only while they are used; repr never shows them."""

    api_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"ExchangeKeys(api_key={mask(self.api_key)!r}, secret_key='****')"

    __str__ = __repr__

    @property
    def last4(self) -> str:
        """The last 4 characters of the API key (what reads show)."""
        return self.api_key[-4:]


@dataclass(frozen=True, slots=True)
class SealedKeys:
    """Both keys of a credential sealed under one key version."""

    api_key: str
    secret_key: str
    version: int


def mask(api_key: str) -> str:
    """The API key as every read shows it: `****_****_****-` and its last 4 characters."""
    return mask_last4(api_key[-4:])


def mask_last4(last4: str) -> str:
    """The mask built from stored last-4 characters."""
    return MASK_PREFIX + last4


def associated_data(user_id: str, exchange: str, field: SecretField) -> bytes:
    """AAD binding a ciphertext to its owner, exchange and field."""
    return aad(PURPOSE, user_id, exchange, field.value)


class CredentialVault:
    """Seals keys for storage and opens stored ones, under the service's key ring."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    @property
    def current_version(self) -> int:
        """The key version new ciphertexts are sealed under."""
        return self.ring.current_version

    def seal(self, user_id: str, exchange: str, keys: ExchangeKeys) -> SealedKeys:
        """Encrypt both keys of a credential with fresh nonces."""
        api = self.ring.encrypt(keys.api_key, associated_data(user_id, exchange, SecretField.API_KEY))
        secret = self.ring.encrypt(
            keys.secret_key, associated_data(user_id, exchange, SecretField.SECRET_KEY)
        )
        return SealedKeys(api.to_token(), secret.to_token(), api.version)

    def open(self, user_id: str, exchange: str, api_key: str, secret_key: str) -> ExchangeKeys:
        """Decrypt both stored tokens; DecryptionError when either does not belong to this row."""
        return ExchangeKeys(
            self.ring.open(api_key, associated_data(user_id, exchange, SecretField.API_KEY)),
            self.ring.open(secret_key, associated_data(user_id, exchange, SecretField.SECRET_KEY)),
        )

    @staticmethod
    def version_of(token: str) -> int:
        """The key version a stored token is sealed under."""
        return Sealed.from_token(token).version
