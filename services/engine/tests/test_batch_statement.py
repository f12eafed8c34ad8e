"""The batch statement is generated from the trading tables: it writes every column they have (no database)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Column, FetchedValue, Integer, MetaData, Table, Text

from engine.persistence.batch import BATCH_SQL, PARTS
from engine.persistence.statement import insert_part, update_part
from engine.persistence.tables import INBOX, LEVELS, ORDERS, STATES, TRADES
from trading.models import ENGINE_OUTBOX, Base

INSERT = re.compile(r"(\w+) AS \(\nINSERT INTO bots\.(\w+) \(([^)]*)\)\nSELECT (.*)\n")
UPDATE = re.compile(r"(\w+) AS \(\nUPDATE bots\.(\w+) AS t\n   SET (.*)\n")


def _server_filled(column: Column[object]) -> bool:
    """A column the database fills itself: a server default, or an autoincrement key."""
    return column.server_default is not None or column.autoincrement is True


def _split(items: str) -> list[str]:
    return [item.strip() for item in items.split(", ")]


def test_every_insert_names_every_column_of_its_table_but_those_the_server_fills() -> None:
    inserts = {table: (part, _split(columns)) for part, table, columns, _ in INSERT.findall(BATCH_SQL)}
    assert set(inserts) == {t.name for t in (ORDERS, TRADES, LEVELS, STATES, ENGINE_OUTBOX, INBOX)}
    for name, (_, columns) in inserts.items():
        table = Base.metadata.tables[f"bots.{name}"]
        expected = [c.name for c in table.columns if not _server_filled(c)]
        assert columns == expected, name


def test_every_inserted_column_gets_its_own_array_or_a_fixed_value() -> None:
    for part, table, columns, values in INSERT.findall(BATCH_SQL):
        for column, value in zip(_split(columns), _split(values), strict=True):
            if value.startswith(("v.", "CAST(v.")):
                assert value in (f"v.{column}", f"CAST(v.{column} AS json)"), (table, column)
                assert f"CAST(:{part}_{column} AS " in BATCH_SQL, (table, column)
            else:
                # Fixed by the statement: a new state's first version, an inbox claim's time.
                assert (table, column, value) in {
                    ("engine_states", "version", "1"),
                    ("bots_inbox", "processed_at", "now()"),
                }


def test_updates_set_columns_of_their_table_from_their_own_arrays() -> None:
    updates = UPDATE.findall(BATCH_SQL)
    assert {(part, table) for part, table, _ in updates} == {
        ("u", "orders"),
        ("l", "grid_levels"),
        ("b", "bots"),
        ("s", "engine_states"),
    }
    for part, table, sets in updates:
        columns = Base.metadata.tables[f"bots.{table}"].c
        for assignment in _split(sets):
            column, _, value = assignment.partition(" = ")
            assert column in columns, (table, column)
            assert value in (f"v.{column}", f"CAST(v.{column} AS json)", "t.version + 1"), assignment
            if value != "t.version + 1":
                assert f"CAST(:{part}_{column} AS " in BATCH_SQL


def test_the_statement_takes_exactly_the_parameters_the_parts_bind() -> None:
    assert set(re.findall(r"(?<!:):(\w+)", BATCH_SQL)) == {param for part in PARTS for param in part.params}
    assert BATCH_SQL.count("WITH ") == 1  # one statement per batch


def _orders_with(*columns: Column[object]) -> Table:
    table = ORDERS.to_metadata(MetaData())
    for column in columns:
        table.append_column(column)
    return table


def test_a_column_added_to_a_table_is_written_and_a_row_without_it_gets_its_default() -> None:
    table = _orders_with(
        Column("note", Text, nullable=True), Column("seq", Integer, server_default=FetchedValue())
    )
    part = insert_part("o", table)
    assert "note" in part.sql.split("\n")[0] and "seq" not in part.sql
    now = datetime(2026, 1, 2, tzinfo=UTC)
    row = {
        "id": uuid.uuid4(),
        "bot_id": uuid.uuid4(),
        "exchange": "upbit",
        "client_order_id": "c1",
        "exchange_order_id": None,
        "slot": 3,
        "side": "buy",
        "price": Decimal("1.5"),
        "quantity": Decimal(2),
        "status": "open",
        "created_at": now,
        "updated_at": now,
    }
    arrays = part.arrays([row, {**row, "note": "hello", "filled_quantity": Decimal(1)}])
    assert arrays["o_note"] == [None, "hello"]
    assert arrays["o_filled_quantity"] == [Decimal(0), Decimal(1)]  # the column's default, then the row's
    assert "o_seq" not in arrays
    with pytest.raises(KeyError, match=r"orders\.bot_id"):
        part.arrays([{k: v for k, v in row.items() if k != "bot_id"}])


def test_arrays_check_money_and_times_as_their_column_types_do_and_send_json_as_text() -> None:
    part = update_part("s", STATES, keys=("bot_id",), sets=("state", "updated_at"))
    bot = uuid.uuid4()
    now = datetime(2026, 1, 2, 9, tzinfo=UTC)
    arrays = part.arrays([{"bot_id": bot, "state": {"a": [1, "x"]}, "updated_at": now}])
    assert arrays == {"s_bot_id": [bot], "s_state": ['{"a":[1,"x"]}'], "s_updated_at": [now]}
    with pytest.raises(ValueError, match="naive"):
        part.arrays([{"bot_id": bot, "state": {}, "updated_at": datetime(2026, 1, 2)}])
    with pytest.raises(TypeError):
        part.arrays([{"bot_id": bot, "state": {"price": Decimal(1)}, "updated_at": now}])
    fates = update_part("u", ORDERS, keys=("id",), sets=("filled_quantity",))
    assert fates.arrays([{"id": bot, "filled_quantity": 2}])["u_filled_quantity"] == [Decimal(2)]
    with pytest.raises(TypeError, match="float"):
        fates.arrays([{"id": bot, "filled_quantity": 1.5}])
    with pytest.raises(ValueError, match="finite"):
        fates.arrays([{"id": bot, "filled_quantity": Decimal("NaN")}])
    with pytest.raises(KeyError, match="updated_at"):
        part.arrays([{"bot_id": bot, "state": {}}])  # an update's columns are never guessed
