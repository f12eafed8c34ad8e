"""Which users' events reach this replica: its events queue is bound to `user.<id>.events` while a socket of
that user is open here, and to nothing else.

A wildcard binding would make every replica take every engine event (a fill of any bot of any user) and drop
all but its connected users' in its event loop, the one that also serves HTTP: a burst of fills across
thousands of bots would then stall requests. Bound per user, RabbitMQ drops the rest before they leave it.

A socket is accepted only once its user's key is bound, so no event published after the handshake is lost.
Binds and unbinds run one at a time under one lock, and an unbind is decided under it, so a user connecting
while their last socket's unbind is in flight is bound again before being told the socket is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from common.bus import Subscription
from common.contracts.events import user_events_key

log = logging.getLogger(__name__)


class EventRoutes:
    """The per-user bindings of one replica's events subscription."""

    def __init__(self, connected: Callable[[str], bool]) -> None:
        self._connected = connected
        self._subscription: Subscription | None = None
        self._bound: set[str] = set()
        self._lock = asyncio.Lock()

    @property
    def bound(self) -> frozenset[str]:
        """Users whose events this replica takes now."""
        return frozenset(self._bound)

    def attach(self, subscription: Subscription) -> None:
        """The events subscription (created without bindings) the routes are kept on."""
        self._subscription = subscription

    async def ensure(self, user_id: str) -> None:
        """Bind the user's events (raises the bus's error when it cannot)."""
        if user_id in self._bound and not self._lock.locked():
            return  # a second socket of a bound user: the common case, without waiting on the lock
        async with self._lock:
            if user_id in self._bound:
                return
            if self._subscription is None:
                raise RuntimeError("live events are not subscribed")
            await self._subscription.bind(user_events_key(user_id))
            self._bound.add(user_id)

    async def release(self, user_id: str) -> None:
        """Unbind the user's events unless a socket of theirs is open again (a failure is left to `sweep`)."""
        async with self._lock:
            await self._unbind(user_id)

    async def sweep(self) -> None:
        """Unbind every bound user without a socket here (retries unbinds that failed)."""
        async with self._lock:
            for user_id in list(self._bound):
                await self._unbind(user_id)

    async def _unbind(self, user_id: str) -> None:
        if user_id not in self._bound or self._connected(user_id) or self._subscription is None:
            return
        try:
            await self._subscription.unbind(user_events_key(user_id))
        except Exception as exc:  # kept bound (only costs the drop of their events here); swept again later
            log.warning("unbinding a user's live events failed: %s", type(exc).__name__)
            return
        self._bound.discard(user_id)
