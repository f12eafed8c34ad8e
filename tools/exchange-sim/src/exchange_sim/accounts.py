"""API keys and balances: one key pair works on both venues, each venue keeps its own wallet."""

from __future__ import annotations

import secrets
import string
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from exchange_sim.markets import VENUES, Venue

ZERO = Decimal(0)
_KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64
_NONCE_MEMORY = 50_000


class InsufficientBalanceError(Exception):
    """The free balance cannot cover what an order needs."""

    def __init__(self, asset: str) -> None:
        super().__init__(asset)
        self.asset = asset


@dataclass
class Balance:
    """Free and locked amounts of one asset."""

    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Wallet:
    """Balances of one account on one venue; the only place balances change."""

    balances: dict[str, Balance] = field(default_factory=dict)
    # Upbit shows the average KRW price paid for each coin held.
    avg_buy_price: dict[str, Decimal] = field(default_factory=dict)
    updated_ms: int = 0

    def get(self, asset: str) -> Balance:
        """The balance of an asset (created at zero on first use)."""
        return self.balances.setdefault(asset, Balance())

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move amount from free to locked, or raise InsufficientBalanceError."""
        balance = self.get(asset)
        if amount > balance.free:
            raise InsufficientBalanceError(asset)
        balance.free -= amount
        balance.locked += amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        """Move amount from locked back to free."""
        balance = self.get(asset)
        balance.locked -= amount
        balance.free += amount

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        """Remove amount from the locked balance (it left the account)."""
        self.get(asset).locked -= amount

    def spend_free(self, asset: str, amount: Decimal) -> None:
        """Remove amount from the free balance, or raise InsufficientBalanceError."""
        balance = self.get(asset)
        if amount > balance.free:
            raise InsufficientBalanceError(asset)
        balance.free -= amount

    def credit(self, asset: str, amount: Decimal) -> None:
        """Add amount to the free balance."""
        self.get(asset).free += amount

    def record_buy(self, asset: str, qty: Decimal, cost: Decimal, held_before: Decimal) -> None:
        """Update the average buy price after buying qty for cost (quote, fees included)."""
        previous = self.avg_buy_price.get(asset, ZERO)
        total = held_before + qty
        if total > 0:
            self.avg_buy_price[asset] = (previous * held_before + cost) / total


@dataclass
class Account:
    """A key pair and its wallets on each venue."""

    api_key: str
    secret_key: str
    created_ms: int
    wallets: dict[Venue, Wallet] = field(default_factory=dict)
    # Deleted by its owner: the key opens nothing any more, the account's orders live on.
    revoked: bool = False
    _nonces: deque[str] = field(default_factory=lambda: deque(maxlen=_NONCE_MEMORY))
    _nonce_set: set[str] = field(default_factory=set)

    def wallet(self, venue: Venue) -> Wallet:
        """This account's wallet on a venue."""
        return self.wallets.setdefault(venue, Wallet())

    def use_nonce(self, nonce: str) -> bool:
        """Remember a nonce; False when it was already used recently."""
        if nonce in self._nonce_set:
            return False
        if len(self._nonces) == self._nonces.maxlen:
            self._nonce_set.discard(self._nonces[0])
        self._nonces.append(nonce)
        self._nonce_set.add(nonce)
        return True


def new_key() -> str:
    """A random 64-character alphanumeric key (Binance's key format, accepted by Upbit too)."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(KEY_LENGTH))


class AccountStore:
    """Every account by API key."""

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}
        # Moves on every new account (what a saved copy of the simulator watches for).
        self.version = 0

    def create(
        self,
        balances: dict[str, Decimal],
        now_ms: int,
        api_key: str | None = None,
        secret_key: str | None = None,
    ) -> Account:
        """A new account holding the same starting balances on every venue."""
        key = api_key or new_key()
        if key in self._accounts:
            raise ValueError("apiKey already exists")
        account = Account(api_key=key, secret_key=secret_key or new_key(), created_ms=now_ms)
        for venue in VENUES:
            wallet = account.wallet(venue)
            wallet.updated_ms = now_ms
            for asset, amount in balances.items():
                wallet.get(asset).free = amount
        self._accounts[key] = account
        self.version += 1
        return account

    def get(self, api_key: str) -> Account | None:
        """The account of a key, if any (revoked or not: its orders and wallets live on)."""
        return self._accounts.get(api_key)

    def authenticate(self, api_key: str) -> Account | None:
        """The account a key opens: None for an unknown or revoked key."""
        account = self._accounts.get(api_key)
        return None if account is None or account.revoked else account

    def revoke(self, api_key: str) -> bool:
        """Refuse the key from now on, as an exchange does with a key its owner deleted; False if unknown.

        The account keeps its balances and resting orders (they still match), like a real account whose
        API key was deleted.
        """
        account = self._accounts.get(api_key)
        if account is None:
            return False
        account.revoked = True
        self.version += 1
        return True

    def all(self) -> list[Account]:
        """Every account, oldest first."""
        return list(self._accounts.values())
