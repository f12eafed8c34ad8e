"""Which engine replica drives which bots: membership by heartbeat, partitions by rendezvous hashing bounded
by weight, and a fencing epoch per partition that every write of a bot's trading state checks (see
docs/engine.md).

Every replica runs `Ownership`: one row in `engine_replicas` it heartbeats (one UPDATE per round, not a
rewrite of every bot row), and a round loop that reads the replicas and the `engine_partitions` rows,
records the weight (bots driven) of the partitions it drives when it changed by enough, works out which
partitions the live set assigns to it (`engine.assignment.balanced`: rendezvous hashing's preferences, each
replica's load bounded near the mean, so the same live set and weights always give the same answer),
releases the ones it should no longer drive (after its runtime drained them) and claims the ones it should
(unowned, released, its own previous incarnation's, or a dead replica's), raising their epoch. A replica is
dead once its heartbeat is older than `ttl` by the database's clock. A claimed partition is loaded and
marked ready on its own, so the first partitions of a large takeover are driven while the rest still load.

Two rules keep one bot driven by one replica:
* the database: every batch takes the batch's partitions `FOR SHARE` with the epochs this replica claimed
  them at (`store.fence`), so a claim (which raises the epoch) waits for a batch in flight, and a batch of a
  replica that lost the partition fails;
* the exchange: a replica calls an exchange for a bot only while its last confirmed heartbeat is younger
  than `ttl - margin` (`authority`); nobody may claim its partitions before `ttl` has passed since that
  heartbeat, so a replica paused past it (GC, SIGSTOP, a network cut) never places or cancels again before
  it has learnt what it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common import errortracking
from common.dbtypes import utc_now
from common.errortracking import background_task
from engine.assignment import balanced, worth_recording
from trading.models import EnginePartition, EnginePartitionWeight, EngineReplica
from trading.partitions import partition_of

log = logging.getLogger(__name__)

Partitions = frozenset[int]
Change = Callable[[Partitions], Coroutine[Any, Any, None]]
# Loads the partitions' bots, calling `ready(partition)` as each one is loaded, reconciled and resumed.
Gain = Callable[[Partitions, Callable[[int], None]], Coroutine[Any, Any, None]]


class SupersededError(RuntimeError):
    """Another process started under this replica's name: this one must stop driving bots."""


@dataclass
class _Held:
    epoch: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Being handed over: queued work still commits under this epoch, nothing new is taken in.
    releasing: bool = False


class Ownership:
    """This replica's membership and partitions; `join()` then `start()`, `handover()` on a clean stop."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        replica_id: str,
        *,
        heartbeat_seconds: float,
        ttl_seconds: float,
        on_gained: Gain,
        on_lost: Change,
        on_superseded: Callable[[], Awaitable[None]],
        weigh: Callable[[], Mapping[int, int]] = dict,
    ) -> None:
        self._factory = factory
        self.replica_id = replica_id
        self.incarnation = uuid.uuid4().hex[:16]
        self.heartbeat_seconds = heartbeat_seconds
        self.ttl = ttl_seconds
        # Exchange calls stop this long before the others may take over (scheduling, clock rates).
        self.margin = min(1.0, ttl_seconds / 3)
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._on_superseded = on_superseded
        # Bots driven per partition (what this replica reports as the weights of the partitions it drives).
        self._weigh = weigh
        self.held: dict[int, _Held] = {}
        self._confirmed_at = float("-inf")
        self._confirmed = asyncio.Condition()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._round_lock = asyncio.Lock()
        # Loads and drains run beside the rounds: a long takeover (slow exchange, spent call budget) must
        # never delay the heartbeat, or the others would think this replica dead while it loads.
        self._transitions: set[asyncio.Task[None]] = set()
        self.rounds = 0
        # Partitions claimed, handed over on a rebalance, lost to another replica (exported as counters).
        self.changes = {"gained": 0, "handed_over": 0, "lost": 0}
        self._picture: tuple[object, ...] = ()

    # --- what the runtime asks ----------------------------------------------------------------------------

    def epoch(self, bot_id: uuid.UUID) -> int | None:
        """The epoch this replica holds the bot's partition at (loaded or loading), None when not its own."""
        held = self.held.get(partition_of(bot_id))
        return None if held is None else held.epoch

    def owns(self, bot_id: uuid.UUID) -> bool:
        """True when the bot's partition is this replica's, loaded and not being handed over."""
        held = self.held.get(partition_of(bot_id))
        return held is not None and held.ready.is_set() and not held.releasing

    async def ready(self, bot_id: uuid.UUID) -> bool:
        """Whether this replica drives the bot, once its partition finished loading (waits for that)."""
        held = self.held.get(partition_of(bot_id))
        if held is None:
            return False
        await held.ready.wait()
        return self.held.get(partition_of(bot_id)) is held and not held.releasing

    async def settled(self) -> None:
        """Wait until the loads and hand-overs under way are done."""
        while self._transitions:
            await asyncio.gather(*list(self._transitions), return_exceptions=True)

    def fence(self, bot_ids: Iterable[uuid.UUID]) -> dict[int, int]:
        """The (partition → epoch) pairs a batch touching these bots must find unchanged in the database."""
        pairs: dict[int, int] = {}
        for bot_id in bot_ids:
            partition = partition_of(bot_id)
            held = self.held.get(partition)
            if held is not None:
                pairs[partition] = held.epoch
        return pairs

    def confirmed(self) -> bool:
        """True while the last confirmed heartbeat is recent enough to act on the exchange."""
        return time.monotonic() < self.acting_until()

    def acting_until(self) -> float:
        """The monotonic time until which the last confirmed heartbeat lets this replica call an exchange."""
        return self._confirmed_at + self.ttl - self.margin

    async def authority(self, bot_id: uuid.UUID) -> bool:
        """Whether this replica may call an exchange for the bot now; waits (up to `ttl`) for a heartbeat
        when the last one is too old (a pause), and says no once the bot's partition is lost."""
        deadline = time.monotonic() + self.ttl
        while True:
            if self.epoch(bot_id) is None:
                return False
            if self.confirmed():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            async with self._confirmed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._confirmed.wait(), remaining)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions a write found fenced (another replica claimed them); the next round drains them."""
        for partition in partitions:
            self.held.pop(partition, None)

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def join(self) -> None:
        """Register this process under its name (superseding an earlier one) and take its first share."""
        async with self._factory() as session, session.begin():
            now = utc_now()
            values = {
                "replica_id": self.replica_id,
                "incarnation": self.incarnation,
                "heartbeat_at": now,
                "started_at": now,
                "stopping": False,
            }
            insert: Any = (
                postgresql.insert(EngineReplica)
                if session.get_bind().dialect.name == "postgresql"
                else sqlite.insert(EngineReplica)
            )
            stmt = insert.values(values)
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[EngineReplica.replica_id],
                    set_={
                        k: stmt.excluded[k] for k in ("incarnation", "heartbeat_at", "started_at", "stopping")
                    },
                )
            )
        log.info("engine replica %s joined (incarnation %s)", self.replica_id, self.incarnation)
        await self.run_round()
        self.start()
        await self.settled()

    def start(self) -> None:
        """Run rounds in the background."""
        if self._task is None:
            self._task = background_task(self._loop(), name="engine-ownership")

    async def stop(self) -> None:
        """Stop the rounds (what is held stays held until the heartbeat goes stale or `handover()`)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        """Stop the rounds and end the loads and hand-overs under way."""
        await self.stop()
        for transition in list(self._transitions):
            transition.cancel()
        await asyncio.gather(*list(self._transitions), return_exceptions=True)

    async def handover(self) -> None:
        """A clean stop: drain and release every partition now, so the others take them at once."""
        self._stopping = True
        await self.stop()
        try:
            await self.settled()
            await self.run_round()
            await self.settled()
        except Exception as exc:  # the others take over once the heartbeat is stale
            log.warning("handover of replica %s failed: %s", self.replica_id, type(exc).__name__)
            return
        async with self._factory() as session, session.begin():
            await session.execute(
                update(EngineReplica)
                .where(
                    EngineReplica.replica_id == self.replica_id, EngineReplica.incarnation == self.incarnation
                )
                .values(heartbeat_at=utc_now() - timedelta(seconds=self.ttl * 2))
            )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.run_round()
            except asyncio.CancelledError:
                raise
            except SupersededError:
                log.critical(
                    "engine replica %s was started again elsewhere (incarnation changed): this process stops "
                    "driving bots; ENGINE_ID must be unique among running engines",
                    self.replica_id,
                )
                lost = frozenset(self.held)
                self.held.clear()
                await self._on_lost(lost)
                await self._on_superseded()
                return
            except Exception as exc:  # the database is away: exchange calls pause once the heartbeat is old
                # The first line of the cause too: a lock timeout, a deadlock and a lost connection ask
                # for different things.
                cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1]
                log.warning(
                    "engine ownership round failed: %s %s",
                    type(exc).__name__,
                    cause[0][:200] if cause else "",
                )

    # --- one round --------------------------------------------------------------------------------------------

    async def run_round(self) -> None:
        """Heartbeat, then release what the live set assigns elsewhere and claim what it assigns here."""
        async with self._round_lock:
            await self._round()
            self.rounds += 1

    async def _round(self) -> None:
        began = time.monotonic()
        async with self._factory() as session, session.begin():
            postgres = session.get_bind().dialect.name == "postgresql"
            beat = await session.execute(
                update(EngineReplica)
                .where(
                    EngineReplica.replica_id == self.replica_id, EngineReplica.incarnation == self.incarnation
                )
                .values(heartbeat_at=func.now() if postgres else utc_now(), stopping=self._stopping)
                .returning(EngineReplica.replica_id)
            )
            if beat.first() is None:
                raise SupersededError(self.replica_id)
            cutoff = self._cutoff(postgres)
            members = (
                await session.execute(
                    select(EngineReplica.replica_id, EngineReplica.stopping).where(
                        EngineReplica.heartbeat_at > cutoff
                    )
                )
            ).all()
            rows = (
                await session.execute(
                    select(EnginePartition.partition, EnginePartition.owner, EnginePartition.epoch)
                )
            ).all()
            owners = {row.partition: (row.owner, int(row.epoch)) for row in rows}
            recorded = await session.execute(
                select(EnginePartitionWeight.partition, EnginePartitionWeight.weight)
            )
            weights = {int(partition): int(weight) for partition, weight in recorded}
            await self._record_weights(session, owners, weights)
        alive = {m.replica_id for m in members}
        live = {m.replica_id for m in members if not m.stopping}
        # Fenced: the database says another replica holds what this one thinks it holds. Forgotten before
        # the heartbeat counts as confirmed, so no exchange call waiting for it goes out for those bots.
        lost = frozenset(p for p, held in self.held.items() if owners.get(p) != (self.replica_id, held.epoch))
        for partition in lost:
            self.held.pop(partition, None)
        await self._confirm(began)
        if lost:
            self.changes["lost"] += len(lost)
            log.warning(
                "engine replica %s lost partitions %s to another replica", self.replica_id, sorted(lost)
            )
            self._spawn(self._on_lost(lost), "engine-drain-lost")
        assignment = balanced(weights, live, owners)
        wanted = set() if self._stopping else {p for p, r in assignment.items() if r == self.replica_id}
        release = frozenset(
            p
            for p, held in self.held.items()
            if p not in wanted and held.ready.is_set() and not held.releasing
        )
        if release:
            for partition in release:
                self.held[partition].releasing = True
            self._spawn(self._release(release), "engine-handover")
        # Recorded as this replica's but not held (a takeover that failed to load, a release whose UPDATE
        # failed, a previous incarnation's) and assigned elsewhere: nothing of them runs here, so they are
        # given up at once, or their assigned owner would wait for them for ever.
        orphans = {
            p: epoch
            for p, (owner, epoch) in owners.items()
            if owner == self.replica_id and p not in self.held and p not in wanted
        }
        if orphans:
            await self._give_up(orphans)
        claim = [
            p
            for p in wanted
            if p not in self.held
            and (owners[p][0] is None or owners[p][0] == self.replica_id or owners[p][0] not in alive)
        ]
        picture = (tuple(sorted(live)), len(wanted), len(self.held), len(claim))
        if picture != self._picture:
            self._picture = picture
            waiting = len([p for p in wanted if p not in self.held]) - len(claim)
            log.info(
                "engine replica %s: live %s, assigned %d partition(s), holds %d, claims %d, waits for %d",
                self.replica_id,
                ", ".join(sorted(live)),
                len(wanted),
                len(self.held),
                len(claim),
                waiting,
            )
        if claim:
            await self._claim(claim)

    async def _record_weights(
        self, session: AsyncSession, owners: dict[int, tuple[str | None, int]], weights: dict[int, int]
    ) -> None:
        """Write the bots driven in each partition this replica holds, loaded, when they changed by enough
        (`worth_recording`: a bot more or less must not move partitions), updating `weights` to match.

        In ascending order of partition (two replicas briefly writing one row lock in the same order); the
        weights' own rows, so no batch's fence waits for these writes."""
        counts = self._weigh()
        for partition, held in sorted(self.held.items()):
            if (
                not held.ready.is_set()
                or held.releasing
                or owners.get(partition) != (self.replica_id, held.epoch)
            ):
                continue
            count = counts.get(partition, 0)
            if not worth_recording(weights.get(partition, 0), count):
                continue
            await session.execute(
                update(EnginePartitionWeight)
                .where(EnginePartitionWeight.partition == partition)
                .values(weight=count, updated_at=utc_now())
            )
            weights[partition] = count

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._transitions.add(task)
        task.add_done_callback(self._transition_done)

    def _transition_done(self, task: asyncio.Task[None]) -> None:
        self._transitions.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("engine ownership change failed: %r", exc)
            errortracking.report(exc, task=task.get_name())

    def _cutoff(self, postgres: bool) -> Any:
        if postgres:
            return func.now() - timedelta(seconds=self.ttl)
        return utc_now() - timedelta(seconds=self.ttl)

    async def _confirm(self, began: float) -> None:
        self._confirmed_at = began
        async with self._confirmed:
            self._confirmed.notify_all()

    async def _release(self, partitions: Partitions) -> None:
        """Drain, then give the partitions up (unowned: their new owner claims them on its next round)."""
        epochs = {p: self.held[p].epoch for p in partitions if p in self.held}
        await self._on_lost(partitions)
        for partition in partitions:
            self.held.pop(partition, None)
        self.changes["handed_over"] += len(partitions)
        await self._give_up(epochs)
        log.info("engine replica %s handed over %d partition(s)", self.replica_id, len(partitions))

    async def _give_up(self, epochs: dict[int, int]) -> None:
        """Record partitions as unowned (only while this replica still owns them at those epochs)."""
        async with self._factory() as session, session.begin():
            for partition, epoch in epochs.items():
                await session.execute(
                    update(EnginePartition)
                    .where(
                        EnginePartition.partition == partition,
                        EnginePartition.owner == self.replica_id,
                        EnginePartition.epoch == epoch,
                    )
                    .values(owner=None, updated_at=utc_now())
                )

    async def _claim(self, partitions: list[int]) -> None:
        """Take partitions (raising their epochs), then have the runtime load and reconcile their bots."""
        async with self._factory() as session, session.begin():
            postgres = session.get_bind().dialect.name == "postgresql"
            if postgres:
                # A partition row held by a frozen batch must not stall the round (and the next heartbeat):
                # a quarter of the default TTL at most.
                await session.execute(text("SET LOCAL lock_timeout = '500ms'"))
            alive = select(EngineReplica.replica_id).where(
                EngineReplica.heartbeat_at > self._cutoff(postgres)
            )
            result = await session.execute(
                update(EnginePartition)
                .where(
                    EnginePartition.partition.in_(partitions),
                    or_(
                        EnginePartition.owner.is_(None),
                        EnginePartition.owner == self.replica_id,
                        and_(EnginePartition.owner.is_not(None), EnginePartition.owner.not_in(alive)),
                    ),
                )
                .values(owner=self.replica_id, epoch=EnginePartition.epoch + 1, updated_at=utc_now())
                .returning(EnginePartition.partition, EnginePartition.epoch)
            )
            claimed = {int(row.partition): int(row.epoch) for row in result}
        if not claimed:
            return
        for partition, epoch in claimed.items():
            self.held[partition] = _Held(epoch)
        self.changes["gained"] += len(claimed)
        gained = frozenset(claimed)
        log.info("engine replica %s took %d partition(s)", self.replica_id, len(gained))
        self._spawn(self._load(gained, {p: self.held[p] for p in gained}), "engine-takeover")

    async def _load(self, gained: Partitions, held: dict[int, _Held]) -> None:
        def ready(partition: int) -> None:
            # Driven from now on: its bots are loaded, reconciled and resumed (the others may still load).
            entry = held.get(partition)
            if entry is not None and self.held.get(partition) is entry:
                entry.ready.set()

        try:
            await self._on_gained(gained, ready)
        except BaseException:
            # Not loaded: the next round claims them again (a new epoch) and reloads, rather than half-driving.
            for partition, entry in held.items():
                if self.held.get(partition) is entry and not entry.ready.is_set():
                    self.held.pop(partition)
            raise
        for entry in held.values():
            entry.ready.set()
