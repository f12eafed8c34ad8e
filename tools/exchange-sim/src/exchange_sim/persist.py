"""The simulator's accounts, balances and orders kept in a file, so that a restart resumes where it stopped.

Off unless SIM_STATE_FILE names a file (the one-process mode keeps it next to its SQLite file). What is
kept: every account (keys, whether revoked, wallets on both venues), every order with its fills (open ones go
back on the book), the id counters, which markets are pinned and every market's last price, and where the
replay was.
Public history (candles, trades, 24 h stats) is rebuilt from the replay as at any start.

Writes are atomic (a temporary file, fsync, then rename over the old one): a crash leaves the previous
snapshot or the new one, never a torn file. A snapshot is written shortly after anything changed
(`SAVE_DELAY_SECONDS`) and once more at shutdown; a process killed outright loses at most that delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from exchange_sim.accounts import Account, Balance
from exchange_sim.markets import VENUES, Venue
from exchange_sim.orders import Fill, Order, OrderType, Side, Status, TimeInForce
from exchange_sim.state import SimState

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SAVE_DELAY_SECONDS = 0.2
_ORDER_DECIMALS = (
    "price",
    "orig_qty",
    "quote_order_qty",
    "executed_qty",
    "cumulative_quote",
    "fees_paid",
    "locked_amount",
    "reserved_fee",
)
_FILL_DECIMALS = ("price", "qty", "quote_qty", "fee")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _account(account: Account) -> dict[str, Any]:
    return {
        "apiKey": account.api_key,
        "secretKey": account.secret_key,
        "createdMs": account.created_ms,
        "revoked": account.revoked,
        "wallets": {
            venue: {
                "balances": {a: [str(b.free), str(b.locked)] for a, b in wallet.balances.items()},
                "avgBuyPrice": {a: str(p) for a, p in wallet.avg_buy_price.items()},
                "updatedMs": wallet.updated_ms,
            }
            for venue, wallet in account.wallets.items()
        },
    }


def _order(order: Order) -> dict[str, Any]:
    row = {f.name: getattr(order, f.name) for f in dataclasses.fields(order) if f.name != "fills"}
    for name in _ORDER_DECIMALS:
        row[name] = _text(row[name])
    for name in ("side", "type", "time_in_force", "status"):
        row[name] = row[name].value
    row["fills"] = [_fill(fill) for fill in order.fills]
    return row


def _fill(fill: Fill) -> dict[str, Any]:
    row = {f.name: getattr(fill, f.name) for f in dataclasses.fields(fill)}
    for name in _FILL_DECIMALS:
        row[name] = _text(row[name])
    return row


def snapshot(state: SimState) -> dict[str, Any]:
    """Everything a restart needs, as JSON-ready data (taken without awaiting: one consistent instant)."""
    return {
        "version": FORMAT_VERSION,
        "accounts": [_account(account) for account in state.accounts.all()],
        "venues": {
            venue: {
                "counters": engine.counters(),
                "pinned": sorted(engine.pinned),
                "lastPrices": {symbol: str(data.last_price) for symbol, data in engine.data.items()},
                "orders": [_order(order) for order in engine.orders.values()],
            }
            for venue, engine in state.engines.items()
        },
        "replay": {
            "candleIndex": state.replayer.candle_index,
            "tickInCandle": state.replayer.tick_in_candle,
            "marketsFed": state.replayer.markets_fed,
        },
    }


def _load_order(venue: Venue, row: dict[str, Any]) -> Order:
    values = dict(row)
    for name in _ORDER_DECIMALS:
        values[name] = _decimal(values[name])
    values["side"], values["type"] = Side(values["side"]), OrderType(values["type"])
    values["time_in_force"], values["status"] = TimeInForce(values["time_in_force"]), Status(values["status"])
    values["venue"] = venue
    fills = []
    for fill in values.pop("fills"):
        fill = dict(fill)
        for name in _FILL_DECIMALS:
            fill[name] = _decimal(fill[name])
        fills.append(Fill(**fill))
    return Order(**values, fills=fills)


def restore(state: SimState, data: dict[str, Any]) -> None:
    """Put a snapshot back into a freshly built simulator (before it serves anything)."""
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown state file version {data.get('version')!r}")
    for row in data["accounts"]:
        account = state.accounts.create({}, int(row["createdMs"]), row["apiKey"], row["secretKey"])
        account.revoked = bool(row.get("revoked", False))
        account.wallets.clear()
        for venue, saved in row["wallets"].items():
            wallet = account.wallet(venue)
            wallet.balances = {
                a: Balance(Decimal(f), Decimal(lk)) for a, (f, lk) in saved["balances"].items()
            }
            wallet.avg_buy_price = {a: Decimal(p) for a, p in saved["avgBuyPrice"].items()}
            wallet.updated_ms = int(saved["updatedMs"])
    for venue in VENUES:
        saved_venue = data["venues"].get(venue)
        if saved_venue is None:
            continue
        engine = state.engines[venue]
        for symbol, price in saved_venue["lastPrices"].items():
            if symbol in engine.data:
                engine.data[symbol].last_price = Decimal(price)
        engine.pinned.update(s for s in saved_venue["pinned"] if s in engine.markets)
        engine.restore([_load_order(venue, row) for row in saved_venue["orders"]], saved_venue["counters"])
    replay = data["replay"]
    # A candle is replayed from its first tick: a half-replayed one starts over at the next. Never from inside
    # a history that grew since (SIM_HISTORY_MINUTES raised): the replay goes on after its last minute.
    started = int(replay["tickInCandle"]) or int(replay.get("marketsFed", 0))
    resumed = int(replay["candleIndex"]) + (1 if started else 0)
    state.replayer.candle_index = max(resumed, state.replayer.history_minutes)


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload`: a temporary file in the same folder, fsynced, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # The rename itself survives a power loss once the folder is synced too.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load(state: SimState, path: Path) -> bool:
    """Restore `path` into `state` when it exists; True when something was restored."""
    if not path.is_file():
        return False
    try:
        restore(state, json.loads(path.read_bytes()))
    except (ValueError, KeyError, TypeError) as exc:
        # Unreadable (another version, edited by hand): kept aside for a look, and the simulator starts empty.
        aside = path.with_name(path.name + ".unreadable")
        os.replace(path, aside)
        log.error(
            "exchange simulator state %s unreadable (%s); moved to %s, starting empty", path, exc, aside
        )
        return False
    log.info("exchange simulator state restored from %s (%d accounts)", path, len(state.accounts.all()))
    return True


class Persister:
    """Writes a snapshot shortly after every change, and a last one when stopped."""

    def __init__(self, state: SimState, path: Path, delay: float = SAVE_DELAY_SECONDS) -> None:
        self.state = state
        self.path = path
        self.delay = delay
        self.saves = 0
        self._saved: tuple[object, ...] | None = None

    def _version(self) -> tuple[object, ...]:
        # Every order or balance change moves an engine's execution counter; accounts count theirs; a
        # pinned market's price moves by hand only (the replay's prices are not worth a write each tick).
        engines = self.state.engines.values()
        return (
            self.state.accounts.version,
            *(engine.counters()["nextExecutionId"] for engine in engines),
            *(tuple((s, engine.data[s].last_price) for s in sorted(engine.pinned)) for engine in engines),
        )

    async def save(self, *, force: bool = False) -> None:
        """Write a snapshot now when anything changed since the last one (or anyway, with `force`)."""
        version = self._version()
        if version == self._saved and not force:
            return
        payload = json.dumps(snapshot(self.state), separators=(",", ":")).encode()
        await asyncio.to_thread(write_atomically, self.path, payload)
        self._saved = version
        self.saves += 1

    async def run(self) -> None:
        """Save after changes until cancelled."""
        self._saved = self._version()
        while True:
            await asyncio.sleep(self.delay)
            try:
                await self.save()
            except OSError:
                log.exception("cannot write the exchange simulator state to %s", self.path)
