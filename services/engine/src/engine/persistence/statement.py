"""Data-modifying CTEs over unnest()ed arrays, generated from the tables' SQLAlchemy metadata.

A part is one INSERT or UPDATE of one table whose rows travel as one array parameter per column
(`<part>_<column>`), each cast to the array of the column's PostgreSQL type. An insert names every column
but those the server fills (a server default, the autoincrement key), so a column added to a table is
written without touching the engine: a row that leaves it out gets the column's default, or NULL. Only the
columns an update sets, and its match keys, are chosen by hand; their names and types come from the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Boolean, Column, Integer, String, Table, Uuid
from sqlalchemy.dialects.postgresql.base import PGDialect

from common.dbtypes import Money, UtcDateTime

# Quotes a name only where PostgreSQL needs it (a reserved word), as SQLAlchemy itself would.
_QUOTE = PGDialect().identifier_preparer  # type: ignore[no-untyped-call]


def written_columns(table: Table) -> list[Column[Any]]:
    """The columns an INSERT into `table` names: all but those the server fills."""
    generated = table.autoincrement_column
    return [c for c in table.columns if c.server_default is None and c is not generated]


def array_type(column: Column[Any]) -> str:
    """The PostgreSQL element type a column's values travel as (JSON as text, cast per value)."""
    kind = column.type
    # The base type, never the column's own (VARCHAR(n), NUMERIC(p, s)): an explicit cast would cut or
    # round silently, where the column's assignment refuses too long a value.
    for base, name in (
        (JSON, "text"),
        (Money, "numeric"),
        (UtcDateTime, "timestamptz"),
        (Uuid, "uuid"),
        (BigInteger, "bigint"),
        (Integer, "int"),
        (Boolean, "boolean"),
        (String, "text"),
    ):
        if isinstance(kind, base):
            return name
    raise TypeError(f"{column}: no array type for {kind!r} in the batch statement")


def _money(value: Any) -> Decimal:
    """Exact, as the Money column type checks it: never a float, always finite."""
    if isinstance(value, float):
        raise TypeError("money must be Decimal, not float")
    exact = Decimal(value)
    if not exact.is_finite():
        raise ValueError("money must be finite")
    return exact


def _time(value: datetime) -> datetime:
    """Aware and in UTC, as the UtcDateTime column type checks it."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
    return value.astimezone(UTC)


def _json(value: Any) -> str:
    """JSON text of a snapshot or payload (JSON types only: a Decimal or anything else fails loudly)."""
    return orjson.dumps(value).decode()


def _converter(column: Column[Any]) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, Money):
        return _money
    if isinstance(kind, UtcDateTime):
        return _time
    if isinstance(kind, JSON):
        return _json
    return None


def _fallback(column: Column[Any], insert: bool) -> Callable[[], Any]:
    """What an insert writes for a column its row leaves out: the column's default, else NULL if allowed."""
    default = column.default
    if insert and default is not None and getattr(default, "is_scalar", False):
        value = default.arg  # type: ignore[attr-defined]
        return lambda: value
    if insert and default is not None and getattr(default, "is_callable", False):
        make = default.arg  # type: ignore[attr-defined]
        return lambda: make(None)
    if insert and column.nullable:
        return lambda: None

    def missing() -> Any:
        raise KeyError(f"{column.table.name}.{column.name}: the row has no value and the column no default")

    return missing


@dataclass(frozen=True)
class _Bind:
    column: str
    param: str
    convert: Callable[[Any], Any] | None
    fallback: Callable[[], Any]


@dataclass(frozen=True)
class Part:
    """One CTE of a batch statement (`name AS (sql)`) and how its rows become its array parameters."""

    name: str
    table: Table
    sql: str
    binds: tuple[_Bind, ...]

    @property
    def params(self) -> tuple[str, ...]:
        """Its bind parameters' names, one array each."""
        return tuple(bind.param for bind in self.binds)

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Its parameters for `rows`: one list per column, converted as the column's type converts."""
        params: dict[str, list[Any]] = {}
        for bind in self.binds:
            name = bind.column
            try:
                values = [row[name] for row in rows]
            except KeyError:
                values = [row[name] if name in row else bind.fallback() for row in rows]
            convert = bind.convert
            if convert is not None:
                values = [None if value is None else convert(value) for value in values]
            params[bind.param] = values
        return params


def _source(
    name: str, table: Table, columns: Iterable[Column[Any]], insert: bool
) -> tuple[tuple[_Bind, ...], str]:
    """The binds and the `unnest(...) AS v(...)` that turn a part's arrays into rows `v`."""
    binds = tuple(_Bind(c.name, f"{name}_{c.name}", _converter(c), _fallback(c, insert)) for c in columns)
    if not binds:
        raise ValueError(f"part {name} of {table.name} takes no column from its rows")
    arrays = ", ".join(f"CAST(:{b.param} AS {array_type(table.c[b.column])}[])" for b in binds)
    aliases = ", ".join(_QUOTE.quote(b.column) for b in binds)
    return binds, f"unnest({arrays}) AS v({aliases})"


def _value(column: Column[Any]) -> str:
    """A column's value in the rows `v` (JSON travels as text)."""
    quoted = f"v.{_QUOTE.quote(column.name)}"
    return f"CAST({quoted} AS json)" if isinstance(column.type, JSON) else quoted


def insert_part(name: str, table: Table, *, fixed: Mapping[str, str] | None = None, tail: str = "") -> Part:
    """An INSERT of every written column of `table`; `fixed`: columns set by an SQL expression instead."""
    fixed = fixed or {}
    columns = written_columns(table)
    binds, source = _source(name, table, (c for c in columns if c.name not in fixed), insert=True)
    names = ", ".join(_QUOTE.quote(c.name) for c in columns)
    values = ", ".join(fixed.get(c.name) or _value(c) for c in columns)
    sql = f"INSERT INTO {_QUOTE.format_table(table)} ({names})\nSELECT {values}\n  FROM {source}"
    return Part(name, table, f"{sql}\n{tail}".rstrip(), binds)


def update_part(
    name: str,
    table: Table,
    *,
    keys: Sequence[str],
    sets: Sequence[str],
    fixed: Mapping[str, str] | None = None,
    tail: str = "",
) -> Part:
    """An UPDATE of `sets` (and `fixed`: column -> SQL expression over the old row `t`) where `keys` match."""
    columns = [table.c[key] for key in keys] + [table.c[column] for column in sets]
    binds, source = _source(name, table, columns, insert=False)
    assignments = [f"{_QUOTE.quote(column)} = {_value(table.c[column])}" for column in sets]
    assignments += [f"{_QUOTE.quote(table.c[column].name)} = {sql}" for column, sql in (fixed or {}).items()]
    match = " AND ".join(f"t.{_QUOTE.quote(key)} = v.{_QUOTE.quote(key)}" for key in keys)
    # Names from our own metadata, quoted by the dialect; every value is a bind parameter.
    sql = (
        f"UPDATE {_QUOTE.format_table(table)} AS t\n   SET {', '.join(assignments)}\n"  # noqa: S608
        f"  FROM {source}\n WHERE {match}"
    )
    return Part(name, table, f"{sql}\n{tail}".rstrip(), binds)


def with_statement(parts: Sequence[Part], select: str) -> str:
    """`WITH` every part, then `select` (which reads what the parts return)."""
    ctes = ",\n".join(f"{part.name} AS (\n{part.sql}\n)" for part in parts)
    return f"WITH {ctes}\n{select}"
