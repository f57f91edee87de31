"""Plain-SQL insert statements built once per shape.

``multi_row_insert``: SQLAlchemy does not cache the compiled form of a multi-row
``insert().values([...])`` with an ``ON CONFLICT`` clause, so building one per call recompiled
it every time (about 3 ms of CPU, more than the round trip). It is plain SQL that PostgreSQL
and SQLite (3.35+) both accept, typed through the table's own column types, cached per row
count. ``record_set_insert`` (PostgreSQL) inserts into several tables from one JSON parameter
per table, whatever the number of rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.sql.elements import TextClause


@functools.lru_cache(maxsize=256)
def multi_row_insert(table: Table, columns: tuple[str, ...], rows: int, tail: str) -> TextClause:
    """``INSERT INTO table (columns) VALUES (…), … <tail>``; binds are named ``<column>_<row>``."""
    values = ", ".join("(" + ", ".join(f":{c}_{i}" for c in columns) + ")" for i in range(rows))
    statement = text(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values} {tail}")
    return statement.bindparams(
        *(bindparam(f"{c}_{i}", type_=table.c[c].type) for i in range(rows) for c in columns)
    )


def row_params(columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The bind values for ``multi_row_insert``: one value per column per row, in order."""
    return {f"{c}_{i}": value for i, row in enumerate(rows) for c, value in zip(columns, row, strict=True)}


TableShape = tuple[tuple[Table, tuple[str, ...]], ...]


@functools.lru_cache(maxsize=256)
def record_set_insert(shape: TableShape, returning: str = "", head: str = "") -> TextClause:
    """PostgreSQL: insert into several tables in order from one JSON array of rows each.

    Each table's rows arrive as a single parameter ``:rows_<n>`` (a JSON array of objects)
    that ``json_populate_recordset`` turns into rows of the table's own type, so the text
    depends on the tables and columns only: psycopg caches its parse (it does not for a
    statement past 50 parameters or 4 KB) and PostgreSQL prepares it once. Every table but
    the last is a data-modifying CTE; foreign keys are checked at the end of the statement,
    so children may come with their parents. ``head`` adds CTEs of the caller's before them.
    """
    parts = []
    for n, (table, columns) in enumerate(shape):
        names = ", ".join(columns)
        parts.append(
            f"INSERT INTO {table.name} ({names}) SELECT {names} "
            f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows_{n} AS json))"
        )
    ctes = [head] if head else []
    ctes += [f"w{n} AS ({part})" for n, part in enumerate(parts[:-1])]
    sql = (f"WITH {', '.join(ctes)} " if ctes else "") + parts[-1]
    return text(sql + (f" RETURNING {returning}" if returning else ""))


def complete_rows(
    table: Table, rows: Sequence[dict[str, Any]]
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The columns to insert and the rows with every scalar default a Core insert would add.

    Plain SQL gets no Python-side defaults, so a column the rows leave out takes its scalar
    default here; a column with a computed default must be given.
    """
    given = tuple(rows[0])
    defaults = {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.columns
        if column.name not in given and column.default is not None and column.default.is_scalar
    }
    if not defaults:
        return given, list(rows)
    return given + tuple(defaults), [defaults | row for row in rows]
