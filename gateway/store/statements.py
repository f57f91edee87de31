"""Multi-row ``INSERT … ON CONFLICT`` statements built once per shape.

SQLAlchemy does not cache the compiled form of a multi-row ``insert().values([...])`` with an
``ON CONFLICT`` clause, so building one per call recompiled it every time (about 3 ms of CPU,
more than the round trip). These statements are plain SQL that PostgreSQL and SQLite (3.35+)
both accept, typed through the table's own column types, and cached per row count.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.sql.elements import TextClause


@functools.lru_cache(maxsize=256)
def multi_row_insert(
    table: Table, columns: tuple[str, ...], rows: int, tail: str, head: str = ""
) -> TextClause:
    """``<head> INSERT INTO table (columns) VALUES (…), … <tail>``; binds are named ``<column>_<row>``."""
    values = ", ".join("(" + ", ".join(f":{c}_{i}" for c in columns) + ")" for i in range(rows))
    statement = text(f"{head} INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values} {tail}")
    return statement.bindparams(
        *(bindparam(f"{c}_{i}", type_=table.c[c].type) for i in range(rows) for c in columns)
    )


def row_params(columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The bind values for ``multi_row_insert``: one value per column per row, in order."""
    return {f"{c}_{i}": value for i, row in enumerate(rows) for c, value in zip(columns, row, strict=True)}


# PostgreSQL takes at most 65,535 parameters a statement; past this a batch goes table by table.
MAX_CHAINED_PARAMETERS = 30_000
Shape = tuple[tuple[Table, tuple[str, ...], int], ...]


@functools.lru_cache(maxsize=256)
def chained_insert(shape: Shape, returning: str = "") -> TextClause:
    """One statement inserting into several tables in order, each but the last in a CTE.

    PostgreSQL checks foreign keys at the end of the statement, so children may come in the
    same statement as their parents. Binds are named ``t<table>_<column>_<row>``.
    """
    parts = []
    binds = []
    for t, (table, columns, rows) in enumerate(shape):
        values = ", ".join(
            "(" + ", ".join(f":t{t}_{c}_{i}" for c in range(len(columns))) + ")" for i in range(rows)
        )
        parts.append(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values}")
        binds += [
            bindparam(f"t{t}_{c}_{i}", type_=table.c[column].type)
            for i in range(rows)
            for c, column in enumerate(columns)
        ]
    ctes = ", ".join(f"w{t} AS ({part})" for t, part in enumerate(parts[:-1]))
    sql = (f"WITH {ctes} " if ctes else "") + parts[-1] + (f" RETURNING {returning}" if returning else "")
    return text(sql).bindparams(*binds)


def chained_params(batches: Sequence[tuple[Table, Sequence[dict[str, Any]]]]) -> tuple[Shape, dict[str, Any]]:
    """The shape ``chained_insert`` caches on and the bind values, from each table's rows.

    A column a row leaves out gets its scalar default, as a Core insert would give it (plain
    SQL gets none); a column with a computed default must be given.
    """
    shape = []
    params: dict[str, Any] = {}
    for t, (table, rows) in enumerate(batches):
        given = tuple(rows[0])
        defaults = _scalar_defaults(table, given)
        columns = given + tuple(defaults)
        shape.append((table, columns, len(rows)))
        for i, row in enumerate(rows):
            for c, column in enumerate(given):
                params[f"t{t}_{c}_{i}"] = row[column]
            for c, value in enumerate(defaults.values(), start=len(given)):
                params[f"t{t}_{c}_{i}"] = value
    return tuple(shape), params


def _scalar_defaults(table: Table, given: tuple[str, ...]) -> dict[str, Any]:
    return {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.columns
        if column.name not in given and column.default is not None and column.default.is_scalar
    }
