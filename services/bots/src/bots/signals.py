"""TradingView signals: a secret URL per bot whose POSTs start or stop it through the user's own commands.

The token is the only credential of the signal route (TradingView cannot send a bearer token), so it is
32 random bytes, shown once, kept only as its SHA-256 (looked up by equality on the hash: no comparison
ever runs over the secret, and a database leak gives no usable URL) and never logged (common.logging masks
the path). Each bot has at most one: issuing a new one replaces the old in the same row.

A signal for a known token is counted against that token's budget (a window of a minute from the first
signal, in the shared cache), refused when the bot's owner is disabled, then handed to BotService.start or
stop exactly as the owner's own route does. Every one of them is recorded with its outcome.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.repository import BotRepository
from bots.service import BotService, owned_bot
from common.cache import Cache, CacheError
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.schemas import validation_error
from common.security import RevocationList, user_uuid
from trading.models import Bot, Signal, SignalToken

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
SIGNAL_PATH = "/api/signals/tradingview"
ACTIONS = ("start", "stop")
OK = "ok"
# The budget's window: a minute from a token's first signal in it.
WINDOW_SECONDS = 60
# TradingView's alert message is short; anything longer is not a signal.
MAX_BODY_BYTES = 1024


def hash_token(token: str) -> str:
    """The stored form of a signal token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_action(body: bytes, content_type: str | None) -> str | None:
    """`start` or `stop` from `{"action": …}` (JSON) or the bare word (TradingView's plain-text message);
    None when the body says neither."""
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    is_json = (content_type or "").split(";", 1)[0].strip().lower() == "application/json"
    if is_json or text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        value = parsed.get("action") if isinstance(parsed, dict) else None
        if not isinstance(value, str):
            return None
        text = value.strip()
    word = text.lower()
    return word if word in ACTIONS else None


class SignalService:
    """Issues signal tokens, acts on signals, and lists what was received."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        bots: BotService,
        cache: Cache,
        revocations: RevocationList,
        public_api_url: str,
        per_minute: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._factory = session_factory
        self._bots = bots
        self._cache = cache
        self._revocations = revocations
        self._base_url = public_api_url.rstrip("/")
        self._per_minute = per_minute
        self._clock = clock

    def url(self, token: str) -> str:
        """The URL TradingView is given: PUBLIC_API_URL + the signal path + the token."""
        return f"{self._base_url}{SIGNAL_PATH}/{token}"

    async def issue(self, user_id: str, bot_id: uuid.UUID | None) -> str:
        """A new token for the user's bot; the bot's previous token stops working in the same commit."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        async with self._factory() as session:
            # Locked: two concurrent issues for one bot replace one another, never both insert.
            bot = await owned_bot(BotRepository(session), user_uuid(user_id), bot_id, for_update=True)
            await session.execute(delete(SignalToken).where(SignalToken.bot_id == bot.id))
            session.add(SignalToken(bot_id=bot.id, token_hash=hash_token(token), created_at=self._clock()))
            await session.commit()
        return token

    async def _bot_of(self, token_hash: str) -> Bot | None:
        async with self._factory() as session:
            query = (
                select(Bot)
                .join(SignalToken, SignalToken.bot_id == Bot.id)
                .where(SignalToken.token_hash == token_hash, Bot.deleted_at.is_(None))
            )
            return (await session.execute(query)).scalar_one_or_none()

    async def _record(
        self, bot_id: uuid.UUID, action: str | None, outcome: str, client_ip: str | None
    ) -> None:
        async with self._factory() as session:
            session.add(
                Signal(
                    bot_id=bot_id,
                    received_at=self._clock(),
                    action=action,
                    outcome=outcome,
                    client_ip=client_ip[:64] if client_ip else None,
                )
            )
            await session.commit()

    async def _admit(self, token_hash: str, user_id: str) -> None:
        """Count the signal against its token's budget and check its owner; AppError when refused."""
        try:
            count = await self._cache.incr(f"signal-rate:{token_hash}", ttl_seconds=WINDOW_SECONDS)
            disabled = await self._revocations.is_disabled(user_id)
        except CacheError:
            # Closed, as the gateway is on a revocation check: we cannot tell whether the owner is disabled.
            raise AppError(ErrorCode.SERVICE_UNAVAILABLE, {"service": "redis"}) from None
        if count > self._per_minute:
            raise AppError(ErrorCode.RATE_LIMIT_EXCEEDED, headers={"Retry-After": str(WINDOW_SECONDS)})
        if disabled:
            raise AppError(ErrorCode.ACCOUNT_DISABLED)

    async def receive(self, token: str, action: str | None, client_ip: str | None) -> tuple[str, Bot]:
        """Act on one signal as the bot's owner would; (action, bot) once done, else AppError — recorded."""
        token_hash = hash_token(token)
        bot = await self._bot_of(token_hash)
        if bot is None:
            raise AppError(ErrorCode.NOT_FOUND)
        owner = str(bot.user_id)
        try:
            await self._admit(token_hash, owner)
            if action is None:
                raise validation_error("action", 'must be start or stop (JSON {"action": …} or the word)')
            if action == "start":
                done = await self._bots.start(owner, bot.id)
            else:
                done = await self._bots.stop(owner, bot.id)
        except AppError as exc:
            await self._record(bot.id, action, exc.code.value, client_ip)
            raise
        try:
            await self._record(bot.id, action, OK, client_ip)
        except Exception as exc:  # the bot did start/stop: say so rather than answer 500 for the record
            log.warning("signal for bot %s done but not recorded: %s", bot.id, type(exc).__name__)
        return action, done

    async def history(
        self, user_id: str, bot_id: uuid.UUID | None, limit: int, offset: int
    ) -> tuple[int, list[Signal]]:
        """How many signals the user's bot received, and one page of them, newest first."""
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user_uuid(user_id), bot_id)
            total = int(
                await session.scalar(select(func.count()).select_from(Signal).where(Signal.bot_id == bot.id))
                or 0
            )
            rows = await session.execute(
                select(Signal)
                .where(Signal.bot_id == bot.id)
                .order_by(Signal.received_at.desc(), Signal.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return total, list(rows.scalars())
