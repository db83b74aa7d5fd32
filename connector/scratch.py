"""Temporary tables for set-based work inside one transaction (membership diffs, computed values).

A scratch table lives on the session's connection (``CREATE TEMPORARY TABLE IF NOT EXISTS``), so it is private to
the transaction's connection on every dialect and needs no migration. ``scratch(session, table)`` empties it before
use; on PostgreSQL it is also emptied at commit (``ON COMMIT DELETE ROWS``) so large results do not linger.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from connector.models.base import JSONType

_metadata = MetaData()
_TEMPORARY = {"prefixes": ["TEMPORARY"], "postgresql_on_commit": "DELETE ROWS"}

# A segment's freshly evaluated members (or a preview's). PostgreSQL anti-joins it by hashing, so it has no index
# there (filling a million rows is cheaper without one); SQLite probes it per row and needs one.
evaluated_subjects = Table(
    "scratch_evaluated_subjects",
    _metadata,
    Column("subject_id", BigInteger, nullable=False),
    Index("ix_scratch_evaluated_subjects", "subject_id", unique=True, info={"sqlite_only": True}),
    **_TEMPORARY,
)

# PostgreSQL: the same, made by ``CREATE TEMPORARY TABLE … AS`` (see ``evaluate_into``); dropped at commit, so never
# created through ``scratch``.
evaluated_subjects_pg = Table("scratch_evaluated_parallel", MetaData(), Column("subject_id", BigInteger))

# A set of subject ids a caller passes as a scope (``id_set``), when a list would be too long to bind.
subject_ids = Table(
    "scratch_subject_ids", _metadata, Column("subject_id", BigInteger, primary_key=True, autoincrement=False),
    **_TEMPORARY,
)  # fmt: skip

# The subjects each segment of an evaluation run is limited to (a segment absent here is evaluated whole).
evaluation_scope = Table(
    "scratch_evaluation_scope",
    _metadata,
    Column("segment_id", BigInteger, nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    Index("ix_scratch_evaluation_scope", "segment_id", "subject_id"),
    **_TEMPORARY,
)

# Membership changes of one evaluation run, per segment: ``entered`` true for an enter, false for an exit.
membership_changes = Table(
    "scratch_membership_changes",
    _metadata,
    Column("segment_id", BigInteger, nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    Column("entered", Boolean, nullable=False),
    Index("ix_scratch_membership_changes", "segment_id", "subject_id"),
    **_TEMPORARY,
)

# Freshly computed values of one computed property.
computed_scratch = Table(
    "scratch_computed_values",
    _metadata,
    Column("subject_id", BigInteger, primary_key=True, autoincrement=False),
    Column("value", JSONType),
    **_TEMPORARY,
)

# PostgreSQL has no statistics on a temporary table until it is analysed; past this many rows the planner's
# default guess can pick a nested loop over a million rows.
_ANALYZE_ABOVE = 5_000
# Emptying: DELETE is cheapest for a few rows; PostgreSQL's TRUNCATE (a new file) wins for many.
_TRUNCATE_ABOVE = 10_000


@dataclass
class _Usage:
    """What this transaction did with scratch tables: rows put in each (None: unknown, maybe some)."""

    transaction: weakref.ref
    rows: dict[str, int | None] = field(default_factory=dict)
    # Rows each table held when it was last analysed.
    analysed: dict[str, int] = field(default_factory=dict)


def _usage(session: Session) -> _Usage:
    transaction = session.get_transaction() or session.begin()
    usage = session.info.get("scratch")
    if usage is None or usage.transaction() is not transaction:
        usage = session.info["scratch"] = _Usage(weakref.ref(transaction))
    return usage


def scratch(session: Session, *tables: Table) -> None:
    """Make sure ``tables`` exist on the session's connection, empty, ready to be filled.

    Report what you put in with ``filled`` so the next use empties the table the cheapest way.
    """
    usage = _usage(session)
    postgresql = session.get_bind().dialect.name == "postgresql"
    for table in tables:
        if table.name not in usage.rows:
            _create(session, table)
            if not postgresql:  # PostgreSQL emptied it at the last commit (ON COMMIT DELETE ROWS)
                session.execute(delete(table))
        else:
            rows = usage.rows[table.name]
            if rows is None or rows > 0:
                if postgresql and rows is not None and rows > _TRUNCATE_ABOVE:
                    session.execute(text(f"TRUNCATE {table.name}"))
                else:
                    session.execute(delete(table))
        usage.rows[table.name] = None
        usage.analysed.pop(table.name, None)


def _create(session: Session, table: Table) -> None:
    """Create the table on this connection unless a committed (or the current) transaction did."""
    connection = session.connection()
    known = connection.info.setdefault("scratch_tables", {"committed": set(), "pending": set()})
    if table.name in known["committed"] or table.name in known["pending"]:
        return
    _track_transactions(connection.engine)
    connection.execute(CreateTable(table, if_not_exists=True))
    for index in table.indexes:
        if connection.dialect.name == "sqlite" or not index.info.get("sqlite_only"):
            connection.execute(CreateIndex(index, if_not_exists=True))
    known["pending"].add(table.name)


_tracked_engines: weakref.WeakSet = weakref.WeakSet()


def _track_transactions(engine) -> None:
    # A temporary table created in a transaction that rolls back is gone: forget it then, keep it on commit.
    if engine in _tracked_engines:
        return
    _tracked_engines.add(engine)

    @event.listens_for(engine, "commit")
    def _committed(connection) -> None:
        known = connection.info.get("scratch_tables")
        if known:
            known["committed"] |= known["pending"]
            known["pending"].clear()

    @event.listens_for(engine, "rollback")
    def _rolled_back(connection) -> None:
        known = connection.info.get("scratch_tables")
        if known:
            known["pending"].clear()


def filled(session: Session, table: Table, rows: int) -> None:
    """Note that ``rows`` rows were put in a scratch table (and give PostgreSQL statistics when many were)."""
    usage = _usage(session)
    total = usage.rows[table.name] = (usage.rows.get(table.name) or 0) + rows
    # Analysed again only once it has doubled: the planner scales statistics by the table's current size, and a run
    # filling the changes table segment after segment would otherwise analyse it twenty times.
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql and rows > _ANALYZE_ABOVE and total >= 2 * usage.analysed.get(table.name, 0):
        session.execute(text(f"ANALYZE {table.name}"))
        usage.analysed[table.name] = total


class _CreateTemporaryTableAs(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, name: str, query: Select) -> None:
        self.name, self.query = name, query


@compiles(_CreateTemporaryTableAs)
def _compile_create_temporary_table_as(element: _CreateTemporaryTableAs, compiler, **kw) -> str:
    return f"CREATE TEMPORARY TABLE {element.name} ON COMMIT DROP AS {compiler.process(element.query, **kw)}"


def evaluate_into(session: Session, query: Select) -> tuple[Table, int]:
    """Run ``query`` (one column, ``subject_id``) into a scratch table; returns the table and how many rows it holds
    (valid until the next call in the transaction).

    PostgreSQL runs ``INSERT … SELECT`` without parallel workers but ``CREATE TABLE … AS`` with them: a segment
    filtering ten million events on a JSON property took 11 s the first way and 1.5 s the second on two cores.
    """
    if session.get_bind().dialect.name != "postgresql":
        scratch(session, evaluated_subjects)
        rows = affected_rows(session, insert(evaluated_subjects).from_select(["subject_id"], query))
        filled(session, evaluated_subjects, rows)
        return evaluated_subjects, rows
    table = evaluated_subjects_pg
    session.execute(text(f"DROP TABLE IF EXISTS pg_temp.{table.name}"))
    rows = affected_rows(session, _CreateTemporaryTableAs(table.name, query))
    if rows > _ANALYZE_ABOVE:
        session.execute(text(f"ANALYZE {table.name}"))
    return table, rows


def id_set(session: Session, ids: Iterable[int]) -> Select:
    """The ids as a one-column select over a scratch table (valid until the next ``id_set`` call)."""
    scratch(session, subject_ids)
    insert_rows(session, subject_ids, [{"subject_id": i} for i in set(ids)])
    return select(subject_ids.c.subject_id)


def affected_rows(session: Session, statement) -> int:
    """Execute an INSERT … SELECT / UPDATE / DELETE and return how many rows it wrote (every dialect reports it
    only when asked)."""
    return session.execute(statement, execution_options={"preserve_rowcount": True}).rowcount


def id_array(ids: Sequence[int | None]) -> ColumnElement:
    """A ``bigint[]`` of these ids (None: NULL) as one parameter (PostgreSQL): sent as the array's text,
    ``{1,2,NULL}``, which PostgreSQL parses in a fraction of the time the driver takes to adapt a list of 5,000 ints
    (1.0 ms against 4.6 ms a statement)."""
    text_ = "{" + ",".join("NULL" if i is None else str(int(i)) for i in ids) + "}"
    return cast(bindparam(None, text_, type_=Text), postgresql.ARRAY(BigInteger))


def _array(values: list, type_) -> ColumnElement:
    """A column's values as one array parameter: integers as ``id_array``'s text."""
    if isinstance(type_, Integer):
        return id_array(values)
    return bindparam(None, values, type_=postgresql.ARRAY(type_))


def insert_rows(session: Session, table: Table, rows: Sequence[dict], chunk: int = 5_000) -> int:
    """Insert rows into a scratch table; returns how many.

    On PostgreSQL, columns of plain types travel as one array each (``INSERT … SELECT unnest(…)``): one statement
    whatever the number of rows, where an executemany costs a round trip per row. Elsewhere: one executemany per
    ``chunk`` rows.
    """
    if not rows:
        filled(session, table, 0)
        return 0
    names = list(rows[0])
    if session.get_bind().dialect.name == "postgresql" and not any(
        isinstance(table.c[name].type, JSON) for name in names
    ):
        arrays = [_array([row[name] for row in rows], table.c[name].type) for name in names]
        session.execute(insert(table).from_select(names, select(*[func.unnest(a) for a in arrays])))
    else:
        for start in range(0, len(rows), chunk):
            session.execute(table.insert(), list(rows[start : start + chunk]))
    filled(session, table, len(rows))
    return len(rows)


# What PostgreSQL assumes a page read out of order costs against one read in sequence, while ``keyed_probes`` holds.
KEYED_RANDOM_PAGE_COST = "1.1"


@contextmanager
def keyed_probes(session: Session) -> Iterator[None]:
    """Statements in this block read a few thousand rows of tables of millions, each found by its key: plan them so.

    With PostgreSQL's default ``random_page_cost`` (4, a spinning disk's) the planner prefers reading a whole table
    in sequence to ten thousand probes of its primary key: evaluating a segment for the 10,000 people a source chunk
    or an ingestion batch changed read all of a million users (137 ms) where probing them takes 31 ms, and the more
    people a workspace had, the slower each batch. Tables the service reads are cached or on solid-state storage,
    where an out-of-order read costs about what a sequential one does (PostgreSQL's documentation suggests 1.1 for
    such storage). The setting is this transaction's own and restored on leaving the block (an error rolls it back
    with the transaction). Other dialects: nothing.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    previous = session.execute(
        text("SELECT current_setting('random_page_cost'), set_config('random_page_cost', :cost, true)"),
        {"cost": KEYED_RANDOM_PAGE_COST},
    ).scalar_one()
    yield
    # Not on an error: the transaction (or its savepoint) is rolled back, and the setting with it.
    session.execute(text("SELECT set_config('random_page_cost', :cost, true)"), {"cost": previous})
