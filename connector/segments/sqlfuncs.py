"""The few SQL pieces that differ between PostgreSQL and SQLite, as expressions the compiler can use blindly.

Everything here is an ordinary SQLAlchemy expression; each dialect renders it its own way (other dialects get the
PostgreSQL form). Attribute names and values are always bound parameters; the only text written into SQL is fixed
by this module (type names, the date pattern).

JSON documents are ``attributes`` / ``properties`` / ``fields`` columns (JSONB on PostgreSQL, JSON text on SQLite);
a key is addressed with ``doc -> key`` on PostgreSQL and on SQLite with the JSON path ``$."key"`` (keys never hold
quotes or backslashes: ingestion and the condition parser refuse them) or, for a non-ASCII key, by ``json_each``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, DateTime, Numeric, String, TypeDecorator, and_, bindparam, false, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from connector.segments.conditions import ISO_DATETIME_PATTERN, ISO_OFFSET_PATTERN

# -- bound values --------------------------------------------------------------------------------------------------


class AttributeNumber(TypeDecorator):
    """A number compared with a JSON number: exact decimal on PostgreSQL (``numeric``), as is on SQLite.

    A float goes to PostgreSQL as the decimal of its shortest representation, which is how JSON wrote it, so
    ``0.1`` stored equals ``0.1`` asked for.
    """

    impl = Numeric
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        if dialect.name != "sqlite" and isinstance(value, float):
            return Decimal(repr(value))
        return value

    def process_result_value(self, value: Any, dialect) -> Any:
        return value


class AttributeTimestamp(TypeDecorator):
    """An instant compared with a date held in JSON: ``timestamptz`` on PostgreSQL; on SQLite the text
    ``YYYY-MM-DD HH:MM:SS.SSS`` (UTC), which is what ``strftime`` makes of a stored date, so text order is time
    order. SQLite keeps milliseconds; so do the bound values on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if dialect.name == "sqlite":
            return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
        return value

    def process_result_value(self, value: Any, dialect) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value).replace(tzinfo=UTC)


# -- JSON access ---------------------------------------------------------------------------------------------------

JSON_KINDS = ("present", "string", "number", "boolean", "true", "false")
_SQLITE_KINDS = {
    "string": "IN ('text')",
    "number": "IN ('integer', 'real')",
    "boolean": "IN ('true', 'false')",
    "true": "= 'true'",
    "false": "= 'false'",
}


class _JsonElement(FunctionElement):
    inherit_cache = True
    # Whether the key is plain ASCII: part of the cache key, as it decides the SQL on SQLite.
    _traverse_internals = [*FunctionElement._traverse_internals, ("ascii_key", InternalTraversal.dp_boolean)]

    def __init__(self, doc, key: str) -> None:
        self.ascii_key = key.isascii()
        super().__init__(doc, bindparam(None, key, String()))

    @property
    def doc(self):
        return self.clauses.clauses[0]

    @property
    def key(self):
        return self.clauses.clauses[1]


def _pg_get(compiler, element, op: str, **kw) -> str:
    return f"({compiler.process(element.doc, **kw)} {op} CAST({compiler.process(element.key, **kw)} AS TEXT))"


# json_each's columns named like the path functions that give the same thing.
_SQLITE_EACH = {"json_type": "type", "json_extract": "value"}


def _sqlite_get(compiler, element, fn: str, **kw) -> str:
    doc, key = compiler.process(element.doc, **kw), compiler.process(element.key, **kw)
    if element.ascii_key:
        return f"{fn}({doc}, '$.\"' || {key} || '\"')"
    # JSON text keeps a non-ASCII key escaped (\u00f6) and SQLite before 3.45 matches path labels against the
    # raw text; json_each decodes keys, so it finds the key however it was written.
    return f"(SELECT {_SQLITE_EACH[fn]} FROM json_each({doc}) WHERE key = {key})"


class json_type_is(_JsonElement):
    """``doc[key]`` is of a kind: ``present`` (there and not null), ``string``, ``number``, ``boolean``, ``true``
    or ``false``. Never NULL."""

    inherit_cache = True

    type = Boolean()
    _traverse_internals = [*_JsonElement._traverse_internals, ("kind", InternalTraversal.dp_string)]

    def __init__(self, doc, key: str, kind: str) -> None:
        if kind not in JSON_KINDS:
            raise ValueError(f"unknown JSON kind {kind!r}")
        self.kind = kind
        super().__init__(doc, key)


@compiles(json_type_is)
def _json_type_is_pg(element, compiler, **kw):
    if element.kind in ("true", "false"):
        return f"COALESCE({_pg_get(compiler, element, '->', **kw)} = CAST('{element.kind}' AS JSONB), false)"
    typeof = f"COALESCE(jsonb_typeof{_pg_get(compiler, element, '->', **kw)}, 'null')"
    if element.kind == "present":
        return f"({typeof} <> 'null')"
    return f"({typeof} = '{element.kind}')"


@compiles(json_type_is, "sqlite")
def _json_type_is_sqlite(element, compiler, **kw):
    typeof = f"COALESCE({_sqlite_get(compiler, element, 'json_type', **kw)}, 'null')"
    if element.kind == "present":
        return f"({typeof} <> 'null')"
    return f"({typeof} {_SQLITE_KINDS[element.kind]})"


class json_text(_JsonElement):
    """The text of ``doc[key]``; only meaningful when it is a JSON string."""

    inherit_cache = True

    type = String()


@compiles(json_text)
def _json_text_pg(element, compiler, **kw):
    return _pg_get(compiler, element, "->>", **kw)


@compiles(json_text, "sqlite")
def _json_text_sqlite(element, compiler, **kw):
    return _sqlite_get(compiler, element, "json_extract", **kw)


class json_number(_JsonElement):
    """The number ``doc[key]``; only valid when it is a JSON number (PostgreSQL raises on other text), so use it
    only under a ``json_type_is(..., "number")`` guard in a CASE."""

    inherit_cache = True

    type = AttributeNumber()


@compiles(json_number)
def _json_number_pg(element, compiler, **kw):
    return f"CAST({_pg_get(compiler, element, '->>', **kw)} AS NUMERIC)"


@compiles(json_number, "sqlite")
def _json_number_sqlite(element, compiler, **kw):
    return _sqlite_get(compiler, element, "json_extract", **kw)


class json_timestamp(_JsonElement):
    """``doc[key]`` as an instant comparable with ``AttributeTimestamp`` values, or NULL when it is not a string
    in the accepted ISO 8601 form (``connector.segments.conditions.ISO_DATETIME_PATTERN``). Safe on any value:
    the pattern is checked before PostgreSQL casts, and it admits real calendar days only."""

    inherit_cache = True

    type = AttributeTimestamp()


def _sql_string(value: str) -> str:
    # Only this module's constant patterns come here; they contain no quote and no percent sign.
    assert "'" not in value and "%" not in value
    return f"'{value}'"


@compiles(json_timestamp)
def _json_timestamp_pg(element, compiler, **kw):
    text = _pg_get(compiler, element, "->>", **kw)
    typeof = f"jsonb_typeof{_pg_get(compiler, element, '->', **kw)}"
    return (
        f"(CASE WHEN {typeof} = 'string' AND {text} ~ {_sql_string(ISO_DATETIME_PATTERN)} THEN "
        f"CASE WHEN {text} ~ {_sql_string(ISO_OFFSET_PATTERN)} THEN CAST({text} AS TIMESTAMPTZ) "
        f"ELSE CAST({text} AS TIMESTAMP) AT TIME ZONE 'UTC' END END)"
    )


@compiles(json_timestamp, "sqlite")
def _json_timestamp_sqlite(element, compiler, **kw):
    text = _sqlite_get(compiler, element, "json_extract", **kw)
    typeof = _sqlite_get(compiler, element, "json_type", **kw)
    # REGEXP is Python's re.search, registered by SQLAlchemy's pysqlite dialect on every connection.
    return (
        f"(CASE WHEN {typeof} = 'text' AND {text} REGEXP {_sql_string(ISO_DATETIME_PATTERN)} "
        f"THEN strftime('%Y-%m-%d %H:%M:%f', {text}) END)"
    )


# -- text ----------------------------------------------------------------------------------------------------------


class _TextPair(FunctionElement):
    type = Boolean()
    inherit_cache = True

    @property
    def left(self):
        return self.clauses.clauses[0]

    @property
    def right(self):
        return self.clauses.clauses[1]


def _pair(compiler, element, **kw) -> tuple[str, str]:
    return compiler.process(element.left, **kw), compiler.process(element.right, **kw)


class text_contains(_TextPair):
    """``needle`` occurs in ``haystack`` (case-sensitive, no wildcards); NULL when ``haystack`` is NULL."""

    inherit_cache = True

    def __init__(self, haystack, needle: str) -> None:
        super().__init__(haystack, bindparam(None, needle, String()))


@compiles(text_contains)
def _text_contains_pg(element, compiler, **kw):
    return "(strpos({}, {}) > 0)".format(*_pair(compiler, element, **kw))


@compiles(text_contains, "sqlite")
def _text_contains_sqlite(element, compiler, **kw):
    return "(instr({}, {}) > 0)".format(*_pair(compiler, element, **kw))


class text_starts_with(_TextPair):
    """``text`` begins with ``prefix`` (case-sensitive, no wildcards); NULL when ``text`` is NULL."""

    inherit_cache = True

    def __init__(self, text, prefix: str) -> None:
        super().__init__(text, bindparam(None, prefix, String()))


@compiles(text_starts_with)
def _text_starts_with(element, compiler, **kw):
    text, prefix = _pair(compiler, element, **kw)
    return f"(substr({text}, 1, length({prefix})) = {prefix})"


class text_ends_with(_TextPair):
    """``text`` ends with ``suffix`` (case-sensitive, no wildcards; ``suffix`` not empty); NULL when ``text`` is
    NULL."""

    inherit_cache = True

    def __init__(self, text, suffix: str) -> None:
        super().__init__(text, bindparam(None, suffix, String()))


@compiles(text_ends_with)
def _text_ends_with_pg(element, compiler, **kw):
    text, suffix = _pair(compiler, element, **kw)
    return f"(right({text}, length({suffix})) = {suffix})"


@compiles(text_ends_with, "sqlite")
def _text_ends_with_sqlite(element, compiler, **kw):
    text, suffix = _pair(compiler, element, **kw)
    return f"(substr({text}, -length({suffix})) = {suffix})"


def like_pattern(glob: str) -> str:
    """A glob (``*``, ``?``) as a LIKE pattern escaped with backslash."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def sqlite_glob_pattern(glob: str) -> str:
    """A glob (``*``, ``?``) as SQLite GLOB pattern: ``[`` is the only other special character there."""
    return glob.replace("[", "[[]")


class glob_match(FunctionElement):
    """``text`` matches the glob (``*`` any run, ``?`` one character, the rest literal), case-sensitively:
    ``LIKE … ESCAPE`` on PostgreSQL, ``GLOB`` on SQLite (whose LIKE ignores case)."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, text, glob: str) -> None:
        super().__init__(
            text, bindparam(None, like_pattern(glob), String()), bindparam(None, sqlite_glob_pattern(glob), String())
        )


@compiles(glob_match)
def _glob_match_pg(element, compiler, **kw):
    text, like, _ = (compiler.process(c, **kw) for c in element.clauses.clauses)
    return f"({text} LIKE {like} ESCAPE '\\')"


@compiles(glob_match, "sqlite")
def _glob_match_sqlite(element, compiler, **kw):
    text, _, glob = (compiler.process(c, **kw) for c in element.clauses.clauses)
    return f"({text} GLOB {glob})"


# -- groups --------------------------------------------------------------------------------------------------------

# SQLite (before 3.46) parses "a OR b OR …" into an expression as deep as the list is long and refuses depth over
# 1,000, and its parser overflows past about 35 nested parentheses: parenthesising long lists into balanced runs
# trades one limit for the other. max()/min() over 0/1 values are flat on both counts (at most 100 arguments a
# call; SQLite allows 127).
_SQLITE_ARGUMENTS = 100


class _BooleanList(ColumnElement):
    type = Boolean()
    inherit_cache = True
    _traverse_internals = [("items", InternalTraversal.dp_clauseelement_tuple)]

    def __init__(self, items) -> None:
        self.items = tuple(items)


class any_of(_BooleanList):
    """True when some item is; false for no items. Items are two-valued (never NULL)."""

    inherit_cache = True


class all_of(_BooleanList):
    """True when every item is; true for no items. Items are two-valued (never NULL)."""

    inherit_cache = True


@compiles(any_of)
@compiles(all_of)
def _boolean_list(element, compiler, **kw):
    if not element.items:
        return compiler.process(false() if isinstance(element, any_of) else true(), **kw)
    combine = or_ if isinstance(element, any_of) else and_
    return compiler.process(combine(*element.items).self_group(), **kw)


@compiles(any_of, "sqlite")
@compiles(all_of, "sqlite")
def _boolean_list_sqlite(element, compiler, **kw):
    if len(element.items) < 2:
        return _boolean_list(element, compiler, **kw)
    function = "max" if isinstance(element, any_of) else "min"
    parts = [compiler.process(item, **kw) for item in element.items]
    while len(parts) > 1:
        runs = [parts[i : i + _SQLITE_ARGUMENTS] for i in range(0, len(parts), _SQLITE_ARGUMENTS)]
        parts = [f"{function}({', '.join(run)})" if len(run) > 1 else run[0] for run in runs]
    return parts[0]
