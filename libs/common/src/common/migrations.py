"""Alembic glue shared by every service: one env.py body, and a programmatic upgrade to head."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import Column, MetaData, String, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from common.db import is_sqlite, schema_translate_map


def version_table(url: str, schema: str) -> tuple[str, str | None]:
    """Name and schema of a service's Alembic version table (SQLite has one namespace for all)."""
    if is_sqlite(url):
        return f"alembic_version_{schema}", None
    return "alembic_version", schema


def migration_schema(schema: str) -> str | None:
    """The schema a migration's operations address: none on SQLite, where embedded mode keeps tables unqualified."""
    return None if op.get_bind().dialect.name == "sqlite" else schema


def add_outbox_traceparent(table: str, schema: str) -> None:
    """Add `<table>.traceparent` (common.outbox): nullable, as rows enqueued while tracing is off have none."""
    op.add_column(
        table, Column("traceparent", String(length=255), nullable=True), schema=migration_schema(schema)
    )


def drop_outbox_traceparent(table: str, schema: str) -> None:
    """Drop `<table>.traceparent`."""
    op.drop_column(table, "traceparent", schema=migration_schema(schema))


def run_env(target_metadata: MetaData, schema: str) -> None:
    """The body of a service's migrations/env.py (online mode, async engine)."""
    url = context.config.get_main_option("sqlalchemy.url") or os.environ["DATABASE_URL"]
    table, table_schema = version_table(url, schema)

    def do_run(connection: Connection) -> None:
        if not is_sqlite(url):
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        else:
            connection = connection.execution_options(
                schema_translate_map=schema_translate_map(url, [schema])
            )
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=table,
            version_table_schema=table_schema,
            include_schemas=not is_sqlite(url),
            # Autogenerate must see only this service's schema, never propose dropping another's tables.
            include_name=lambda name, type_, _: type_ != "schema" or name == schema,
            render_as_batch=is_sqlite(url),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, hide_parameters=True)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(do_run)
        finally:
            await engine.dispose()

    asyncio.run(run())


def upgrade_head(script_location: Path, database_url: str) -> None:
    """Apply every migration of one service (blocking; call via asyncio.to_thread inside a loop)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def migrations_path(service: str, module_file: str) -> Path:
    """A service's Alembic scripts: $<SERVICE>_MIGRATIONS_PATH, else inside the installed package, else the source tree.

    The wheel force-includes <member>/migrations (services/<name>, or libs/trading for the `bots` schema) as
    <package>/migrations (the container image needs it); editable installs and tests find it next to src/.
    """
    here = Path(module_file).resolve().parent
    variable = f"{service.upper().replace('-', '_')}_MIGRATIONS_PATH"
    override = os.environ.get(variable)
    candidates = (Path(override),) if override else (here / "migrations", here.parents[1] / "migrations")
    for path in candidates:
        if (path / "env.py").is_file():
            return path
    raise FileNotFoundError(
        f"{service} migrations not found in {', '.join(map(str, candidates))} (set {variable})"
    )


def migrate_main(service: str, module_file: str) -> None:
    """`python -m <service>.migrate`: upgrade DATABASE_URL's schema (needs nothing but DATABASE_URL)."""
    from common.settings import DatabaseSettings

    upgrade_head(migrations_path(service, module_file), DatabaseSettings().database_url.get_secret_value())
