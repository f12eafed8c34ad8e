"""Password hashing with bcrypt, off the event loop, with equal timing for unknown users."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

import bcrypt


def _prehash(password: str) -> bytes:
    """The bytes bcrypt actually sees: base64(SHA-256(UTF-8 password)), always 44 ASCII bytes.

    bcrypt only reads the first 72 bytes of its input (and bcrypt 5 raises beyond that), and a
    128-character password can be 512 UTF-8 bytes. Hashing first keeps every character
    significant, so two passwords sharing a 72-byte prefix still differ. Base64 rather than the raw
    digest because some bcrypt implementations stop at a NUL byte, which a raw digest may contain.
    """
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


class PasswordHasher:
    """Hashes and checks passwords at a fixed bcrypt cost."""

    def __init__(self, rounds: int, dummy_hash: bytes) -> None:
        self._rounds = rounds
        self._dummy_hash = dummy_hash

    @classmethod
    async def create(cls, rounds: int) -> PasswordHasher:
        """A hasher whose dummy hash (for unknown users) costs exactly what a real one does."""
        dummy = await asyncio.to_thread(
            bcrypt.hashpw, _prehash(secrets.token_urlsafe(32)), bcrypt.gensalt(rounds)
        )
        return cls(rounds, dummy)

    @property
    def rounds(self) -> int:
        """The bcrypt cost factor of new hashes."""
        return self._rounds

    async def hash(self, password: str) -> str:
        """A bcrypt hash of the password (in a worker thread: ~0.25 s at cost 12)."""
        hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(password), bcrypt.gensalt(self._rounds))
        return hashed.decode("ascii")

    async def verify(self, password: str, hashed: str | None) -> bool:
        """True when it matches; with no hash (unknown user) it spends the same time and says no."""
        candidate = _prehash(password)
        if hashed is None:
            # Burn the same bcrypt work as a real check so timing does not reveal unknown emails.
            await asyncio.to_thread(bcrypt.checkpw, candidate, self._dummy_hash)
            return False
        try:
            return await asyncio.to_thread(bcrypt.checkpw, candidate, hashed.encode("ascii"))
        except ValueError:
            # A corrupt stored hash is a failed login, not a crash.
            return False
