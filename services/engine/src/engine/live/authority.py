"""Whether, and until when, this replica may call an exchange for a bot (engine.ownership behind it).

Asked right before every place and cancel, so a replica paused past its ownership sends nothing; and the
request itself is withheld once that authority has run out, however long it waited in ccxt's throttle after
the check (`live/client.py` ACT_DEADLINE). Unbound (no ownership: unit tests), everything may act.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator

from engine.live.client import ACT_DEADLINE


class Authority:
    """The ownership's answers as the live broker asks them."""

    def __init__(self) -> None:
        self._check: Callable[[uuid.UUID], Awaitable[bool]] | None = None
        self._until: Callable[[], float] | None = None

    def bind(self, check: Callable[[uuid.UUID], Awaitable[bool]], until: Callable[[], float]) -> None:
        """Ask these (Ownership.authority, Ownership.acting_until) from now on."""
        self._check, self._until = check, until

    async def may_act(self, bot_id: uuid.UUID) -> bool:
        """Whether this replica may place or cancel for the bot now."""
        return self._check is None or await self._check(bot_id)

    @contextlib.contextmanager
    def acting(self) -> Iterator[None]:
        """Requests sent inside are withheld once this replica's confirmed authority has run out."""
        token = ACT_DEADLINE.set(self._until() if self._until is not None else None)
        try:
            yield
        finally:
            ACT_DEADLINE.reset(token)
