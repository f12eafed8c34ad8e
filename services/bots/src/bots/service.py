"""Bot commands: create, change, start, stop, delete — each committed with its outbox message, then relayed."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots import commands
from bots.confirmations import StopConfirmations
from bots.credentials_client import CredentialsClient
from bots.markets import MarketCatalog, cached_price
from bots.repository import BotRepository
from bots.schemas import CreateBotRequest, UpdateBotRequest
from bots.views import ERROR_MESSAGES
from common.cache import Cache
from common.contracts.bots import BotEvent
from common.contracts.envelope import new_message_id
from common.contracts.grid import GridOptionSettings, check_options, precheck
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.exchanges import Exchange, parse_exchange
from common.grid import GridKind, GridPlan, MarketRules, plan_grid, validate_order_amount
from common.outbox import OutboxRelay, take_pending
from common.security import user_uuid
from trading.models import Bot, BotMode, BotStatus, GridLevel, LevelStatus, OrderSide, StopReason
from trading.partitions import new_bot_id

log = logging.getLogger(__name__)

STOP_UNCONFIRMED = "stop_unconfirmed"


async def owned_bot(
    repo: BotRepository, user: uuid.UUID, bot_id: uuid.UUID | None, *, for_update: bool = False
) -> Bot:
    """The user's (not deleted) bot, or BOT_NOT_FOUND: another user's bot is indistinguishable from none."""
    bot = None if bot_id is None else await repo.owned(user, bot_id, for_update=for_update)
    if bot is None:
        raise AppError(ErrorCode.BOT_NOT_FOUND)
    return bot


def level_rows(bot_id: uuid.UUID, prices: Sequence[Decimal]) -> list[GridLevel]:
    """The grid's level rows: level i is the buy level of slot i and the sell level of slot i−1.

    At construction the type is `buy` for every level that starts a slot and `sell` for the top one; the
    engine changes type, status and order id as the slots trade.
    """
    top = len(prices) - 1
    return [
        GridLevel(
            id=uuid.uuid4(),
            bot_id=bot_id,
            level_index=i,
            price=price,
            type=OrderSide.BUY.value if i < top else OrderSide.SELL.value,
            status=LevelStatus.AVAILABLE.value,
        )
        for i, price in enumerate(prices)
    ]


@dataclass(frozen=True)
class UpdateResult:
    """A changed bot and the fields PUT reports (by their field names in bots.responses.Updated)."""

    bot: Bot
    changed: dict[str, Any]


class BotService:
    """Every state change of a bot; reads live in bots.queries."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        catalog: MarketCatalog,
        cache: Cache,
        credentials: CredentialsClient,
        relay: OutboxRelay,
        confirmations: StopConfirmations,
        default_mode: BotMode,
        stop_timeout: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._factory = session_factory
        self._catalog = catalog
        self._cache = cache
        self._credentials = credentials
        self._relay = relay
        self._confirmations = confirmations
        self._default_mode = default_mode
        self._stop_timeout = stop_timeout
        self._clock = clock

    # --- helpers ----------------------------------------------------------------------------------------

    async def _rules(self, exchange: Exchange, ticker: str) -> MarketRules:
        return await self._catalog.rules(exchange, ticker)

    async def commit(self, session: AsyncSession) -> None:
        """Commit, then wake the relay if the transaction carried messages."""
        await session.commit()
        if take_pending(session):
            self._relay.nudge()

    async def check_funding(
        self,
        user_id: str,
        exchange: Exchange,
        ticker: str,
        rules: MarketRules,
        prices: Sequence[Decimal],
        order_amount: Decimal,
    ) -> None:
        """A live bot needs a valid credential and the quote for its initial buys (slots below the market)."""
        balance = await self._credentials.balance(user_id, exchange)
        if not balance.is_valid:
            raise AppError(ErrorCode.INVALID_CREDENTIALS, {"exchange": exchange.value})
        price = await cached_price(self._cache, exchange, ticker)
        if price is None:
            price = await self._catalog.last_price(exchange, ticker)
        need = initial_buy_cost(rules, prices, order_amount, price)
        if balance.free < need:
            raise AppError(
                ErrorCode.INSUFFICIENT_BALANCE,
                {"required": need, "available": balance.free, "currency": balance.currency},
            )

    # --- commands ---------------------------------------------------------------------------------------

    async def create(self, user_id: str, body: CreateBotRequest) -> Bot:
        """Validate, build the grid, check a live bot's funding, store it (and start it when asked)."""
        user = user_uuid(user_id)
        exchange = parse_exchange(body.exchange)
        ticker = body.market_ticker
        mode = BotMode(body.mode) if body.mode else self._default_mode
        # Cheap checks first: a bad range needs no exchange round trip.
        precheck(body.lower_price, body.upper_price, body.price_change_percent, body.order_amount)
        options = body.options
        check_options(body.lower_price, body.upper_price, options)
        rules = await self._rules(exchange, ticker)
        plan = plan_grid(
            body.lower_price,
            body.upper_price,
            body.price_change_percent,
            body.order_amount,
            rules,
            body.grid_type,
        )
        if mode is BotMode.LIVE:
            await self.check_funding(user_id, exchange, ticker, rules, plan.levels, body.order_amount)
        now = self._clock()
        bot = Bot(
            # Its market's partition: one engine replica drives the market's bots and alone takes its ticks.
            id=new_bot_id(exchange.value, ticker),
            user_id=user,
            exchange=exchange.value,
            ticker=ticker,
            mode=mode.value,
            grid_type=body.grid_type,
            lower_price=body.lower_price,
            upper_price=body.upper_price,
            price_change_percent=body.price_change_percent,
            grid_count=plan.grid_count,
            order_amount=body.order_amount,
            investment_amount=plan.investment_amount,
            stop_at_max=body.stop_at_max,
            **option_columns(options),
            # A trigger holds the bot until the engine sees the market trade through it.
            triggered=options.trigger_price is None,
            status=BotStatus.RUNNING.value if body.auto_start else BotStatus.STOPPED.value,
            market_rules=rules.to_dict(),
            config_version=1,
            created_at=now,
            updated_at=now,
            first_started_at=now if body.auto_start else None,
        )
        async with self._factory() as session:
            await BotRepository(session).add(bot, level_rows(bot.id, plan.levels))
            if body.auto_start:
                await commands.enqueue_command(session, bot, BotEvent.START, BotStatus.RUNNING.value)
            await self.commit(session)
        return bot

    async def update(self, user_id: str, bot_id: uuid.UUID | None, body: UpdateBotRequest) -> UpdateResult:
        """Change settings; grid geometry and most options only while stopped (the grid is rebuilt)."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            current = await owned_bot(BotRepository(session), user, bot_id)
        geometry = body.changes_geometry
        if body.needs_stopped_bot and current.status != BotStatus.STOPPED.value:
            raise AppError(ErrorCode.BOT_RUNNING)
        lower = body.lower_price if body.lower_price is not None else current.lower_price
        upper = body.upper_price if body.upper_price is not None else current.upper_price
        pct = (
            body.price_change_percent
            if body.price_change_percent is not None
            else current.price_change_percent
        )
        kind: GridKind = body.grid_type or cast(GridKind, current.grid_type)
        amount = body.order_amount if body.order_amount is not None else current.order_amount
        plan: GridPlan | None = None
        rules: MarketRules | None = None
        if geometry:
            precheck(lower, upper, pct, amount)
        if geometry or body.changes_options:
            # Cheap, before any exchange call; checked again under the lock against the row as it is then.
            check_options(lower, upper, merged_options(current, body))
        if geometry:
            # A rebuilt grid uses the exchange's rules of today, stored with it for the engine.
            rules = await self._rules(Exchange(current.exchange), current.ticker)
            plan = plan_grid(lower, upper, pct, amount, rules, kind)
        elif body.order_amount is not None:
            precheck(None, None, None, amount)
            async with self._factory() as session:
                prices = await BotRepository(session).level_prices(current.id)
            validate_order_amount(amount, prices, MarketRules.from_dict(current.market_rules))
        async with self._factory() as session:
            repo = BotRepository(session)
            bot = await owned_bot(repo, user, bot_id, for_update=True)
            if body.needs_stopped_bot and bot.status != BotStatus.STOPPED.value:
                raise AppError(ErrorCode.BOT_RUNNING)
            if geometry or body.changes_options:
                # A concurrent PUT may have changed the stored values since the first read.
                range_now = (lower, upper) if geometry else (bot.lower_price, bot.upper_price)
                check_options(*range_now, merged_options(bot, body))
            changed: dict[str, Any] = {}
            if body.order_amount is not None:
                bot.order_amount = amount
                changed["order_amount"] = amount
            if body.stop_at_max is not None:
                bot.stop_at_max = body.stop_at_max
                changed["stop_at_max"] = body.stop_at_max
            if plan is not None and rules is not None:
                bot.lower_price, bot.upper_price, bot.price_change_percent, bot.grid_type = (
                    lower,
                    upper,
                    pct,
                    kind,
                )
                bot.grid_count = plan.grid_count
                bot.market_rules = rules.to_dict()
                changed.update(lower_price=lower, upper_price=upper, price_change_percent=pct, grid_type=kind)
                await repo.replace_levels(bot.id, level_rows(bot.id, plan.levels))
            if plan is not None or body.order_amount is not None:
                bot.investment_amount = bot.grid_count * bot.order_amount
                changed.update(grid_count=bot.grid_count, investment_amount=bot.investment_amount)
            changed.update(apply_options(bot, body))
            bot.config_version += 1
            bot.updated_at = self._clock()
            await session.flush()
            await commands.enqueue_command(session, bot, BotEvent.UPDATED, bot.status)
            await self.commit(session)
        return UpdateResult(bot, changed)

    async def start(self, user_id: str, bot_id: uuid.UUID | None) -> Bot:
        """Start (idempotent); a live bot's credential and funding are checked first."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            repo = BotRepository(session)
            bot = await owned_bot(repo, user, bot_id)
            if _is_running(bot):
                return bot
            prices = await repo.level_prices(bot.id)
        if bot.mode == BotMode.LIVE.value:
            rules = MarketRules.from_dict(bot.market_rules)
            await self.check_funding(
                user_id, Exchange(bot.exchange), bot.ticker, rules, prices, bot.order_amount
            )
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user, bot_id, for_update=True)
            if _is_running(bot):
                return bot
            now = self._clock()
            bot.status = BotStatus.RUNNING.value
            bot.error_message = bot.error_code = bot.stop_reason = None
            bot.stop_command_id, bot.stop_requested_at = None, None
            bot.first_started_at = bot.first_started_at or now
            bot.updated_at = now
            await session.flush()
            await commands.enqueue_command(session, bot, BotEvent.START, BotStatus.RUNNING.value)
            await self.commit(session)
        return bot

    async def stop(self, user_id: str, bot_id: uuid.UUID | None) -> Bot:
        """Stop (idempotent): answers once the engine confirmed that no order is open, else error + 503."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user, bot_id, for_update=True)
            if bot.status == BotStatus.STOPPED.value:
                return bot
            command_id = await self.request_stop(session, bot)
        return await self.await_stop(user, bot.id, command_id)

    async def stop_all(self, user: uuid.UUID) -> int:
        """Stop every running bot of a user (an administrator disabled them); how many were stopped.

        Each stop is the user's own (its command, the engine's confirmation once no order is open); they
        run side by side, and a stop already pending is waited for rather than sent again.
        """
        pending: list[tuple[uuid.UUID, str]] = []
        async with self._factory() as session:
            repo = BotRepository(session)
            for bot in await repo.list_owned(user, None, None):
                if bot.status != BotStatus.RUNNING.value:
                    continue
                locked = await repo.owned(user, bot.id, for_update=True)
                if locked is None or locked.status != BotStatus.RUNNING.value:
                    continue
                command = locked.stop_command_id or await self.request_stop(session, locked, commit=False)
                pending.append((locked.id, command))
            await self.commit(session)
        results = await asyncio.gather(
            *(self.await_stop(user, bot_id, command) for bot_id, command in pending), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return len(pending)

    async def request_stop(
        self, session: AsyncSession, bot: Bot, status: str = BotStatus.STOPPED.value, *, commit: bool = True
    ) -> str:
        """Record a stop on a locked bot with its `bot.stop` command (committed unless told not to).

        The command tells the engine which status to commit once every open order is cancelled. The
        waiter is registered later, by `await_stop`: it looks at the row first, so a confirmation that
        came before it is seen there.
        """
        command_id = new_message_id()
        bot.stop_command_id = command_id
        bot.stop_requested_at = bot.updated_at = self._clock()
        await session.flush()
        await commands.enqueue_command(session, bot, BotEvent.STOP, status, command_id)
        if commit:
            await self.commit(session)
        return command_id

    def _stop_unconfirmed(self) -> dict[str, object]:
        """A bot's columns once its stop went unconfirmed: in error, with the cause the reads translate."""
        ko, _ = ERROR_MESSAGES[STOP_UNCONFIRMED]
        return {
            "status": BotStatus.ERROR.value,
            "stop_reason": StopReason.ERROR.value,
            "error_code": STOP_UNCONFIRMED,
            "error_message": ko,
            "updated_at": self._clock(),
        }

    async def await_stop(self, user: uuid.UUID, bot_id: uuid.UUID, command_id: str) -> Bot:
        """Wait for the engine's confirmation; on timeout put the bot in `error` and answer 503."""
        confirmed = await self._confirmations.wait(
            bot_id, command_id, BotStatus.STOPPED.value, self._stop_timeout
        )
        async with self._factory() as session:
            repo = BotRepository(session)
            if not confirmed:
                errored = await repo.change_if_stopping(bot_id, command_id, self._stop_unconfirmed())
                await session.commit()
                if errored:
                    log.error("engine did not confirm stop %s of bot %s", command_id, bot_id)
                    raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"reason": STOP_UNCONFIRMED})
            bot = await repo.owned_even_deleted(user, bot_id)
        if bot.status != BotStatus.STOPPED.value:
            # Confirmed for a command a later start superseded, or started again meanwhile: not stopped now.
            raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"reason": STOP_UNCONFIRMED})
        return bot

    async def sweep_abandoned_stops(self) -> int:
        """Put in `error` the stops nobody waits for any more (their process died mid-wait); how many.

        A waiter settles its own stop after one timeout; twice that without a confirmation means the
        process that asked is gone, and the bot must not keep showing `running` as if nothing happened.
        """
        cutoff = self._clock() - timedelta(seconds=2 * self._stop_timeout)
        async with self._factory() as session:
            swept = await BotRepository(session).change_stopping_since(cutoff, self._stop_unconfirmed())
            await session.commit()
        if swept:
            log.error("%d stop(s) were never confirmed by the engine; bots put in error", swept)
        return swept

    async def run_sweeper(self, every_seconds: float) -> None:
        """Sweep abandoned stops forever (a background task of the app)."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.sweep_abandoned_stops()
            except Exception as exc:  # the database may be down for a while; try again next round
                log.warning("sweeping abandoned stops failed: %s", type(exc).__name__)

    async def delete(self, user_id: str, bot_id: uuid.UUID | None) -> None:
        """Stop (same confirmation wait), then soft-delete: trades stay for audit, every route 404s."""
        await self.stop(user_id, bot_id)
        user = user_uuid(user_id)
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user, bot_id, for_update=True)
            if bot.status != BotStatus.STOPPED.value:
                raise AppError(ErrorCode.BOT_RUNNING)  # started again between the stop and now
            bot.deleted_at = bot.updated_at = self._clock()
            await session.flush()
            await commands.enqueue_command(session, bot, BotEvent.DELETED, BotStatus.STOPPED.value)
            await self.commit(session)


# The option fields, named as the bot's columns are.
OPTION_FIELDS = tuple(field.name for field in dataclasses.fields(GridOptionSettings))


def option_columns(options: GridOptionSettings) -> dict[str, Any]:
    """The bot columns of a set of options (the option fields are named as the columns are)."""
    return dataclasses.asdict(options)


def merged_options(bot: Bot, body: UpdateBotRequest) -> GridOptionSettings:
    """The bot's options once the body is applied: a field the body sets (or nulls) wins, else the row's.

    trailingUp false also clears a stored trailingUpLimit unless the body names the limit itself.
    """
    values = {name: getattr(bot, name) for name in OPTION_FIELDS}
    values.update({name: getattr(body, name) for name in body.changes_options})
    if body.trailing_up is False and "trailing_up_limit" not in body.changes_options:
        values["trailing_up_limit"] = None
    return GridOptionSettings(**values)


def apply_options(bot: Bot, body: UpdateBotRequest) -> dict[str, Any]:
    """Write the body's options on the (checked, locked) bot; the fields that changed, for PUT's answer."""
    changed: dict[str, Any] = {}
    merged = merged_options(bot, body)
    if merged.trigger_price != bot.trigger_price:
        # A new trigger price waits for the market anew; none: nothing to wait for. The same price sent
        # again keeps what the engine saw (it keeps a fired trigger whose price did not change).
        bot.triggered = merged.trigger_price is None
        changed["triggered"] = bot.triggered
    for name in OPTION_FIELDS:
        value = getattr(merged, name)
        if name in body.changes_options or value != getattr(bot, name):
            setattr(bot, name, value)
            changed[name] = value
    return changed


def _is_running(bot: Bot) -> bool:
    return bot.status == BotStatus.RUNNING.value and bot.stop_command_id is None


def initial_buy_cost(
    rules: MarketRules, prices: Sequence[Decimal], order_amount: Decimal, market: Decimal
) -> Decimal:
    """Quote the initial buys lock: every slot whose buy level is strictly below the market, fees included."""
    fee = Decimal(0) if rules.buy_fee_in_base else rules.buy_reserve_fee
    total = Decimal(0)
    for level in prices[:-1]:
        if level < market:
            qty = rules.buy_qty(order_amount, level)
            total += qty * level * (1 + fee)
    return total
