"""Which subjects a run must read: those written since the state the destination last acknowledged.

Every write of a user, an account or a computed value (``Segments``: every membership change, rename and delete
rewrites it) takes a place in one database-wide change order, ``change_seq`` (migration 0012: the writing
transaction's id on PostgreSQL, a counter on SQLite); deleting one leaves a tombstone at its place. A run starts
by taking a ``Mark``, the point of that order everything before which is settled:

- PostgreSQL: its transaction snapshot. Every transaction below ``xmax`` and not in progress has ended, so what it
  wrote is visible to every later read; a transaction in progress at the mark may commit later with a smaller id
  than writes already seen, so the next run reads what those wrote too (``in_progress``);
- SQLite (one writer at a time): the counter's next value.

A run that completes (nothing left unsent, no failure) saves the mark it started from in ``sync_watermarks`` with
the fingerprint of the configuration that rendered the payloads. The next run reads only the subjects whose row,
``Segments`` value or tombstone is at or after that mark, the records the destination rejected (they are tried again
by every run) and the subjects the last run found invalid; an unchanged re-run reads nothing, whatever the size of
the workspace or the state of the table statistics. A run without a watermark, with another configuration
(mappings, identity, filter, mode) or with more than ``MAX_INCREMENT`` subjects to read does a full run.
"""

from __future__ import annotations

import hashlib
import json
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select
from sqlalchemy.orm import Session

from connector.models import (
    ChangeCounter,
    ChangeTombstone,
    ComputedValue,
    RecordState,
    RunStatus,
    Sync,
    SyncRecord,
    SyncRun,
    SyncSegment,
    SyncWatermark,
    utcnow,
)
from connector.syncs.mapping import SEGMENTS, Renderer
from connector.syncs.planner import SUBJECT_MODELS, Scope, scope_condition

# More changed subjects than this: a full run reads them in keyset pages, in constant memory, at the same cost.
MAX_INCREMENT = 250_000
# More invalid subjects than this are not remembered: the next run is a full one.
MAX_PENDING = 50_000


@dataclass(frozen=True)
class Mark:
    """A point of the change order: writes at or after ``since``, or by a transaction in ``in_progress``, come
    after it."""

    since: int
    in_progress: tuple[int, ...] = ()


def current_mark(session: Session) -> Mark:
    """The point of the change order before which every write is settled and visible, now."""
    if session.get_bind().dialect.name == "postgresql":
        snapshot = select(func.txid_current_snapshot().label("s")).subquery()
        xmax = func.txid_snapshot_xmax(snapshot.c.s)
        row = session.execute(select(xmax, func.array(select(func.txid_snapshot_xip(snapshot.c.s)).scalar_subquery())))
        since, in_progress = row.one()
        return Mark(int(since), tuple(sorted(int(x) for x in in_progress or ())))
    seq = session.scalar(select(func.coalesce(func.max(ChangeCounter.seq), 0)))
    return Mark(int(seq) + 1)


def after(column, mark: Mark):
    """The condition "``column`` (a change_seq) comes after ``mark``"."""
    if mark.in_progress:
        return or_(column >= mark.since, column.in_(mark.in_progress))
    return column >= mark.since


def fingerprint(sync: Sync, scope: Scope) -> str:
    """What the payloads and the scope of a sync depend on besides the data: another value means a full run."""
    described = {
        "subject_type": str(sync.subject_type),
        "object": sync.destination_object,
        "mappings": sync.mappings,
        "identity": sync.identity,
        "mode": str(sync.mode),
        "mirror_action": sync.mirror_action,
        "segments": sorted(scope.segment_ids),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Increment:
    """What a run reads: ``subject_ids`` (sorted), or every subject in scope when None; ``mark`` is where it
    starts in the change order (saved as the watermark if the run completes)."""

    mark: Mark
    subject_ids: list[int] | None


def plan_increment(
    session: Session, sync_id: int, scope: Scope, fingerprint_: str, computed: Sequence[str] = ()
) -> Increment:
    """The mark a run starts from, and the subjects it must read (None: all of them). ``computed``: the computed
    properties the sync maps (``Segments`` is always looked at: it follows membership, hence the scope)."""
    mark = current_mark(session)
    watermark = session.get(SyncWatermark, sync_id)
    if watermark is None or watermark.fingerprint != fingerprint_:
        return Increment(mark, None)
    previous = Mark(watermark.since_seq, tuple(watermark.in_progress or ()))
    ids = changed_subjects(session, scope, sync_id, previous, computed)
    ids.update(int(i) for i in watermark.pending or ())
    if len(ids) > MAX_INCREMENT:
        return Increment(mark, None)
    return Increment(mark, sorted(ids))


def next_increment(session: Session, sync_id: int) -> Increment:
    """What the next run of a sync would read, as of now."""
    sync = session.get(Sync, sync_id)
    segment_ids = session.scalars(select(SyncSegment.segment_id).where(SyncSegment.sync_id == sync_id))
    scope = Scope(sync.workspace_id, sync.subject_type, tuple(sorted(segment_ids)))
    computed = [m["source"]["name"] for m in sync.mappings if m.get("source", {}).get("kind") == "computed"]
    return plan_increment(session, sync_id, scope, fingerprint(sync, scope), computed)


def changed_subjects(
    session: Session, scope: Scope, sync_id: int, since: Mark, computed: Sequence[str] = ()
) -> set[int]:
    """Subjects of the scope's type whose row, ``Segments`` or other ``computed`` value or tombstone comes after
    ``since``, and the subjects whose record the destination rejected. Each read is an index range (migration
    0012's indexes)."""
    model = SUBJECT_MODELS[scope.subject_type]
    subject_type = scope.subject_type.value
    reads = [
        select(model.id).where(model.workspace_id == scope.workspace_id, after(model.change_seq, since)),
        select(ComputedValue.subject_id).where(
            ComputedValue.workspace_id == scope.workspace_id,
            ComputedValue.subject_type == subject_type,
            ComputedValue.name.in_(sorted({SEGMENTS, *computed})),
            after(ComputedValue.change_seq, since),
        ),
        select(ChangeTombstone.subject_id).where(
            ChangeTombstone.workspace_id == scope.workspace_id,
            ChangeTombstone.subject_type == subject_type,
            after(ChangeTombstone.change_seq, since),
        ),
        select(SyncRecord.subject_id).where(SyncRecord.sync_id == sync_id, SyncRecord.state == RecordState.REJECTED),
    ]
    ids: set[int] = set()
    for read in reads:
        ids.update(session.scalars(read))
    return ids


def synced_count(session: Session, sync_id: int) -> int:
    """How many records of the sync the destination holds as sent."""
    return session.scalar(
        select(func.count()).where(SyncRecord.sync_id == sync_id, SyncRecord.state == RecordState.SYNCED)
    )


def save_watermark(session: Session, sync_id: int, fingerprint_: str, mark: Mark, pending: Sequence[int]) -> None:
    """Record that a run starting at ``mark`` completed: the next one reads what came after, and ``pending``."""
    watermark = session.get(SyncWatermark, sync_id)
    if len(pending) > MAX_PENDING:
        if watermark is not None:
            session.delete(watermark)
        return
    values: dict[str, Any] = {
        "fingerprint": fingerprint_,
        "since_seq": mark.since,
        "in_progress": list(mark.in_progress),
        "pending": sorted(set(pending)),
        "updated_at": utcnow(),
    }
    if watermark is None:
        session.add(SyncWatermark(sync_id=sync_id, **values))
    else:
        for name, value in values.items():
            setattr(watermark, name, value)
    session.flush()


def prune_tombstones(session: Session, workspace_id: int) -> int:
    """Delete the workspace's tombstones no run will read again: those before every sync's watermark (and not
    written by a transaction a watermark saw in progress), when every sync of the workspace has a watermark and none
    is running (a running first run will save a mark of its own). How many went."""
    syncs = select(Sync.id).where(Sync.workspace_id == workspace_id)
    marks = session.execute(
        select(SyncWatermark.since_seq, SyncWatermark.in_progress).where(SyncWatermark.sync_id.in_(syncs))
    ).all()
    running = select(SyncRun.id).where(SyncRun.sync_id.in_(syncs), SyncRun.status == RunStatus.RUNNING)
    if not marks or len(marks) < session.scalar(select(func.count()).select_from(syncs.subquery())):
        return 0
    if session.scalar(select(running.exists())):
        return 0
    oldest = min(mark.since_seq for mark in marks)
    seen_in_progress = sorted({int(x) for mark in marks for x in mark.in_progress or ()})
    stale = delete(ChangeTombstone).where(
        ChangeTombstone.workspace_id == workspace_id, ChangeTombstone.change_seq < oldest
    )
    if seen_in_progress:
        stale = stale.where(ChangeTombstone.change_seq.not_in(seen_in_progress))
    return session.execute(stale.execution_options(synchronize_session=False)).rowcount


def subject_rows(session: Session, scope: Scope, sync_id: int, renderer: Renderer, subject_ids: Sequence[int]) -> list:
    """The rows ``planner.subject_page`` gives, for exactly ``subject_ids`` (a page's worth) of the scope: three
    lookups by primary key or index (the subjects, their records, their ``Segments``) put together here. Ids
    scattered over the whole table defeat the id range that bounds ``subject_page``'s joins, and with statistics that
    still see an empty ``sync_records`` PostgreSQL then read it once per subject (minutes at 1 M)."""
    model = SUBJECT_MODELS[scope.subject_type]
    names = ["id", *(name for name in renderer.fields if name != "id")]
    columns = [getattr(model, name).label(name) for name in names]
    if renderer.needs_attributes:
        names.append("attributes")
        columns.append(model.attributes.label("attributes"))
    stmt = select(*columns).where(scope_condition(model, scope), model.id.in_(subject_ids)).order_by(model.id)
    subjects = session.connection().execute(stmt).all()
    if not subjects:
        return []
    ids = [row.id for row in subjects]
    records = {
        row.subject_id: (row.payload_hash, row.state, row.identity, row.remote_id)
        for row in session.execute(
            select(
                SyncRecord.subject_id,
                SyncRecord.payload_hash,
                SyncRecord.state,
                SyncRecord.identity,
                SyncRecord.remote_id,
            ).where(SyncRecord.sync_id == sync_id, SyncRecord.subject_id.in_(ids))
        )
    }
    # Raw JSON text, as subject_page gives it: the renderer decodes each distinct value once.
    computed: list[dict[int, str]] = [
        dict(
            session.execute(
                select(ComputedValue.subject_id, cast(ComputedValue.value, Text)).where(
                    ComputedValue.workspace_id == scope.workspace_id,
                    ComputedValue.subject_type == scope.subject_type,
                    ComputedValue.name == name,
                    ComputedValue.subject_id.in_(ids),
                )
            ).all()
        )
        for _label, name in renderer.computed_columns
    ]
    labels = [label for label, _name in renderer.computed_columns]
    row_type = namedtuple("SubjectRow", [*names, "payload_hash", "state", "synced_identity", "remote_id", *labels])
    return [
        row_type(*row, *records.get(row.id, (None, None, None, None)), *(values.get(row.id) for values in computed))
        for row in subjects
    ]


def pages_of(ids: Sequence[int], size: int, fetch: Callable[[int, int, Sequence[int]], Sequence[Any]]) -> Iterator[Any]:
    """Rows of ``fetch(after, limit, chunk)`` for consecutive chunks of the sorted ``ids``."""
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield from fetch(chunk[0] - 1, len(chunk), chunk)
