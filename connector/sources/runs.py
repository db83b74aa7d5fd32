"""Running a model: read its rows in chunks, write what changed through the ingestion services, commit per chunk.

Each chunk is one transaction of the service's database: the chunk's changed rows go through the same ingestion
services as API batches (``identify``, ``group``, ``track``, ``upsert_objects``, then ``apply_changes``, so
segments and ``Segments`` follow), the rows' hashes (``source_rows``), the model's cursor and the run's counts are
written together. A crash therefore re-reads at most the chunk in flight; a row whose hash did not change is not
written again, so a re-run over unchanged data writes nothing.

A run fails, having written no part of the failing chunk, on bad SQL, a mapped column missing from the query, or a
value of a type that cannot map; chunks committed before stay. Rows the ingestion refuses are ``invalid``: counted
and kept with their key and reason, never written, read again by the next full read.

Deletes (``deletes`` "clear" or "remove"): after the rows, the key columns are read in full and every row written
before whose key is gone is undone (attributes cleared, the subject erased, or the account link removed; see
``connector.sources.deletes``) and forgotten.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.db import Database
from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.ingest.accounts import group
from connector.ingest.batches import DUPLICATE, INVALID, MAX_BATCH, BatchResult
from connector.ingest.events import track
from connector.ingest.objects import upsert_objects
from connector.ingest.statements import insert_rows, one_of
from connector.ingest.users import identify
from connector.models import ModelKind, RunStatus, Source, SourceModel, SourceRow, SourceRun, SourceRunError, utcnow
from connector.security import SecretBox
from connector.segments.incremental import apply_changes
from connector.sources.config import attribute_columns, key_columns, missing_columns
from connector.sources.deletes import undo_rows
from connector.sources.reader import (
    TypeMappingError,
    cursor_token,
    cursor_value,
    open_engine,
    query_columns,
    stream_rows,
)
from connector.sources.rows import MAX_KEY, Layout, item_hash, key_digest, row_item, row_key
from connector.sources.statistics import Statistics
from connector.streams import read_ahead

log = logging.getLogger("connector.sources")

CHUNK_SIZE = 10_000
# A running run whose heartbeat is older than this was abandoned by a process that stopped; it is taken over.
LEASE = timedelta(minutes=5)
MAX_ERRORS = 1000
INGEST: dict[ModelKind, Callable[..., BatchResult]] = {
    ModelKind.USERS: identify,
    ModelKind.ACCOUNTS: group,
    ModelKind.ACCOUNT_LINKS: identify,
    ModelKind.EVENTS: track,
    ModelKind.OBJECTS: upsert_objects,
}


@dataclass
class RunOutcome:
    run_id: int
    model_id: int
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class _Counts:
    rows_read: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    invalid: int = 0
    deleted: int = 0
    errors: list[tuple[str | None, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("rows_read", "created", "changed", "unchanged", "invalid", "deleted")}


def claim_run(session: Session, model_id: int, trigger: str) -> SourceRun:
    """Insert the model's running run (its lease); ``ConflictError`` when another run of it is going."""
    now = utcnow()
    session.execute(
        update(SourceRun)
        .where(
            SourceRun.model_id == model_id,
            SourceRun.status == RunStatus.RUNNING.value,
            SourceRun.heartbeat_at < now - LEASE,
        )
        .values(status=RunStatus.FAILED.value, finished_at=now, error="abandoned: the process running it stopped")
    )
    run = SourceRun(
        model_id=model_id, status=RunStatus.RUNNING.value, trigger=trigger, started_at=now, heartbeat_at=now
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        raise ConflictError("a run of this model is in progress") from None
    return run


@dataclass
class PreparedRun:
    """A claimed run, ready to execute (``execute_run``): the lease is taken and committed."""

    run_id: int
    model_id: int
    url: str
    snapshot: _Snapshot


def prepare_run(
    db: Database, model_id: int, box: SecretBox, trigger: str = "manual", *, workspace_id: int | None = None
) -> PreparedRun:
    """Claim a run of a model (within ``workspace_id`` when given). ``NotFoundError`` for no such model,
    ``ConflictError`` when a run of it is going."""
    with db.session() as session:
        model = session.get(SourceModel, model_id)
        if model is None or (workspace_id is not None and model.workspace_id != workspace_id):
            raise NotFoundError("model")
        source = session.get(Source, model.source_id)
        run_id = claim_run(session, model_id, trigger).id
        return PreparedRun(run_id, model_id, box.decrypt(source.url_encrypted)["url"], _Snapshot.of(model))


def execute_run(db: Database, prepared: PreparedRun, *, chunk_size: int = CHUNK_SIZE) -> RunOutcome:
    """Read and write a claimed run to its end; every failure is recorded on the run and returned as failed."""
    run_id, model_id, snapshot = prepared.run_id, prepared.model_id, prepared.snapshot
    counts = _Counts()
    try:
        _read_and_write(db, prepared.url, snapshot, run_id, counts, chunk_size)
        if snapshot.deletes != "none":
            _undo_deleted(db, prepared.url, snapshot, run_id, counts)
    except (InvalidError, TypeMappingError, SQLAlchemyError) as exc:
        error = _describe(exc)
        _finish(db, run_id, RunStatus.FAILED.value, counts, error)
        log.warning("source model %s: run %s failed: %s", model_id, run_id, error)
        return RunOutcome(run_id, model_id, RunStatus.FAILED.value, counts.as_dict(), error)
    except Exception as exc:
        _finish(db, run_id, RunStatus.FAILED.value, counts, f"unexpected error: {type(exc).__name__}")
        raise
    status = RunStatus.PARTIAL.value if counts.invalid else RunStatus.SUCCEEDED.value
    _finish(db, run_id, status, counts, None)
    log.info("source model %s: run %s %s %s", model_id, run_id, status, counts.as_dict())
    return RunOutcome(run_id, model_id, status, counts.as_dict())


def run_model(
    db: Database, model_id: int, box: SecretBox, trigger: str = "manual", *, chunk_size: int = CHUNK_SIZE
) -> RunOutcome:
    """Run one model now, in this thread (``prepare_run`` then ``execute_run``)."""
    return execute_run(db, prepare_run(db, model_id, box, trigger), chunk_size=chunk_size)


@dataclass
class _Snapshot:
    """What a run needs of its model, read once (the model row may change while the run goes)."""

    id: int
    workspace_id: int
    kind: ModelKind
    query: str
    mapping: dict[str, Any]
    cursor_column: str | None
    cursor_state: dict[str, Any] | None
    deletes: str

    @classmethod
    def of(cls, model: SourceModel) -> _Snapshot:
        return cls(
            model.id,
            model.workspace_id,
            ModelKind(model.kind),
            model.query,
            dict(model.mapping),
            model.cursor_column,
            model.cursor_state,
            model.deletes,
        )


def _layout(connection, snapshot: _Snapshot) -> Layout:
    columns = query_columns(connection, snapshot.query)
    errors = missing_columns(snapshot.mapping, snapshot.cursor_column, columns)
    if errors:
        raise InvalidError(errors)
    return Layout(
        snapshot.kind,
        snapshot.mapping,
        key_columns(snapshot.kind, snapshot.mapping),
        attribute_columns(snapshot.mapping, columns, snapshot.cursor_column),
    )


def _read_and_write(db: Database, url: str, snapshot: _Snapshot, run_id: int, counts: _Counts, chunk_size: int):
    """Write the chunks of the source's rows, each with its cursor; the next chunk is read (and its rows shaped) on
    a thread of its own while one is written, so the source's wait and ours overlap."""
    statistics = Statistics(db)
    with read_ahead(lambda: _read(url, snapshot, chunk_size), name=f"source-model-{snapshot.id}") as chunks:
        for layout, planned, cursor in chunks:
            before = counts.created + counts.changed
            with collector_paused(), db.session() as session:
                _write_chunk(session, snapshot, layout, run_id, planned, counts, cursor)
            statistics.wrote(counts.created + counts.changed - before)


def _read(
    url: str, snapshot: _Snapshot, chunk_size: int
) -> Iterator[tuple[Layout, list[_Planned], dict[str, Any] | None]]:
    """The source's rows after the committed cursor, chunk by chunk: the layout, the chunk's planned items, and the
    cursor to commit with it."""
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            layout = _layout(connection, snapshot)
            after = None
            if snapshot.cursor_column and snapshot.cursor_state:
                after = [cursor_value(t) for t in snapshot.cursor_state["after"]]
            for rows in stream_rows(
                connection,
                snapshot.query,
                chunk_size=chunk_size,
                cursor_column=snapshot.cursor_column,
                key_columns=layout.key_columns,
                after=after,
            ):
                cursor = None
                if snapshot.cursor_column:
                    last = rows[-1]
                    cursor = {"after": [cursor_token(last[c]) for c in (snapshot.cursor_column, *layout.key_columns)]}
                yield layout, _plan(layout, rows), cursor
    finally:
        engine.dispose()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a chunk is written, then run once over what the chunk made.

    A chunk allocates hundreds of thousands of objects, which made the collector walk every live object again and
    again (15% of a run). Objects are still freed as they go (reference counting); the cycles the chunk left are
    collected at the end, young generations only: everything the chunk allocated is young while the collector is
    paused. Resumed on exit only when this call paused it, so overlapping runs never leave it paused."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
        gc.collect(1)


@dataclass
class _Planned:
    key: str | None
    item: dict[str, Any] | None
    hash: str | None
    reason: str | None = None


def _plan(layout: Layout, rows: list[dict[str, Any]]) -> list[_Planned]:
    """Items, keys and hashes of a chunk's rows; a type that cannot map fails the whole chunk before any write."""
    planned = []
    for row in rows:
        key = row_key(layout, row)
        if key is None:
            planned.append(_Planned(None, None, None, "a key column (" + ", ".join(layout.key_columns) + ") is null"))
            continue
        if len(key) > MAX_KEY:
            planned.append(_Planned(key[:100], None, None, f"the key is longer than {MAX_KEY} characters"))
            continue
        item = row_item(layout, row)
        planned.append(_Planned(key, item, item_hash(item)))
    return planned


def _write_chunk(
    session: Session,
    snapshot: _Snapshot,
    layout: Layout,
    run_id: int,
    planned: list[_Planned],
    counts: _Counts,
    cursor: dict[str, Any] | None,
) -> None:
    # The model's row, locked against its delete until the chunk commits: what a foreign key's check did for each
    # source row written, once (migration 0020). A model deleted meanwhile fails the run, having written nothing.
    locked = select(SourceModel.id).where(SourceModel.id == snapshot.id).with_for_update(read=True, key_share=True)
    if session.scalar(locked) is None:
        raise InvalidError.one("model", "the model was deleted while it ran")
    chunk = _Counts(rows_read=len(planned))
    keys = sorted({p.key for p in planned if p.item is not None})
    stored = _stored_hashes(session, snapshot.id, keys)
    to_write: list[_Planned] = []
    for p in planned:
        if p.item is None:
            chunk.invalid += 1
            chunk.errors.append((p.key, p.reason))
        elif stored.get(p.key) == p.hash:
            chunk.unchanged += 1
        else:
            to_write.append(p)
    written: dict[str, str] = {}
    changes = ChangeSet()
    ingest = INGEST[snapshot.kind]
    # The whole chunk is one batch: the ingestion services are set-based, so it costs the same few statements as
    # a batch of the API's size.
    if to_write:
        result = ingest(session, snapshot.workspace_id, [p.item for p in to_write], partial=True)
        changes.merge(result.changes)
        for p, fate in zip(to_write, result.results, strict=True):
            if fate.status == INVALID:
                chunk.invalid += 1
                chunk.errors.append((p.key, _reason(layout, fate.errors)))
                continue
            written[p.key] = p.hash
            if fate.status == DUPLICATE:
                chunk.unchanged += 1
            elif fate.created and p.key not in stored:
                chunk.created += 1
            else:
                chunk.changed += 1
    apply_changes(session, snapshot.workspace_id, changes)
    _remember(session, snapshot.id, written)
    if cursor is not None:
        session.execute(update(SourceModel).where(SourceModel.id == snapshot.id).values(cursor_state=cursor))
    _add_counts(session, run_id, chunk, counts)


def _reason(layout: Layout, errors: list[dict[str, str]]) -> str:
    parts = []
    for error in errors:
        column = layout.column_of(error["field"]) if error["field"] else None
        where = f"column {column!r}" if column else error["field"] or "row"
        parts.append(f"{where}: {error['reason']}")
    return "; ".join(parts)


def _stored_hashes(session: Session, model_id: int, keys: Sequence[str]) -> dict[str, str]:
    if not keys:
        return {}
    return dict(
        session.execute(
            select(SourceRow.row_key, SourceRow.row_hash).where(
                SourceRow.model_id == model_id, one_of(session, SourceRow.row_key, keys)
            )
        ).all()
    )


def _remember(session: Session, model_id: int, written: dict[str, str]) -> None:
    """Upsert the hashes of the rows written, in one statement (``insert_rows``: one JSON text on PostgreSQL)."""
    rows = [{"model_id": model_id, "row_key": k, "row_hash": h} for k, h in written.items()]
    insert_rows(session, SourceRow.__table__, rows, conflict=["model_id", "row_key"], update=["row_hash"])


def _add_counts(session: Session, run_id: int, chunk: _Counts, counts: _Counts) -> None:
    """Add a chunk's counts to the run (committed with the chunk) and keep the first errors with their keys."""
    room = MAX_ERRORS - len(counts.errors)
    for key, reason in chunk.errors[: max(room, 0)]:
        session.add(SourceRunError(run_id=run_id, row_key=key, reason=reason))
    for name, value in chunk.as_dict().items():
        setattr(counts, name, getattr(counts, name) + value)
    counts.errors.extend(chunk.errors[: max(room, 0)])
    session.execute(update(SourceRun).where(SourceRun.id == run_id).values(heartbeat_at=utcnow(), **counts.as_dict()))


def _undo_deleted(db: Database, url: str, snapshot: _Snapshot, run_id: int, counts: _Counts) -> None:
    """Undo the rows written before whose key the source no longer answers (``connector.sources.deletes``)."""
    engine = open_engine(url)
    seen: set[int] = set()
    try:
        with engine.connect() as connection:
            layout = _layout(connection, snapshot)
            keys_query = "SELECT " + ", ".join(
                connection.dialect.identifier_preparer.quote(c) for c in layout.key_columns
            )
            keys_query += f" FROM ({snapshot.query.strip().rstrip(';')}) AS connector_keys"
            for rows in stream_rows(connection, keys_query, chunk_size=CHUNK_SIZE):
                for row in rows:
                    key = row_key(layout, row)
                    if key is not None:
                        seen.add(key_digest(key))
    finally:
        engine.dispose()
    after = ""
    while True:
        with db.session() as session:
            page = session.scalars(
                select(SourceRow.row_key)
                .where(SourceRow.model_id == snapshot.id, SourceRow.row_key > after)
                .order_by(SourceRow.row_key)
                .limit(MAX_BATCH)
            ).all()
            if not page:
                return
            after = page[-1]
            gone = [k for k in page if key_digest(k) not in seen]
            if gone:
                undo_rows(session, snapshot.workspace_id, snapshot.id, layout, snapshot.deletes, gone)
                session.execute(delete(SourceRow).where(SourceRow.model_id == snapshot.id, SourceRow.row_key.in_(gone)))
                chunk = _Counts(deleted=len(gone))
                _add_counts(session, run_id, chunk, counts)


def _describe(exc: Exception) -> str:
    if isinstance(exc, InvalidError):
        return "; ".join(f"{e['field']}: {e['reason']}" for e in exc.errors)
    if isinstance(exc, SQLAlchemyError):
        message = str(getattr(exc, "orig", None) or exc).strip()
        return "the source failed: " + (message.splitlines()[0][:500] if message else type(exc).__name__)
    return str(exc)


def _finish(db: Database, run_id: int, status: str, counts: _Counts, error: str | None) -> None:
    with db.session() as session:
        session.execute(
            update(SourceRun)
            .where(SourceRun.id == run_id)
            .values(status=status, finished_at=utcnow(), heartbeat_at=utcnow(), error=error, **counts.as_dict())
        )


def run_source(db: Database, source_id: int, box: SecretBox, trigger: str = "manual") -> list[RunOutcome]:
    """Run every enabled model of a source, in the order they were made (users before the links that name them)."""
    with db.session() as session:
        if session.get(Source, source_id) is None:
            raise NotFoundError("source")
        model_ids = session.scalars(
            select(SourceModel.id)
            .where(SourceModel.source_id == source_id, SourceModel.enabled.is_(True))
            .order_by(SourceModel.id)
        ).all()
    outcomes = []
    for model_id in model_ids:
        try:
            outcomes.append(run_model(db, model_id, box, trigger))
        except ConflictError:
            log.info("source model %s: a run is in progress; skipped", model_id)
    return outcomes


def claimed_run(db: Database, run_id: int, box: SecretBox) -> PreparedRun | None:
    """A run claimed elsewhere (the API, before sending it to a worker), ready to execute; None when it is no
    longer running (it finished, or was marked abandoned)."""
    with db.session() as session:
        run = session.get(SourceRun, run_id)
        if run is None or run.status != RunStatus.RUNNING.value:
            return None
        model = session.get(SourceModel, run.model_id)
        source = session.get(Source, model.source_id)
        return PreparedRun(run_id, model.id, box.decrypt(source.url_encrypted)["url"], _Snapshot.of(model))
