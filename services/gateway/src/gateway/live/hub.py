"""The fan-out of one gateway replica: bus messages in, each user's open sockets out.

Per replica: a transient queue bound to `user.<id>.events` for each user with a socket open here (engine
events; `EventRoutes`), one bound to the bot lifecycle keys of `bots` (which tickers each connected user's bots trade) and one per needed price ticker (`PriceFeeds`).
Messages are turned into socket JSON once and appended to every socket of the user without waiting on any of
them. A periodic sweep closes sockets whose token was revoked (logout) or has expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from pydantic import ValidationError

from common import metrics
from common.bus import Bus, QueueKind, Subscription
from common.contracts.bots import BOTS_EXCHANGE, BotEvent, BotLifecycle
from common.contracts.envelope import Envelope
from common.contracts.events import EVENTS_EXCHANGE, UserEvents, user_of
from common.contracts.market import PriceTick
from common.errortracking import background_task
from common.security import RevocationList
from gateway.live.directory import BotsDirectory
from gateway.live.feeds import Pair, PriceFeeds
from gateway.live.routes import EventRoutes
from gateway.live.socket import GOING_AWAY, POLICY_VIOLATION, TRY_AGAIN_LATER, LiveSocket
from gateway.live.wire import event_texts, price_text

log = logging.getLogger(__name__)

# Bounds the replica's queue of user events if the gateway falls behind (the oldest are dropped).
EVENTS_QUEUE_MAX_LENGTH = 10_000
# Tokens per Redis round trip of a sweep (two keys each, pipelined).
SWEEP_BATCH = 200
INVALID_TOKEN = "INVALID_TOKEN"


@dataclass(frozen=True, slots=True)
class Caps:
    """Connection limits of one replica."""

    total: int
    per_user: int


@dataclass(eq=False)
class _User:
    sockets: set[LiveSocket] = field(default_factory=set)
    bots: dict[str, Pair] = field(default_factory=dict)
    # Deleted since the user's first socket connected: a bots lookup answered earlier must not revive them.
    gone: set[str] = field(default_factory=set)


class LiveHub:
    """Open sockets by user, and the bus subscriptions that feed them."""

    def __init__(
        self,
        bus: Bus,
        revocations: RevocationList,
        caps: Caps,
        *,
        directory: BotsDirectory | None = None,
        sweep_seconds: float = 5.0,
        redis_timeout_seconds: float = 0.5,
    ) -> None:
        self.bus = bus
        self._revocations = revocations
        self._caps = caps
        self._directory = directory
        self._sweep_seconds = sweep_seconds
        self._redis_timeout = redis_timeout_seconds
        self._users: dict[str, _User] = {}
        self._watchers: dict[Pair, set[str]] = {}
        self._count = 0
        self._prefix = f"gateway.ws.{uuid.uuid4().hex[:12]}"
        self.feeds = PriceFeeds(bus, self._prefix, self._on_tick)
        self.routes = EventRoutes(lambda user_id: user_id in self._users)
        self._releases: set[asyncio.Task[None]] = set()
        self._subscriptions: list[Subscription] = []
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        """Open sockets on this replica."""
        return self._count

    def sockets_of(self, user_id: str) -> int:
        """Open sockets of one user on this replica."""
        user = self._users.get(user_id)
        return len(user.sockets) if user else 0

    async def start(self) -> None:
        """Subscribe to user events and bot lifecycle messages; start the price feeds and the sweep."""
        events = await self.bus.subscribe(
            f"{self._prefix}.events",
            EVENTS_EXCHANGE,
            [],  # bound per connected user (EventRoutes)
            self._on_user_events,
            kind=QueueKind.TRANSIENT,
            prefetch=1,  # one at a time: a bot's events reach its sockets in order
            max_retries=1,
            max_length=EVENTS_QUEUE_MAX_LENGTH,
        )
        self.routes.attach(events)
        self._subscriptions.append(events)
        self._subscriptions.append(
            await self.bus.subscribe(
                f"{self._prefix}.bots",
                BOTS_EXCHANGE,
                [event.value for event in BotEvent],
                self._on_lifecycle,
                kind=QueueKind.TRANSIENT,
                prefetch=1,
                max_retries=1,
            )
        )
        self.feeds.start()
        self._sweeper = background_task(self._sweep_forever(), name="ws-revocation-sweep")

    async def close(self) -> None:
        """Tell every socket the server is going away and stop consuming."""
        for user in self._users.values():
            for socket in user.sockets:
                socket.kick(GOING_AWAY, "server shutting down")
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        releases, self._releases = list(self._releases), set()
        await asyncio.gather(*releases, return_exceptions=True)
        await self.feeds.close()
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(sub.cancel() for sub in subscriptions), return_exceptions=True)

    def admit(self, socket: LiveSocket) -> tuple[int, str] | None:
        """Register a socket; the close code and reason instead when a cap is reached."""
        if self._count >= self._caps.total:
            return TRY_AGAIN_LATER, "TOO_MANY_CONNECTIONS"
        user = self._users.get(socket.user_id)
        if user is not None and len(user.sockets) >= self._caps.per_user:
            return POLICY_VIOLATION, "TOO_MANY_CONNECTIONS"
        if user is None:
            user = self._users[socket.user_id] = _User()
        user.sockets.add(socket)
        self._count += 1
        metrics.GATEWAY_WS_CONNECTIONS.inc()
        return None

    def leave(self, socket: LiveSocket) -> None:
        """Forget a closed socket (and its user once no socket of theirs is left)."""
        user = self._users.get(socket.user_id)
        if user is None or socket not in user.sockets:
            return
        user.sockets.discard(socket)
        self._count -= 1
        metrics.GATEWAY_WS_CONNECTIONS.dec()
        if not user.sockets:
            self._set_bots(socket.user_id, {})
            del self._users[socket.user_id]
            release = asyncio.create_task(self.routes.release(socket.user_id), name="ws-events-unbind")
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)

    async def route(self, user_id: str) -> bool:
        """Bind the user's events to this replica before their socket is accepted; False if the bus refused."""
        try:
            await self.routes.ensure(user_id)
        except (
            Exception
        ) as exc:  # the bus is down or refused: the socket is turned away rather than left deaf
            log.warning("binding a user's live events failed: %s", type(exc).__name__)
            return False
        return True

    async def load_bots(self, user_id: str, token: str) -> None:
        """Learn which tickers the user's bots trade, from the bots service with the user's own token."""
        if self._directory is None:
            return
        found = await self._directory.bots(token)
        user = self._users.get(user_id)
        if found is None or user is None:
            return
        bots = dict(user.bots)
        for bot_id, pair in found.items():
            if bot_id not in user.gone:
                # A lifecycle message that arrived meanwhile is newer than this answer.
                bots.setdefault(bot_id, pair)
        self._set_bots(user_id, bots)

    def _set_bots(self, user_id: str, bots: dict[str, Pair]) -> None:
        user = self._users.get(user_id)
        if user is None:
            return
        before, after = set(user.bots.values()), set(bots.values())
        user.bots = bots
        for pair in before - after:
            watchers = self._watchers.get(pair)
            if watchers is not None:
                watchers.discard(user_id)
                if not watchers:
                    del self._watchers[pair]
        for pair in after - before:
            self._watchers.setdefault(pair, set()).add(user_id)
        if before != after:
            self.feeds.want(set(self._watchers))

    async def _on_user_events(self, envelope: Envelope) -> None:
        user_id = user_of(envelope.type)
        user = self._users.get(user_id) if user_id is not None else None
        if user is None:
            return  # nobody of that user is connected to this replica
        try:
            message = envelope.payload_as(UserEvents)
        except ValidationError:
            log.warning("unusable user events message %s", envelope.message_id)
            return
        if message.user_id != user_id:
            # The routing key and the payload disagree: never guess whose events these are.
            log.warning("user events message %s names another user than its key", envelope.message_id)
            return
        texts = event_texts(message.events, message.bot_id)
        for socket in list(user.sockets):
            for text in texts:
                socket.push(text)

    async def _on_lifecycle(self, envelope: Envelope) -> None:
        try:
            event = BotEvent(envelope.type)
            message = envelope.payload_as(BotLifecycle)
        except (ValueError, ValidationError):
            return  # bot.stopped and other keys carry no ticker
        user = self._users.get(message.user_id)
        if user is None:
            return
        bots = dict(user.bots)
        if event is BotEvent.DELETED:
            bots.pop(message.bot_id, None)
            user.gone.add(message.bot_id)
        else:
            bots[message.bot_id] = (message.exchange, message.ticker)
        self._set_bots(message.user_id, bots)

    def _on_tick(self, tick: PriceTick) -> None:
        pair = (tick.exchange, tick.ticker)
        watchers = self._watchers.get(pair)
        if not watchers:
            return
        text = price_text(tick)
        for user_id in watchers:
            for socket in self._users[user_id].sockets:
                socket.offer_price(pair, text)

    async def _sweep_forever(self) -> None:
        while True:
            # The sweep's cadence: it bounds how long a logged-out token keeps its sockets.
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.sweep()
                await self.routes.sweep()
            except Exception:  # one failed sweep must not end the sweeping
                log.exception("live socket sweep failed")

    async def sweep(self) -> None:
        """Close sockets whose token expired or was revoked."""
        now = time.time()
        by_token: dict[tuple[str, str], list[LiveSocket]] = {}
        for user in self._users.values():
            for socket in user.sockets:
                if socket.expires_at <= now:
                    socket.kick(POLICY_VIOLATION, INVALID_TOKEN)
                elif not socket.closing:
                    by_token.setdefault((socket.jti, socket.user_id), []).append(socket)
        tokens = list(by_token)
        for start in range(0, len(tokens), SWEEP_BATCH):
            batch = tokens[start : start + SWEEP_BATCH]
            try:
                async with asyncio.timeout(self._redis_timeout):
                    # One round trip for the batch: a read per socket, all at once, took a pooled
                    # connection each and held the event loop for tens of milliseconds every sweep.
                    refusals = await self._revocations.refusals(batch)
            except Exception as exc:
                # Open sockets stay open while Redis cannot answer (a logout cannot be written then either).
                log.warning("revocation sweep failed: %r", exc)
                return
            for token, refusal in zip(batch, refusals, strict=True):
                if refusal is not None:
                    for socket in by_token[token]:
                        socket.kick(POLICY_VIOLATION, refusal.value)
