"""SQL pieces ingestion needs that differ by dialect, written once.

``insert_into`` gives the dialect's INSERT (PostgreSQL's and SQLite's both have ``ON CONFLICT``), ``one_of`` a
membership test in a list of values (``id_array``: the array of ids it binds on PostgreSQL), ``json_text`` the text
of one key of a JSON column, where the key may itself be a column.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Integer, String, Table, Text, bindparam, cast, column, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from connector.scratch import id_array


def insert_into(session: Session, table: Table | Any):
    """``INSERT`` for this session's dialect, so ``on_conflict_do_nothing`` / ``_do_update`` are available."""
    table = getattr(table, "__table__", table)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    update: Sequence[str] = (),
    returning: Sequence[Any] = (),
):
    """``INSERT`` many rows (all with the same keys), skipping those that hit a unique constraint, or with ``update``
    (and ``conflict``) setting those columns of the row already there from the new one instead.

    ``conflict`` names the constraint's columns (None: any unique constraint). Returns the ``returning`` columns of
    the rows inserted, or None without ``returning``. On PostgreSQL the rows travel as one JSON parameter unpacked
    by ``jsonb_to_recordset``: a short statement whatever the number of rows, where a multi-row VALUES list of
    thousands of placeholders costs more to build, send and parse than the insert itself.
    """
    return _insert(session, table, rows, True, conflict, update, returning)


# From how many rows ``insert_missing`` tries the plain INSERT first (under it, the savepoint's round trips cost more).
PLAIN_INSERT_MIN = 32
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


def insert_missing(session: Session, table: Table, rows: Sequence[dict[str, Any]], *, returning: Sequence[Any]):
    """``insert_rows`` of rows the caller just found missing (new users, accounts): the rows inserted, without those
    a concurrent writer created meanwhile.

    On PostgreSQL a batch is first sent as a plain INSERT in a savepoint: ``ON CONFLICT`` makes every row a
    speculative insertion (each unique index probed, then the row confirmed), and 10,000 new users cost 145-220 ms
    plain against 192-294 ms with it. Only when a row exists after all (the savepoint rolls back on the unique
    violation) does the batch go again with ``ON CONFLICT DO NOTHING``. Other errors are raised as they are."""
    if len(rows) < PLAIN_INSERT_MIN or session.get_bind().dialect.name != "postgresql":
        return insert_rows(session, table, rows, returning=returning)
    try:
        with session.begin_nested():
            return _insert(session, table, rows, False, None, (), returning)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
    return insert_rows(session, table, rows, returning=returning)


def _insert(session: Session, table: Table, rows, skip_existing: bool, conflict, update, returning):
    if not rows:
        return [] if returning else None
    names = tuple(rows[0])
    if session.get_bind().dialect.name == "postgresql":
        statement = _recordset_insert(table, names, skip_existing, _names(conflict), tuple(update), tuple(returning))
        result = session.execute(statement, {"rows": _json_rows(rows)})
        return result.all() if returning else None
    statement = _on_conflict(sqlite.insert(table), conflict, update) if skip_existing else sqlite.insert(table)
    if returning:
        return session.execute(statement.returning(*returning), list(rows)).all()
    session.execute(statement, list(rows))
    return None


def _names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if names is None else tuple(names)


@functools.lru_cache(maxsize=256)
def _recordset_insert(
    table: Table,
    names: tuple[str, ...],
    skip_existing: bool,
    conflict: tuple[str, ...] | None,
    update: tuple[str, ...],
    returning: tuple[Any, ...],
):
    """The PostgreSQL statement of ``insert_rows`` for one shape of call, built once: its rows are the JSON text
    bound as ``rows``. Building the construct cost more than PostgreSQL's work for a batch of a hundred rows."""
    records = (
        func.jsonb_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSONB))
        .table_valued(*[column(name, table.c[name].type) for name in names])
        .render_derived(with_types=True)
    )
    statement = postgresql.insert(table).from_select(list(names), select(*[records.c[name] for name in names]))
    if skip_existing:
        statement = _on_conflict(statement, conflict, update)
    return statement.returning(*returning) if returning else statement


def _json_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as one JSON array (datetimes in ISO 8601, enums by value, decimals as numbers). orjson writes it
    several times faster than ``json``; what it cannot write (an integer beyond 64 bits) goes through ``json``."""
    try:
        return orjson.dumps(rows, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(rows, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _on_conflict(statement, conflict: Sequence[str] | None, update: Sequence[str]):
    if not update:
        return statement.on_conflict_do_nothing(index_elements=conflict)
    return statement.on_conflict_do_update(
        index_elements=conflict, set_={name: getattr(statement.excluded, name) for name in update}
    )


def one_of(session: Session, column: ColumnElement, values) -> ColumnElement:
    """``column IN values``; on PostgreSQL ``column IN (SELECT unnest(:array))``, strings as one JSON text
    (``jsonb_array_elements_text``).

    One parameter however many values (a thousand placeholders cost more to send and parse than the lookup),
    and a semi-join rather than ``= ANY(:array)``, which a prepared statement's generic plan tests by scanning the
    array for every row.
    """
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        if isinstance(column.type, Integer):
            return column.in_(select(func.unnest(id_array(values))))
        if isinstance(column.type, String) and all(isinstance(v, str) for v in values):
            # Strings as one JSON text: the driver adapts a list element by element, orjson writes it at once.
            try:
                text = bindparam(None, orjson.dumps(values).decode(), type_=Text)
            except TypeError:  # not valid Unicode (a lone surrogate): the driver's error, as for any other value
                pass
            else:
                return column.in_(select(func.jsonb_array_elements_text(cast(text, postgresql.JSONB))))
        array = bindparam(None, values, type_=postgresql.ARRAY(column.type))
        return column.in_(select(func.unnest(array)))
    return column.in_(values)


class json_text(FunctionElement):
    """The value of ``column[key]`` as text (NULL when missing); ``key`` is a string or a SQL expression.

    Scalars read the same on every dialect: ``"pro"`` -> ``pro``, ``100`` -> ``100``, ``true`` -> ``true``.
    """

    type = Text()
    inherit_cache = True

    def __init__(self, column: ColumnElement, key: str | ColumnElement) -> None:
        if isinstance(key, str):
            key = literal(key, Text())
        super().__init__(column, key)


@compiles(json_text, "postgresql")
def _json_text_postgresql(element, compiler, **kw):
    column, key = element.clauses
    return f"({compiler.process(column, **kw)} ->> {compiler.process(key, **kw)})"


@compiles(json_text)
def _json_text_sqlite(element, compiler, **kw):
    column, key = element.clauses
    column_sql = compiler.process(column, **kw)
    path = f"""('$."' || {compiler.process(key, **kw)} || '"')"""
    # json_extract gives SQLite's own values (true -> 1); spell booleans as JSON does, like PostgreSQL's ->>.
    return (
        f"(CASE json_type({column_sql}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
        f"ELSE CAST(json_extract({column_sql}, {path}) AS TEXT) END)"
    )
