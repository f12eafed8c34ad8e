"""Keys that change under a live bot: `credential.deleted` / `credential.updated` against the simulator.

The credentials service's part is played by the stub (its internal keys route) and by publishing the
event it relays from its outbox after the change committed.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from engine_support import BotFactory, BotSpec, CredentialsStub, EventSink, orders_of, publish_command
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import Envelope, QueueKind, RabbitBus
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.contracts.credentials import CREDENTIALS_EXCHANGE, CredentialEvent
from common.exchanges import Exchange
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from trading.commands import BOT_STOPPED
from trading.models import Bot, InboxMessage

D = Decimal
SYMBOL = "BTCUSDT"
QUEUE = "engine.credential-events"
RESTING = ("NEW", "PARTIALLY_FILLED")


def spec(user_id: uuid.UUID) -> BotSpec:
    """BTCUSDT 90,000–110,000 at 1 %, 20 USDT an order: from 95,000, six buys rest (L0–L5)."""
    return BotSpec(
        exchange="binance",
        ticker=SYMBOL,
        lower=D(90_000),
        upper=D(110_000),
        percent=D(1),
        amount=D(20),
        mode="live",
        user_id=user_id,
    )


async def new_account(http: httpx.AsyncClient) -> tuple[str, str]:
    """A fresh simulator account's keys."""
    body = (await http.post("/_sim/accounts", json={"balances": {"USDT": "10000"}})).json()
    return body["apiKey"], body["secretKey"]


async def set_price(http: httpx.AsyncClient, price: str) -> None:
    """A trade at this price on the simulator's BTCUSDT, pinned there."""
    response = await http.put(f"/_sim/prices/binance/{SYMBOL}", json={"price": price})
    assert response.status_code == 200, response.text


async def sim_orders(http: httpx.AsyncClient, api_key: str) -> list[dict[str, Any]]:
    """Every order of the account at the simulator."""
    response = await http.get("/_sim/orders", params={"apiKey": api_key, "exchange": "binance"})
    assert response.status_code == 200
    orders: list[dict[str, Any]] = response.json()
    return orders


async def resting(http: httpx.AsyncClient, api_key: str) -> list[dict[str, Any]]:
    """The account's orders resting on the book."""
    return [o for o in await sim_orders(http, api_key) if o["status"] in RESTING]


async def user_streams(http: httpx.AsyncClient, api_key: str) -> int:
    """Open private connections of the key at the simulator."""
    response = await http.get("/_sim/user-streams", params={"apiKey": api_key})
    assert response.status_code == 200
    return sum(int(row["connections"]) for row in response.json())


async def publish_key_event(
    bus: RabbitBus, kind: str, user_id: uuid.UUID, message_id: str | None = None
) -> Envelope:
    """What the credentials service relays after a PUT (updated) or DELETE (deleted) committed."""
    reason = "deleted_by_user" if kind == "credential.deleted" else "updated_by_user"
    event = CredentialEvent(user_id=str(user_id), exchange=Exchange.BINANCE, reason=reason)
    return await bus.publish(CREDENTIALS_EXCHANGE, kind, event, message_id=message_id)


async def handled(db: async_sessionmaker[AsyncSession], message_id: str) -> bool:
    """The engine recorded the credential event as handled (its last step)."""
    async with db() as session:
        found = await session.execute(
            select(InboxMessage.id).where(
                InboxMessage.consumer.startswith(QUEUE), InboxMessage.message_id == message_id
            )
        )
        return found.first() is not None


class Scene:
    """One user's live Binance bot under an engine, with the simulator and the credentials stub."""

    def __init__(
        self,
        bus: RabbitBus,
        bots: BotFactory,
        credentials: CredentialsStub,
        http: httpx.AsyncClient,
        db: async_sessionmaker[AsyncSession],
    ) -> None:
        self.bus, self.bots, self.credentials, self.http, self.db = bus, bots, credentials, http, db
        self.user = uuid.uuid4()

    async def keys(self) -> str:
        """New simulator keys stored as the user's credential; the API key."""
        api_key, secret = await new_account(self.http)
        self.credentials.set(self.user, "binance", api_key, secret)
        return api_key

    def delete_keys(self) -> None:
        """The credentials service no longer has the user's keys."""
        del self.credentials.keys[(str(self.user), "binance")]

    async def running_bot(self, api_key: str) -> Bot:
        """A started bot whose six buys rest at the exchange, its private stream open."""
        bot = await self.bots.create(spec(self.user))
        await publish_command(self.bus, bot, BotEvent.START)
        await self.wait_resting(api_key, 6)
        await eventually(lambda: self.streams_are(api_key, 1), timeout=10, message="no private stream")
        return bot

    async def wait_resting(self, api_key: str, count: int) -> None:
        """Until exactly `count` orders of the account rest at the exchange."""

        async def done() -> bool:
            return len(await resting(self.http, api_key)) == count

        await eventually(done, timeout=20, message=f"{count} orders never rested on {api_key}")

    async def streams_are(self, api_key: str, count: int) -> bool:
        """Whether the key has exactly `count` open private connections."""
        return await user_streams(self.http, api_key) == count

    async def wait_status(self, bot_id: uuid.UUID, status: str) -> Bot:
        """Until the bot's row shows the status; the row."""

        async def reached() -> bool:
            return (await self.bots.bot(bot_id)).status == status

        await eventually(reached, timeout=20, message=f"bot never {status}")
        return await self.bots.bot(bot_id)

    async def wait_handled(self, message_id: str) -> None:
        """Until the engine finished the credential event."""
        await eventually(lambda: handled(self.db, message_id), timeout=20, message="event never handled")


def scene(
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> Scene:
    """The test's scene."""
    return Scene(bus, bots, credentials, sim_http, db)


async def test_deleted_keys_stop_a_running_bot_after_cancelling_its_orders_with_the_old_client(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    events: EventSink,
) -> None:
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory()
    s = scene(bus, bots, credentials, sim_http, db)
    api_key = await s.keys()
    bot = await s.running_bot(api_key)

    s.delete_keys()  # gone from the credentials service: only the engine's client can still reach them
    sent = await publish_key_event(bus, "credential.deleted", s.user)
    row = await s.wait_status(bot.id, "stopped")
    assert row.stop_reason == "credentialRemoved" and row.error_message is None
    assert await resting(sim_http, api_key) == []
    assert {o.status for o in await orders_of(db, bot.id)} == {"canceled"}
    await eventually(lambda: s.streams_are(api_key, 0), timeout=10, message="the private stream stayed open")
    await s.wait_handled(sent.message_id)
    assert engine.live is not None and engine.live.held_client((str(s.user), Exchange.BINANCE)) is None
    # The status events arrive in order: the start's `running` first, the stop's last.
    await eventually(lambda: _last_status(events, bot.id) == "stopped", timeout=10)
    last = events.of("bot_status", bot.id)[-1]
    assert (last["status"], last["stopReason"]) == ("stopped", "credentialRemoved")

    # New keys, the bot started again; the same message redelivered changes nothing.
    other = await s.keys()
    await bots.request_start(bot.id)
    await publish_command(bus, await bots.bot(bot.id), BotEvent.START)
    await s.wait_resting(other, 6)
    await publish_key_event(bus, "credential.deleted", s.user, message_id=sent.message_id)
    later = await publish_key_event(bus, "credential.updated", uuid.uuid4())  # behind it on the queue
    await s.wait_handled(later.message_id)
    row = await bots.bot(bot.id)
    assert row.status == "running" and row.stop_reason is None
    assert len(await resting(sim_http, other)) == 6


async def test_deleted_keys_without_a_client_stop_the_bot_and_name_the_orders_left_open(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")
    first: EngineRuntime = await engine_factory()
    s = scene(bus, bots, credentials, sim_http, db)
    api_key = await s.keys()
    bot = await s.running_bot(api_key)
    await first.stop()
    # Deleted while no engine ran: the next one never gets to build a client with them.
    s.delete_keys()
    await engine_factory()
    sent = await publish_key_event(bus, "credential.deleted", s.user)
    row = await s.wait_status(bot.id, "stopped")
    await s.wait_handled(sent.message_id)
    assert row.stop_reason == "credentialRemoved"
    left = await resting(sim_http, api_key)
    assert len(left) == 6  # nobody could cancel them: the user must, and is told which
    assert row.error_message is not None and "6 order(s)" in row.error_message
    for order in left:
        assert order["clientOrderId"] in row.error_message and order["orderId"] in row.error_message
    async with db() as session:
        shown = await session.execute(select(Bot.status, Bot.stop_reason).where(Bot.id == bot.id))
        assert shown.one() == ("stopped", "credentialRemoved")


async def test_keys_of_another_account_are_used_from_the_next_start_only(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")
    await engine_factory()
    s = scene(bus, bots, credentials, sim_http, db)
    old = await s.keys()
    bot = await s.running_bot(old)
    stopping = await bots.request_stop(bot.id)
    await publish_command(bus, stopping, BotEvent.STOP, "stopped")
    row = await s.wait_status(bot.id, "stopped")
    assert row.stop_reason == "user"
    placed_on_old = len(await sim_orders(sim_http, old))

    new = await s.keys()  # PUT /credentials with another account's keys
    sent = await publish_key_event(bus, "credential.updated", s.user)
    await eventually(lambda: s.streams_are(old, 0), timeout=10, message="the old keys' stream stayed open")
    await s.wait_handled(sent.message_id)
    await bots.request_start(bot.id)
    await publish_command(bus, await bots.bot(bot.id), BotEvent.START)
    await s.wait_resting(new, 6)
    assert len(await sim_orders(sim_http, old)) == placed_on_old and await resting(sim_http, old) == []
    await eventually(lambda: s.streams_are(new, 1), timeout=10)
    assert (await bots.bot(bot.id)).stop_reason is None


async def test_keys_of_another_account_stop_a_running_bot_whose_orders_only_the_old_keys_reach(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")
    await engine_factory()
    s = scene(bus, bots, credentials, sim_http, db)
    old = await s.keys()
    bot = await s.running_bot(old)
    new = await s.keys()
    await publish_key_event(bus, "credential.updated", s.user)
    row = await s.wait_status(bot.id, "stopped")
    assert row.stop_reason == "credentialRemoved"
    assert row.error_message is not None and "another account" in row.error_message
    assert await resting(sim_http, old) == [] and await sim_orders(sim_http, new) == []
    await eventually(lambda: s.streams_are(old, 0), timeout=10, message="the old keys' stream stayed open")


async def test_new_keys_of_the_same_account_keep_a_running_bot_trading(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await set_price(sim_http, "95000")
    engine: EngineRuntime = await engine_factory()
    s = scene(bus, bots, credentials, sim_http, db)
    api_key = await s.keys()
    bot = await s.running_bot(api_key)
    assert engine.live is not None
    key = (str(s.user), Exchange.BINANCE)
    before = engine.live.held_client(key)
    # The simulator mints one key pair per account: "new keys of the same account" are the same pair here.
    sent = await publish_key_event(bus, "credential.updated", s.user)
    await s.wait_handled(sent.message_id)
    assert engine.live.held_client(key) is not before
    row = await bots.bot(bot.id)
    assert row.status == "running" and row.stop_reason is None
    assert len(await resting(sim_http, api_key)) == 6
    # It trades on: the highest buy fills, and its sell goes to the exchange through a new client.
    levels = sorted(D(o["price"]) for o in await resting(sim_http, api_key))
    await set_price(sim_http, str(levels[-1] - D("0.01")))

    async def sold_up() -> bool:
        return [o["side"] for o in await resting(sim_http, api_key)].count("SELL") == 1

    await eventually(sold_up, timeout=20, message="the filled buy's sell never rested")
    assert engine.live.held_client(key) not in (None, before)


async def test_deleted_keys_settle_a_stop_on_its_way_and_the_bot_keeps_why_it_stopped(
    engine_factory: Any,
    bus: RabbitBus,
    bots: BotFactory,
    credentials: CredentialsStub,
    sim_http: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    confirmations = EventSink()
    await bus.subscribe(
        "test.bots", BOTS_EXCHANGE, [BOT_STOPPED], confirmations.handle, kind=QueueKind.DURABLE
    )
    await set_price(sim_http, "95000")
    await engine_factory()
    s = scene(bus, bots, credentials, sim_http, db)
    api_key = await s.keys()
    bot = await s.running_bot(api_key)
    stopping = await bots.request_stop(bot.id)  # the user's stop, committed; its command not relayed yet
    s.delete_keys()
    await publish_key_event(bus, "credential.deleted", s.user)
    row = await s.wait_status(bot.id, "stopped")
    assert row.stop_reason == "credentialRemoved" and await resting(sim_http, api_key) == []
    # The pending stop is settled (the bots service's wait ends) by the halt the deletion caused.
    await eventually(lambda: len(confirmations.received) == 1, timeout=10)
    assert confirmations.received[0].payload["command_id"] == stopping.stop_command_id
    command = await publish_command(bus, stopping, BotEvent.STOP, "stopped")
    await eventually(lambda: len(confirmations.received) == 2, timeout=10, message="the stop was never heard")
    assert command.message_id == stopping.stop_command_id
    row = await bots.bot(bot.id)
    assert (row.status, row.stop_reason) == ("stopped", "credentialRemoved")


def _last_status(events: EventSink, bot_id: uuid.UUID) -> str | None:
    told = events.of("bot_status", bot_id)
    return str(told[-1]["status"]) if told else None
