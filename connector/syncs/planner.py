"""What a run must send: the subjects in scope, rendered and hashed, against what the destination acknowledged.

Two passes, each read in keyset pages of ``PAGE_SIZE`` ids (constant memory, short read transactions):

1. the subjects in scope (``subject_page``), each joined in SQL with its ``sync_records`` row, so comparing a
   freshly rendered payload hash with the acknowledged one needs no lookup in Python (``diff``):

   * new to the destination (no record, removed, or rejected before it ever landed)       -> ``added``
   * landed before with another payload hash, or rejected since it landed                 -> ``changed``
     (with the identity and remote id it landed as when its identity changed since, so it can be moved in place)
   * synced with the same hash                                   -> unchanged: counted, nothing else
   * no identity value, or an identity another subject in scope has -> ``invalid``: reported, never sent

2. the records whose subject is out of scope or gone (``leaving_page``, an anti-join in SQL) -> ``leaving``
   (the engine clears, removes or forgets them).

A rejected record is therefore sent again by every run until it lands (or its subject leaves the scope).
Identities used by more than one subject in scope are found before streaming by one grouped query
(``duplicate_identities``), compared trimmed and lower-cased (``lower()`` folds ASCII only on SQLite).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from connector.computed.reads import value_of
from connector.ingest.statements import one_of
from connector.models import (
    Account,
    RecordState,
    SegmentMembership,
    SubjectType,
    SyncRecord,
    User,
)
from connector.syncs.mapping import AttributeSource, FieldSource, InvalidRecord, Renderer, normal_identity

PAGE_SIZE = 5000
SUBJECT_MODELS = {SubjectType.USER: User, SubjectType.ACCOUNT: Account}


class Change(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    LEAVING = "leaving"
    INVALID = "invalid"


@dataclass(frozen=True)
class Scope:
    """Which subjects a sync covers: of one type, in one workspace, members of any of ``segment_ids`` (none:
    every subject)."""

    workspace_id: int
    subject_type: SubjectType
    segment_ids: tuple[int, ...] = ()


@dataclass(slots=True)
class Planned:
    """One record the run must act on."""

    change: Change
    subject_id: int
    identity: str | None = None
    properties: dict[str, Any] | None = None
    payload_hash: str | None = None
    previous_state: RecordState | None = None
    # Leaving records: whether the destination holds something of it (it landed at least once).
    acknowledged: bool = False
    # Invalid records: why.
    reason: str | None = None
    # Changed records whose identity changed since they landed: the identity and remote id they landed as.
    previous_identity: str | None = None
    remote_id: str | None = None


@dataclass
class PlanCounts:
    in_scope: int = 0
    unchanged: int = 0
    added: int = 0
    changed: int = 0
    leaving: int = 0
    invalid: int = 0


def scope_condition(model, scope: Scope):
    """The condition "this subject is in the sync's scope", on ``model`` (User or Account)."""
    condition = model.workspace_id == scope.workspace_id
    if scope.segment_ids:
        condition = and_(
            condition,
            exists().where(
                SegmentMembership.subject_id == model.id, SegmentMembership.segment_id.in_(scope.segment_ids)
            ),
        )
    return condition


def subject_page(
    session: Session, scope: Scope, sync_id: int, renderer: Renderer, after_id: int, limit: int = PAGE_SIZE
) -> list:
    """The next ``limit`` subjects in scope after ``after_id``, by id: what the renderer needs (``segments`` as
    the raw JSON text of the computed value), and the acknowledged ``payload_hash`` and ``state`` (both None
    when the sync has no record of the subject).

    The page's id range is found first, so the join below is bounded on every table whatever the planner thinks
    of their sizes (right after a first run, PostgreSQL's statistics still see an empty ``sync_records``).
    """
    model = SUBJECT_MODELS[scope.subject_type]
    in_scope = scope_condition(model, scope)
    ids = select(model.id).where(in_scope, model.id > after_id).order_by(model.id).limit(limit).subquery()
    last_id = session.scalar(select(func.max(ids.c.id)))
    if last_id is None:
        return []
    columns: list[Any] = [model.id.label("id")]
    columns += [getattr(model, name).label(name) for name in renderer.fields if name != "id"]
    if renderer.needs_attributes:
        columns.append(model.attributes.label("attributes"))
    columns += [
        SyncRecord.payload_hash.label("payload_hash"),
        SyncRecord.state.label("state"),
        SyncRecord.identity.label("synced_identity"),
        SyncRecord.remote_id.label("remote_id"),
    ]
    stmt = select(*columns).outerjoin(
        SyncRecord,
        and_(
            SyncRecord.sync_id == sync_id,
            SyncRecord.subject_id == model.id,
            SyncRecord.subject_id > after_id,
            SyncRecord.subject_id <= last_id,
        ),
    )
    # Raw text: the renderer decodes each distinct value once (most subjects share a few combinations).
    for label, name in renderer.computed_columns:
        stmt = stmt.add_columns(value_of(name, scope.subject_type, model.id).label(label))
    stmt = stmt.where(in_scope, model.id > after_id, model.id <= last_id).order_by(model.id)
    # Plain rows of columns: through the session's connection, without the ORM's result machinery (a tenth of a
    # run's CPU went to it).
    return session.connection().execute(stmt).all()


def leaving_page(
    session: Session,
    scope: Scope,
    sync_id: int,
    after_id: int,
    limit: int = PAGE_SIZE,
    subject_ids: Sequence[int] | None = None,
) -> list:
    """The next ``limit`` records of the sync after subject ``after_id`` whose subject is out of scope or gone,
    and that are not removed already; by subject id. ``subject_ids``: only those.

    The records are read a window at a time (the next ``PAGE_SIZE`` or more, by the primary key), and which of
    their subjects are still in scope is asked of each table alone, by those ids (``one_of``: the array unpacked once;
    ``= ANY(CAST(:text AS bigint[]))`` parsed the whole array again for each row a plan scanned, 2 s for 10,000 ids
    against 10,000 users); the difference is taken here.
    No statement joins tables, so none has a plan that rests on the planner's idea of their sizes: as one
    anti-join, with statistics taken when the tables were nearly empty, PostgreSQL joined users and memberships
    again for every record, and a run of 2,000 records read for minutes.
    """
    model = SUBJECT_MODELS[scope.subject_type]
    size = max(limit, PAGE_SIZE)  # records per window, however few leavers are asked for
    found: list = []
    while len(found) < limit:
        window = (
            session.connection()
            .execute(
                select(SyncRecord.subject_id, SyncRecord.identity, SyncRecord.payload_hash, SyncRecord.state)
                .where(
                    SyncRecord.sync_id == sync_id,
                    SyncRecord.subject_id > after_id,
                    SyncRecord.state != RecordState.REMOVED,
                    *([SyncRecord.subject_id.in_(subject_ids)] if subject_ids is not None else []),
                )
                .order_by(SyncRecord.subject_id)
                .limit(size)
            )
            .all()
        )
        if not window:
            break
        ids = [row.subject_id for row in window]
        kept = set(
            session.scalars(
                select(model.id).where(model.workspace_id == scope.workspace_id, one_of(session, model.id, ids))
            )
        )
        if scope.segment_ids and kept:
            kept &= set(
                session.scalars(
                    select(SegmentMembership.subject_id)
                    .where(
                        SegmentMembership.segment_id.in_(scope.segment_ids),
                        one_of(session, SegmentMembership.subject_id, sorted(kept)),
                    )
                    .distinct()
                )
            )
        found += [row for row in window if row.subject_id not in kept][: limit - len(found)]
        after_id = ids[-1]
    return found


def duplicate_identities(
    session: Session, scope: Scope, renderer: Renderer, subject_ids: Sequence[int] | None = None
) -> set[str]:
    """Identity values (normalised) that more than one subject in scope has; with ``subject_ids``, only the
    values those subjects have."""
    mapping = next(m for m in renderer.mappings if m.destination == renderer.identity_field)
    model = SUBJECT_MODELS[scope.subject_type]
    source = mapping.source
    if isinstance(source, FieldSource):
        column = getattr(model, source.name)
    elif isinstance(source, AttributeSource):
        column = model.attributes[source.name].as_string()
    else:  # the service accepts identities from fields and attributes only
        return set()
    value = func.lower(func.trim(column))
    stmt = (
        select(value).where(scope_condition(model, scope), column.is_not(None)).group_by(value).having(func.count() > 1)
    )
    if subject_ids is None:
        return {normal_identity(str(v)) for v in session.scalars(stmt) if v is not None and str(v).strip()}
    found: set[str] = set()
    for start in range(0, len(subject_ids), PAGE_SIZE):
        theirs = select(value).where(model.id.in_(subject_ids[start : start + PAGE_SIZE]), column.is_not(None))
        values = [v for v in session.scalars(theirs) if v is not None and str(v).strip()]
        if values:
            found.update(normal_identity(str(v)) for v in session.scalars(stmt.where(value.in_(values))))
    return found


def pages(
    fetch: Callable[[int, int], Sequence[Any]], key: Callable[[Any], int], limit: int = PAGE_SIZE
) -> Iterator[Any]:
    """Rows of consecutive keyset pages: ``fetch(after, limit)`` returns up to ``limit`` rows after key ``after``.

    The first page is a tenth of the others: a run's first batch leaves after one short read, not after reading and
    decoding thousands of rows (that first request also starts the destination's rate-limit window)."""
    after, size = 0, max(1, limit // 10)
    while True:
        rows = fetch(after, size)
        yield from rows
        if len(rows) < size:
            return
        after, size = key(rows[-1]), limit


def diff(subjects: Iterable[Any], renderer: Renderer, duplicates: set[str], counts: PlanCounts) -> Iterator[Planned]:
    """What to do for each subject in scope (rows of ``subject_page``). Unchanged subjects are only counted in
    ``counts``; everything else is yielded."""
    render = renderer.render
    synced, removed = RecordState.SYNCED, RecordState.REMOVED
    for subject in subjects:
        counts.in_scope += 1
        try:
            payload = render(subject)
        except InvalidRecord as exc:
            counts.invalid += 1
            yield Planned(Change.INVALID, subject.id, reason=str(exc))
            continue
        if duplicates and normal_identity(payload.identity) in duplicates:
            counts.invalid += 1
            reason = f"{renderer.identity_field} {payload.identity!r} is shared with another subject in this sync"
            yield Planned(Change.INVALID, subject.id, identity=payload.identity, reason=reason)
            continue
        state, acknowledged = subject.state, subject.payload_hash
        if state == synced and acknowledged == payload.hash:
            counts.unchanged += 1
            continue
        previous_identity = remote_id = None
        if state is not None and state != removed and acknowledged is not None:
            change = Change.CHANGED  # an earlier version landed (a rejected record keeps that version's hash)
            counts.changed += 1
            landed_as = subject.synced_identity
            if landed_as and normal_identity(landed_as) != normal_identity(payload.identity):
                previous_identity, remote_id = landed_as, subject.remote_id
        else:
            change = Change.ADDED
            counts.added += 1
        yield Planned(
            change,
            subject.id,
            identity=payload.identity,
            properties=payload.properties,
            payload_hash=payload.hash,
            previous_state=state,
            previous_identity=previous_identity,
            remote_id=remote_id,
        )


def leaving(records: Iterable[Any], counts: PlanCounts) -> Iterator[Planned]:
    """Records whose subject left the scope or is gone (rows of ``leaving_page``)."""
    for record in records:
        counts.leaving += 1
        yield Planned(
            Change.LEAVING,
            record.subject_id,
            identity=record.identity,
            previous_state=record.state,
            acknowledged=record.state == RecordState.SYNCED or record.payload_hash is not None,
        )
