"""Reading a source: connecting by URL, checking a model's columns, and streaming its rows in chunks.

A model's SELECT is wrapped, never edited: ``SELECT * FROM (<query>) AS connector_source`` with, for a model read
by cursor, ``WHERE`` the (cursor, key) pair is past the last committed one and ``ORDER BY`` cursor then key. The
key breaks ties, so rows sharing one cursor value are neither lost nor read twice when a chunk ends among them.
Rows whose cursor is NULL are not read by a cursor model.

Rows are streamed with a server-side cursor where the driver has one (``stream_results``: a named cursor on
PostgreSQL, an unbuffered cursor on MariaDB/MySQL), so memory holds one chunk, whatever the table's size.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from connector.errors import InvalidError

ALIAS = "connector_source"
# File databases a source may read: only under these directories (``os.pathsep``-separated), so that a workspace
# cannot point a source at the service's own SQLite file or any other file of the server.
FILE_DIRS_ENV = "CONNECTOR_SOURCE_FILE_DIRS"
FILE_DIALECTS = {"sqlite", "duckdb"}
# A URL scheme without a driver gets the one this package installs.
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


class TypeMappingError(Exception):
    """A column holds values of a type that cannot be stored as an attribute (e.g. binary data)."""

    def __init__(self, column: str, value: Any) -> None:
        super().__init__(f"column {column!r} has a value of type {type(value).__name__}, which cannot be mapped")
        self.column = column


def engine_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return DEFAULT_DRIVERS.get(scheme, scheme) + sep + rest if sep else url


def parse_url(url: str, field: str = "url"):
    """The SQLAlchemy URL, or ``InvalidError`` naming ``field``; the dialect must be installed."""
    try:
        parsed = make_url(engine_url(url))
        parsed.get_dialect()
    except NoSuchModuleError:
        raise InvalidError.one(field, "names a database dialect or driver that is not installed") from None
    except (ArgumentError, ValueError):
        raise InvalidError.one(field, "is not a SQLAlchemy database URL (dialect+driver://user:pass@host/db)") from None
    if parsed.get_backend_name() in FILE_DIALECTS and parsed.database not in (None, "", ":memory:"):
        _check_file(parsed.database, field)
    return parsed


def _check_file(database: str, field: str) -> None:
    allowed = [Path(d).resolve() for d in os.environ.get(FILE_DIRS_ENV, "").split(os.pathsep) if d.strip()]
    path = Path(database).resolve()
    if not any(path.is_relative_to(d) for d in allowed):
        where = ", ".join(str(d) for d in allowed) or f"none ({FILE_DIRS_ENV} is not set)"
        raise InvalidError.one(field, f"file databases are read only from the directories allowed: {where}")


CONNECT_TIMEOUT_S = 10


def open_engine(url: str) -> Engine:
    """An engine for one run or check; no pool is kept between runs. A server that does not answer is given up on
    after ``CONNECT_TIMEOUT_S`` (PostgreSQL, MariaDB/MySQL)."""
    parsed = parse_url(url)
    connect_args = {}
    if parsed.get_backend_name() in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)


def strip_query(query: str) -> str:
    return re.sub(r"[\s;]+$", "", query.strip())


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def query_columns(connection: Connection, query: str) -> list[str]:
    """The columns the model's SELECT answers (no row is read); bad SQL is ``InvalidError`` on ``query``."""
    try:
        result = connection.execute(text(f"SELECT * FROM ({strip_query(query)}) AS {ALIAS} WHERE 1 = 0"))
        columns = list(result.keys())
        result.close()
    except SQLAlchemyError as exc:
        raise InvalidError.one("query", f"the source refused it: {_first_line(exc)}") from None
    return columns


def _first_line(exc: SQLAlchemyError) -> str:
    message = str(getattr(exc, "orig", None) or exc)
    return message.strip().splitlines()[0][:500] if message.strip() else type(exc).__name__


def stream_rows(
    connection: Connection,
    query: str,
    *,
    chunk_size: int,
    cursor_column: str | None = None,
    key_columns: Sequence[str] = (),
    after: Sequence[Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of rows (dicts by column name, values as the driver gives them).

    With ``cursor_column``: rows ordered by the cursor then ``key_columns``, strictly after ``after`` (the values
    of those columns in the last row committed), NULL cursors left out.
    """
    sql = f"SELECT * FROM ({strip_query(query)}) AS {ALIAS}"
    params: dict[str, Any] = {}
    if cursor_column is not None:
        order = [cursor_column, *key_columns]
        quoted = [f"{ALIAS}.{_quote(connection, c)}" for c in order]
        where = [f"{quoted[0]} IS NOT NULL"]
        if after is not None:
            params = {f"after_{i}": value for i, value in enumerate(after)}
            where.append(_after_clause(quoted, 0))
        sql += " WHERE " + " AND ".join(where) + " ORDER BY " + ", ".join(quoted)
    streaming = connection.execution_options(stream_results=True, yield_per=chunk_size)
    result = streaming.execute(text(sql), params)
    try:
        names = list(result.keys())
        for partition in result.partitions(chunk_size):
            yield [dict(zip(names, row, strict=True)) for row in partition]
    finally:
        result.close()


def _after_clause(quoted: list[str], i: int) -> str:
    """(c0, c1, ...) > (:after_0, :after_1, ...), spelled out for dialects without row-value comparison."""
    greater = f"{quoted[i]} > :after_{i}"
    if i == len(quoted) - 1:
        return greater
    return f"({greater} OR ({quoted[i]} = :after_{i} AND {_after_clause(quoted, i + 1)}))"


_PLAIN = (str, int, bool)


def json_value(column: str, value: Any) -> Any:
    """A driver value as a JSON value an attribute can hold; ``TypeMappingError`` when there is none."""
    if value is None or type(value) in _PLAIN or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() and abs(value) < 2**63 else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return value
    raise TypeMappingError(column, value)


def cursor_token(value: Any) -> dict[str, Any]:
    """A cursor or key value as stored in ``cursor_state`` (JSON), keeping its type for the next query."""
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, uuid.UUID):
        return {"type": "str", "value": str(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return {"type": "plain", "value": value}
    raise TypeMappingError("cursor", value)


def cursor_value(token: dict[str, Any]) -> Any:
    kind, value = token.get("type"), token.get("value")
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    return value
