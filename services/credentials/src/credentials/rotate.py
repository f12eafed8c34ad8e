"""Re-encrypt every credential under the current key version: `python -m credentials.rotate`.

Rotation procedure: generate a new key; deploy with ENCRYPTION_KEY=<new>, ENCRYPTION_KEY_VERSION=<n+1> and
ENCRYPTION_PREVIOUS_KEYS={"<n>": "<old>"}; run this command; once it reports 0 remaining, drop the old
key from ENCRYPTION_PREVIOUS_KEYS. Each batch is its own transaction, so an interrupted run loses nothing
and a rerun continues where it stopped. Plaintext exists only in this process's memory, one row at a time;
only counts are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.crypto import DecryptionError
from common.db import create_engine, create_session_factory
from credentials.models import SCHEMA, Credential
from credentials.vault import CredentialVault, ExchangeKeys

log = logging.getLogger(__name__)


class MissingKeyVersionsError(Exception):
    """Rows are sealed under versions the key ring does not hold (nothing was changed)."""

    def __init__(self, versions: Sequence[int]) -> None:
        super().__init__(
            "credentials are sealed under key versions "
            f"{', '.join(map(str, versions))} that neither ENCRYPTION_KEY nor ENCRYPTION_PREVIOUS_KEYS holds"
        )
        self.versions = list(versions)


@dataclass
class RotationReport:
    """Counts of one run."""

    current_version: int
    rotated: int = 0
    failed: int = 0
    remaining: int = 0
    batches: int = 0


async def versions_in_use(factory: async_sessionmaker[AsyncSession]) -> dict[int, int]:
    """How many credentials each key version seals."""
    async with factory() as session:
        rows = await session.execute(
            select(Credential.key_version, func.count()).group_by(Credential.key_version)
        )
        return {int(version): int(count) for version, count in rows.all()}


async def rotate(
    factory: async_sessionmaker[AsyncSession],
    vault: CredentialVault,
    *,
    batch_size: int = 100,
    max_batches: int | None = None,
) -> RotationReport:
    """Re-seal every row not under the current version, batch by batch (each batch commits)."""
    current = vault.current_version
    missing = sorted(set(await versions_in_use(factory)) - vault.ring.versions)
    if missing:
        raise MissingKeyVersionsError(missing)
    report = RotationReport(current)
    cursor: uuid.UUID | None = None
    while max_batches is None or report.batches < max_batches:
        async with factory() as session, session.begin():
            query = select(Credential).where(Credential.key_version != current)
            if cursor is not None:
                query = query.where(Credential.id > cursor)
            rows = (await session.execute(query.order_by(Credential.id).limit(batch_size))).scalars().all()
            if not rows:
                break
            for row in rows:
                cursor = row.id
                try:
                    keys = vault.open(row.user_id, row.exchange, row.api_key, row.secret_key)
                except DecryptionError:
                    # Tampered or corrupt: left as it is (and counted) rather than blocking the rest.
                    report.failed += 1
                    log.error("credential %s cannot be decrypted; left unchanged", row.id)
                    continue
                await _reseal(session, vault, row, keys)
                report.rotated += 1
        report.batches += 1
    async with factory() as session:
        report.remaining = int(
            await session.scalar(
                select(func.count()).select_from(Credential).where(Credential.key_version != current)
            )
            or 0
        )
    return report


async def _reseal(session: AsyncSession, vault: CredentialVault, row: Credential, keys: ExchangeKeys) -> None:
    sealed = vault.seal(row.user_id, row.exchange, keys)
    # Conditional on the old ciphertext: a PUT that re-sealed the row meanwhile wins. updated_at stays:
    # re-encryption changes nothing the user sees.
    await session.execute(
        update(Credential)
        .where(Credential.id == row.id, Credential.api_key == row.api_key)
        .values(api_key=sealed.api_key, secret_key=sealed.secret_key, key_version=sealed.version)
        .execution_options(synchronize_session=False)
    )


async def _main(batch_size: int, dry_run: bool) -> int:
    from credentials.settings import Settings

    settings = Settings()
    vault = CredentialVault(settings.key_ring())
    url = settings.database_url.get_secret_value()
    engine = create_engine(url, schemas=[SCHEMA], pool_size=2)
    factory = create_session_factory(engine)
    out = sys.stdout
    try:
        before = await versions_in_use(factory)
        out.write(f"current key version {vault.current_version}; credentials by version: {before or '{}'}\n")
        if dry_run:
            return 0
        report = await rotate(factory, vault, batch_size=batch_size)
    except MissingKeyVersionsError as exc:
        out.write(f"error: {exc}\n")
        return 2
    finally:
        await engine.dispose()
    out.write(
        f"rotated {report.rotated} credential(s) to key version {report.current_version}; "
        f"{report.remaining} remaining under older versions; {report.failed} failed\n"
    )
    return 1 if report.failed or report.remaining else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 0 when every row is under the current version."""
    parser = argparse.ArgumentParser(prog="python -m credentials.rotate", description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=100, help="rows per transaction (default 100)")
    parser.add_argument("--dry-run", action="store_true", help="only print how many rows each version seals")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_main(args.batch_size, args.dry_run))


if __name__ == "__main__":
    sys.exit(main())
