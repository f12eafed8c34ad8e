"""Test support for the bots service: settings, the engine's part in the stop handshake, the credentials
contract served in-process, and seeding orders/trades the way the engine writes them.

Fixtures live in services/bots/tests/conftest.py; the pieces here are importable by other packages' tests
(e.g. end-to-end runs before the engine exists).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bots.settings import Settings
from common.bus import Bus, Envelope, QueueKind, Subscription
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.exchanges import sim_exchange_env
from common.testing.service import Backend as Backend
from common.testing.service import EnvelopeSink
from common.testing.service import User as User
from common.testing.service import error_code as error_code
from trading.commands import BOT_STOPPED, BotCommand, BotStopped
from trading.models import Bot, BotStatus, Order, OrderStatus, StopReason, Trade

JWT_SECRET = "bots-tests-jwt-secret-0123456789abcdef-0123456789abcdef-01234567"
# What the bots service presents to the credentials balance route, and what market-data presents to it.
BALANCE_TOKEN = "bots-tests-balance-token-0123456789abcdef-0123456789abcdef"
TICKERS_TOKEN = "bots-tests-tickers-token-0123456789abcdef-0123456789abcdef"


def make_settings(backend: Backend, sim_url: str, namespace: str, **overrides: Any) -> Settings:
    """Settings for one app under test: its namespaces, the simulator, quick timings."""
    values: dict[str, Any] = {key.lower(): value for key, value in sim_exchange_env(sim_url).items()}
    values.update(backend.values(namespace))
    values.update(
        jwt_secret=JWT_SECRET,
        internal_balance_token=BALANCE_TOKEN,
        internal_tickers_token=TICKERS_TOKEN,
        credentials_url="http://credentials.test",
        exchange_timeout_seconds=1.0,
        stop_confirm_timeout_seconds=10.0,
        outbox_poll_seconds=0.5,
    )
    values.update(overrides)
    return Settings(**values)


class FakeEngine:
    """Plays the engine's part of the stop handshake exactly as trading.commands describes it.

    On `bot.stop`: cancels the bot's open orders, commits the command's status where `stop_command_id`
    still names the command, then publishes `bot.stopped`. With `confirm=False` it hears the command and
    does nothing (an engine that is down or stuck).
    """

    QUEUE = "fake-engine.commands"

    def __init__(
        self, bus: Bus, session_factory: async_sessionmaker[AsyncSession], *, confirm: bool = True
    ) -> None:
        self.bus = bus
        self.factory = session_factory
        self.confirm = confirm
        self.commands = EnvelopeSink()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Bind a durable queue to every bot command."""
        self._subscription = await self.bus.subscribe(
            self.QUEUE,
            BOTS_EXCHANGE,
            [e.value for e in BotEvent],
            self._handle,
            kind=QueueKind.DURABLE,
            prefetch=1,
        )

    async def stop(self) -> None:
        """Stop consuming."""
        if self._subscription is not None:
            await self._subscription.cancel()

    async def _handle(self, envelope: Envelope) -> None:
        await self.commands.handle(envelope)
        if envelope.type != BotEvent.STOP.value or not self.confirm:
            return
        command = envelope.payload_as(BotCommand)
        bot_id = uuid.UUID(command.bot_id)
        async with self.factory() as session:
            await session.execute(
                update(Order)
                .where(
                    Order.bot_id == bot_id, Order.status.in_([OrderStatus.NEW.value, OrderStatus.OPEN.value])
                )
                .values(status=OrderStatus.CANCELED.value)
            )
            values: dict[str, Any] = {"status": command.status.value}
            if command.status.value == BotStatus.STOPPED.value:
                values.update(error_message=None, error_code=None, stop_reason=StopReason.USER.value)
            else:
                values.update(stop_reason=StopReason.ERROR.value)
            await session.execute(
                update(Bot)
                .where(Bot.id == bot_id, Bot.stop_command_id == command.command_id)
                .values(**values)
            )
            await session.commit()
        confirmation = BotStopped(
            bot_id=command.bot_id, config_version=command.config_version, command_id=command.command_id
        )
        await self.bus.publish(BOTS_EXCHANGE, BOT_STOPPED, confirmation)


@dataclass
class CredentialsContract:
    """The credentials service's internal balance route, as the bots service relies on it (contract test).

    `GET /internal/credentials/{user_id}/{exchange}/balance`, bearer INTERNAL_BALANCE_TOKEN → 200
    `{"success": true, "data": {"isValid", "currency", "free"}}`, or 404 CREDENTIAL_NOT_FOUND.
    """

    token: str
    accounts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    calls: int = 0

    def set(self, user_id: str, exchange: str, *, valid: bool = True, free: str = "1000000") -> None:
        """Give a user a credential on an exchange."""
        currency = "KRW" if exchange == "upbit" else "USDT"
        self.accounts[(user_id, exchange)] = {"isValid": valid, "currency": currency, "free": free}

    async def _balance(self, request: Request) -> JSONResponse:
        self.calls += 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"success": False, "error": {"code": "INVALID_TOKEN"}}, status_code=401)
        key = (request.path_params["user_id"], request.path_params["exchange"])
        account = self.accounts.get(key)
        if account is None:
            body = {"success": False, "error": {"code": "CREDENTIAL_NOT_FOUND", "message": "", "details": {}}}
            return JSONResponse(body, status_code=404)
        return JSONResponse({"success": True, "data": account})

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport serving this contract in-process (ConnectError while `down`)."""
        app = Starlette(routes=[Route("/internal/credentials/{user_id}/{exchange}/balance", self._balance)])
        inner = httpx.ASGITransport(app)
        contract = self

        class _Transport(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if contract.down:
                    raise httpx.ConnectError("credentials service down", request=request)
                return await inner.handle_async_request(request)

        return _Transport()


@dataclass(frozen=True)
class Fill:
    """One fill to seed: side, price, amount, fee (in `fee_currency`), profit (sells), time."""

    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    executed_at: datetime
    profit: Decimal | None = None
    exchange_order_id: str | None = None


async def seed_fills(
    factory: async_sessionmaker[AsyncSession], bot_id: str, exchange: str, fills: list[Fill]
) -> list[Order]:
    """Write one order and one trade per fill, as the engine records them (client order id first)."""
    orders: list[Order] = []
    async with factory() as session:
        for n, fill in enumerate(fills):
            order = Order(
                id=uuid.uuid4(),
                bot_id=uuid.UUID(bot_id),
                exchange=exchange,
                client_order_id=f"gb{bot_id.replace('-', '')[:12]}s{n % 7}c{n}",
                exchange_order_id=fill.exchange_order_id,
                slot=n % 7,
                side=fill.side,
                price=fill.price,
                quantity=fill.amount,
                filled_quantity=fill.amount,
                status=OrderStatus.FILLED.value,
            )
            session.add(order)
            await session.flush()
            session.add(
                Trade(
                    bot_id=order.bot_id,
                    order_id=order.id,
                    fill_id=f"fill-{n}",
                    side=fill.side,
                    price=fill.price,
                    amount=fill.amount,
                    total=fill.price * fill.amount,
                    fee=fill.fee,
                    fee_currency=fill.fee_currency,
                    profit=fill.profit,
                    executed_at=fill.executed_at,
                )
            )
            orders.append(order)
        await session.commit()
    return orders
