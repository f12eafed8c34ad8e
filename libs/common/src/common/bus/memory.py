"""In-process bus for the embedded one-process mode, with the RabbitMQ adapter's semantics."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from common import errortracking, metrics
from common.bus.port import (
    DEFAULT_TRANSIENT_MAX_LENGTH,
    Bus,
    BusError,
    Handler,
    QueueDepth,
    QueueKind,
    Subscription,
    TopologyMismatchError,
)
from common.bus.support import (
    backoff_delay,
    check_subscribe_args,
    decode,
    invoke,
    log_failure,
    quarantined,
    topic_matches,
)
from common.contracts.envelope import Envelope
from common.errortracking import background_task

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Delivery:
    body: bytes
    routing_key: str
    message_id: str | None
    failures: int = 0


@dataclass(eq=False)
class _Queue:
    name: str
    kind: QueueKind
    max_retries: int
    max_length: int | None
    items: deque[_Delivery] = field(default_factory=deque)
    dead: list[_Delivery] = field(default_factory=list)
    bindings: set[tuple[str, str]] = field(default_factory=set)
    subscriptions: set[_MemorySubscription] = field(default_factory=set)
    nonempty: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, delivery: _Delivery, exchange: str) -> None:
        self.items.append(delivery)
        if self.max_length is not None and len(self.items) > self.max_length:
            dropped = self.items.popleft()
            # Like a quorum queue with a DLX: a durable overflow is dead-lettered, never lost.
            if self.kind is QueueKind.DURABLE:
                self.dead.append(dropped)
                metrics.BUS_DEAD_LETTERED.labels(exchange).inc()
            else:
                metrics.BUS_DROPPED.labels(exchange).inc()
        self.nonempty.set()

    def put_back(self, delivery: _Delivery) -> None:
        self.items.appendleft(delivery)
        self.nonempty.set()

    async def take(self, subscription: _MemorySubscription) -> _Delivery | None:
        while True:
            if subscription.stopping:
                return None
            if self.items:
                return self.items.popleft()
            self.nonempty.clear()
            await self.nonempty.wait()


class _MemorySubscription(Subscription):
    def __init__(
        self, bus: InMemoryBus, queue: _Queue, exchange: str, handler: Handler, prefetch: int
    ) -> None:
        self.queue = queue.name
        self._bus = bus
        self._queue = queue
        self._exchange = exchange
        self._handler = handler
        self.stopping = False
        # Metrics children resolved once: the exchange's name without the namespace.
        label = exchange.removeprefix(f"{bus.namespace}.") if bus.namespace else exchange
        self._consumed = metrics.BUS_CONSUMED.labels(label)
        self._redelivered = metrics.BUS_REDELIVERED.labels(label)
        self._dead_lettered = metrics.BUS_DEAD_LETTERED.labels(label)
        self._dropped = metrics.BUS_DROPPED.labels(label)
        self._tasks = [
            background_task(self._worker(), name=f"bus-consumer:{queue.name}:{i}") for i in range(prefetch)
        ]

    async def cancel(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self._queue.nonempty.set()  # wake idle workers so they see `stopping`
        _, pending = await asyncio.wait(self._tasks, timeout=self._bus.cancel_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._bus._detach(self)

    async def bind(self, key: str) -> None:
        self._queue.bindings.add((self._exchange, key))

    async def unbind(self, key: str) -> None:
        self._queue.bindings.discard((self._exchange, key))

    async def _worker(self) -> None:
        queue = self._queue
        while True:
            delivery = await queue.take(self)
            if delivery is None:
                return
            try:
                await self._process(delivery)
            except asyncio.CancelledError:
                # An unacked message goes back, as when a broker channel closes mid-handler.
                queue.put_back(delivery)
                raise
            except Exception as exc:  # not the handler's (retried, dead-lettered): the bus's own
                log.exception("memory bus consumer of %s failed", queue.name)
                errortracking.report(exc, queue=queue.name)
            # Yield between messages so competing consumers take turns, as a broker round-robins.
            await asyncio.sleep(0)

    async def _process(self, delivery: _Delivery) -> None:
        queue = self._queue
        self._consumed.inc()
        if delivery.failures:
            self._redelivered.inc()
        envelope = decode(delivery.body)
        if envelope is None:
            log.warning(
                "not an envelope on %s (routing_key=%s message_id=%s)",
                queue.name,
                delivery.routing_key,
                delivery.message_id,
            )
            if queue.kind is QueueKind.DURABLE:
                queue.dead.append(delivery)
                self._dead_lettered.inc()
            else:
                self._dropped.inc()
            return
        if queue.kind is QueueKind.TRANSIENT:
            await self._process_transient(envelope)
            return
        try:
            await invoke(self._handler, envelope, queue.name)
        except Exception:
            delivery.failures += 1
            log_failure(queue.name, envelope, delivery.failures, queue.max_retries)
            if delivery.failures >= queue.max_retries:
                queue.dead.append(delivery)
                self._dead_lettered.inc()
                return
            await asyncio.sleep(self._bus.backoff(delivery.failures))
            queue.put_back(delivery)

    async def _process_transient(self, envelope: Envelope) -> None:
        queue = self._queue
        for attempt in range(1, queue.max_retries + 1):
            try:
                await invoke(self._handler, envelope, queue.name)
                return
            except Exception:
                log_failure(queue.name, envelope, attempt, queue.max_retries)
                if attempt < queue.max_retries:
                    await asyncio.sleep(self._bus.backoff(attempt))
        self._dropped.inc()


class InMemoryBus(Bus):
    """Topic exchanges and queues in this process (embedded mode; nothing survives a restart)."""

    def __init__(
        self,
        namespace: str = "",
        *,
        retry_backoff: float = 0.2,
        max_backoff: float = 5.0,
        transient_max_length: int = DEFAULT_TRANSIENT_MAX_LENGTH,
        cancel_grace: float = 10.0,
    ) -> None:
        super().__init__(namespace)
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.transient_max_length = transient_max_length
        self.cancel_grace = cancel_grace
        self._exchanges: set[str] = set()
        self._queues: dict[str, _Queue] = {}
        self._subscriptions: set[_MemorySubscription] = set()
        self._started = False

    def backoff(self, failures: int) -> float:
        """Delay before redelivering after the n-th failure."""
        return backoff_delay(failures, self.retry_backoff, self.max_backoff)

    async def start(self) -> None:
        """Nothing to connect to; marks the bus usable."""
        self._started = True

    async def close(self) -> None:
        """Cancel every subscription; queued messages are discarded with the bus."""
        await asyncio.gather(*(sub.cancel() for sub in list(self._subscriptions)))
        self._started = False

    async def ping(self) -> bool:
        """True once started."""
        return self._started

    async def _send(
        self, exchange: str, routing_key: str, envelope: Envelope, body: bytes, *, persistent: bool
    ) -> None:
        """Route the envelope to every matching queue at once (the 'confirm' is immediate)."""
        await self.publish_raw(exchange, routing_key, body, envelope.message_id)

    async def publish_raw(
        self, exchange: str, routing_key: str, body: bytes, message_id: str | None = None
    ) -> None:
        """Route a body as is (tests and bridges; consumers dead-letter non-envelopes)."""
        self._require_started()
        name = self.full_name(exchange)
        self._exchanges.add(name)
        for queue in self._queues.values():
            # One copy per queue, however many of its bindings match (as RabbitMQ does).
            if any(ex == name and topic_matches(key, routing_key) for ex, key in queue.bindings):
                queue.put(_Delivery(body, routing_key, message_id), exchange)
        metrics.bus_published(exchange).inc()

    async def declare(
        self,
        queue: str,
        exchange: str,
        binding_keys: Sequence[str],
        *,
        max_retries: int = 5,
        max_length: int | None = None,
    ) -> None:
        """Declare and bind a durable queue; its messages wait for a subscriber."""
        self._require_started()
        check_subscribe_args(1, max_retries, max_length)
        self._queue(queue, QueueKind.DURABLE, max_retries, max_length).bindings.update(
            (self.full_name(exchange), key) for key in binding_keys
        )
        self._exchanges.add(self.full_name(exchange))

    def _queue(self, queue: str, kind: QueueKind, max_retries: int, max_length: int | None) -> _Queue:
        name = self.full_name(queue)
        declared = self._queues.get(name)
        if declared is None:
            declared = _Queue(name, kind, max_retries, max_length)
            self._queues[name] = declared
        elif (declared.kind, declared.max_retries, declared.max_length) != (kind, max_retries, max_length):
            raise TopologyMismatchError(f"queue {name} exists with other properties")
        return declared

    async def subscribe(
        self,
        queue: str,
        exchange: str,
        binding_keys: Sequence[str],
        handler: Handler,
        *,
        kind: QueueKind = QueueKind.DURABLE,
        prefetch: int = 16,
        max_retries: int = 5,
        max_length: int | None = None,
    ) -> Subscription:
        """Declare and bind the queue, then start `prefetch` consumer tasks on it."""
        self._require_started()
        check_subscribe_args(prefetch, max_retries, max_length)
        if kind is QueueKind.TRANSIENT and max_length is None:
            max_length = self.transient_max_length
        declared = self._queue(queue, kind, max_retries, max_length)
        exchange_name = self.full_name(exchange)
        self._exchanges.add(exchange_name)
        declared.bindings.update((exchange_name, key) for key in binding_keys)
        subscription = _MemorySubscription(self, declared, exchange_name, handler, prefetch)
        declared.subscriptions.add(subscription)
        self._subscriptions.add(subscription)
        return subscription

    async def depths(self, queues: Sequence[str]) -> dict[str, QueueDepth | None]:
        """Messages waiting in each queue and dead-lettered from it."""
        found: dict[str, QueueDepth | None] = {}
        for queue in queues:
            declared = self._queues.get(self.full_name(queue))
            found[queue] = None if declared is None else QueueDepth(len(declared.items), len(declared.dead))
        return found

    async def dead_letters(self, queue: str) -> list[Envelope]:
        """The messages dead-lettered from `queue`, oldest first (they stay there)."""
        declared = self._queues.get(self.full_name(queue))
        if declared is None:
            return []
        return [quarantined(d.body, d.routing_key, d.message_id) for d in declared.dead]

    def _detach(self, subscription: _MemorySubscription) -> None:
        self._subscriptions.discard(subscription)
        queue = self._queues.get(subscription.queue)
        if queue is None:
            return
        queue.subscriptions.discard(subscription)
        # A transient queue is auto-delete: it goes with its last consumer.
        if queue.kind is QueueKind.TRANSIENT and not queue.subscriptions:
            del self._queues[queue.name]

    def _require_started(self) -> None:
        if not self._started:
            raise BusError("InMemoryBus.start() was not awaited")
