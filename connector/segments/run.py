"""A run: one evaluation pass over some segments of a workspace (``connector.segments.membership`` tells how it
moves only differences), and the two entry points that start one, ``refresh_segments`` and ``evaluate_subjects``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Select,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from connector.computed import refresh_computed
from connector.computed.segments import segments_property
from connector.models import (
    Account,
    AccountUser,
    MembershipChange,
    Segment,
    SegmentKind,
    SubjectType,
    User,
    utcnow,
)
from connector.models.base import UTCDateTime
from connector.operations.metrics import SEGMENT_EVALUATION_SECONDS
from connector.scratch import (
    affected_rows,
    evaluate_into,
    evaluation_scope,
    filled,
    insert_rows,
    membership_changes,
    scratch,
)
from connector.segments.compiler import compile_condition
from connector.segments.evaluated import (
    CHANGED_IDS_LIMIT,
    FULL,
    HISTORY,
    MEMBERS,
    RECORDED,
    SEGMENTS,
    TABLE,
    WHOLE_WORKSPACE_FRACTION,
    Evaluation,
    SegmentRow,
    segment_node,
    workspace_segments,
)
from connector.segments.few import FewSubjects
from connector.segments.ordering import dependents_of, evaluation_levels
from connector.segments.shared_members import matching_users, shared_stand_ins

# Up to this many subjects a segment is evaluated for are bound into its query as a list (each probe an index
# seek); more go through the scratch scope table.
BOUND_IDS = 1_000


class _Run(FewSubjects):
    """One evaluation pass over some segments of a workspace, inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        workspace_id: int,
        now: datetime | None,
        segments: dict[int, SegmentRow] | None = None,
    ) -> None:
        self.session = session
        self.workspace_id = workspace_id
        self.now = now or utcnow()
        self.pending: dict[int, str | set[int]] = {}
        self.evaluation = Evaluation(at=self.now)
        self.segments = workspace_segments(session, workspace_id) if segments is None else segments
        self.references = {i: s.references for i, s in self.segments.items()}
        self._scope_table_ready = False
        # Ids of the subjects whose membership changed, by segment, when they came back from a small diff.
        self.changed_ids: dict[int, set[int]] = {}
        # Segments evaluated whole that had no member: every subject evaluated entered, so their changes are not
        # copied to the changes table; their membership is the list (see ``_changed``).
        self.first_evaluated: set[int] = set()
        # Which of the segments to evaluate whole had no member when the run began (read before it writes any).
        self.empty: set[int] = set()
        # Segments whose few changes were applied straight away, and those changes (segment, subject, entered) until
        # something needs them in the changes table (``_changed``).
        self.applied: set[int] = set()
        self.unrecorded: list[tuple[int, int, bool]] = []
        scratch(session, membership_changes)

    # -- what to evaluate --

    def add_full(self, segment_id: int) -> None:
        self.pending[segment_id] = FULL

    def add_recorded(self, segment_id: int) -> None:
        """The segment's changes are already in the changes table (explicit members of a manual segment)."""
        self.pending[segment_id] = RECORDED

    def add_scope(self, segment_id: int, subject_ids: Iterable[int]) -> None:
        """Evaluate the segment for these subjects (as well as anything already asked for it)."""
        current = self.pending.get(segment_id, set())
        if current in (FULL, RECORDED):
            return
        ids = set(subject_ids)
        if current == TABLE:
            self._insert_scope(segment_id, ids)
        elif len(current) + len(ids) > BOUND_IDS:
            self._insert_scope(segment_id, current | ids)
            self.pending[segment_id] = TABLE
        elif ids:
            self.pending[segment_id] = current | ids

    def _insert_scope(self, segment_id: int, ids: set[int]) -> None:
        self._ready_scope_table()
        insert_rows(self.session, evaluation_scope, [{"segment_id": segment_id, "subject_id": i} for i in ids])

    def _ready_scope_table(self) -> None:
        if not self._scope_table_ready:
            scratch(self.session, evaluation_scope)
            self._scope_table_ready = True

    # -- doing it --

    def execute(self, progress: Callable[[int], None] | None = None) -> Evaluation:
        if not self.pending:
            return self.evaluation
        started = time.perf_counter()
        involved = set(self.pending) | dependents_of(self.references, self.pending)
        involved = self._lock(involved, exclusive=any(kind in (FULL, RECORDED) for kind in self.pending.values()))
        for gone in set(self.pending) - involved:
            del self.pending[gone]
        self._find_empty([i for i, scope in self.pending.items() if scope == FULL])
        for level in evaluation_levels({i: self.references[i] for i in involved}):
            # Segments of one level do not read each other: their differences are written together, then applied
            # together, before the next level (which may read them) is evaluated.
            batch = {i: self.pending.pop(i) for i in level if i in self.pending}
            # Manual segments never change by themselves: only their recorded changes are applied.
            batch = {
                i: scope
                for i, scope in batch.items()
                if scope == RECORDED or self.segments[i].kind != SegmentKind.MANUAL
            }
            # Many subjects each: one segment at a time (its diff is big; batching buys nothing).
            for segment_id, scope in batch.items():
                if scope in (FULL, TABLE):
                    self._finish({segment_id: self._diff(self.segments[segment_id], scope)}, progress)
                    if scope == FULL:
                        self._mark_evaluated([segment_id])
            # A few subjects each (and recorded changes): one diff and one apply for the whole level.
            counts = self._diff_few({i: scope for i, scope in batch.items() if isinstance(scope, set)})
            recorded = [i for i, scope in batch.items() if scope == RECORDED]
            counts.update(self._counts(recorded))
            few = [i for i, scope in batch.items() if isinstance(scope, set) or scope == RECORDED]
            self._finish({i: counts.get(i, (0, 0)) for i in few}, progress)
        self._refresh_segments_property()
        self._follow_shares()
        SEGMENT_EVALUATION_SECONDS.observe(time.perf_counter() - started)
        return self.evaluation

    def _follow_shares(self) -> None:
        """Segments of this run shared with other workspaces: their stand-ins there are re-evaluated for the users
        matching, by device, the users whose membership changed here (all their users past CHANGED_IDS_LIMIT)."""
        changed = [
            i
            for i, (entered, exited) in self.evaluation.counts.items()
            if (entered or exited)
            and self.segments[i].subject_type == SubjectType.USER
            and self.segments[i].kind != SegmentKind.SHARED  # a stand-in is never shared on
        ]
        stand_ins = shared_stand_ins(self.session, changed) if changed else {}
        for target_id, proxy_ids in stand_ins.items():
            users = None if self.evaluation.changed is None else self.evaluation.changed.get(SubjectType.USER, set())
            if users is not None and len(users) <= CHANGED_IDS_LIMIT:
                matched = set(self.session.scalars(matching_users(self.workspace_id, target_id, sorted(users))))
                if len(matched) <= CHANGED_IDS_LIMIT:
                    if matched:
                        evaluate_subjects(self.session, target_id, dict.fromkeys(proxy_ids, matched), now=self.now)
                    continue
            refresh_segments(self.session, target_id, proxy_ids, now=self.now)

    def _finish(self, counts: dict[int, tuple[int, int]], progress: Callable[[int], None] | None) -> None:
        """Apply the segments' differences, record them, and pass them on to the segments referencing them."""
        self._apply(counts)
        for segment_id, (entered, exited) in counts.items():
            self.evaluation.counts[segment_id] = (entered, exited)
            if entered or exited:
                self._propagate(self.segments[segment_id], entered + exited)
            if progress is not None:
                progress(segment_id)

    def _mark_evaluated(self, segment_ids: list[int]) -> None:
        if not segment_ids:
            return
        table = Segment.__table__
        # updated_at stays: it tells when the definition changed, not when it was evaluated.
        evaluated = update(table).where(table.c.id.in_(segment_ids))
        self.session.execute(evaluated.values(last_evaluated_at=self.now, updated_at=table.c.updated_at))
        # A caller holding a segment object sees the new time (an unloaded attribute is not synchronised).
        for segment_id in segment_ids:
            loaded = self.session.identity_map.get(identity_key(Segment, segment_id))
            if loaded is not None:
                set_committed_value(loaded, "last_evaluated_at", self.now)

    def _lock(self, segment_ids: set[int], exclusive: bool) -> set[int]:
        """Lock the segments' rows; returns the ids of those that still exist (one deleted since the run read it is
        left out: membership rows have no foreign key to stop them being written for it)."""
        query = select(SEGMENTS.c.id).where(SEGMENTS.c.id.in_(sorted(segment_ids))).order_by(SEGMENTS.c.id)
        locked = query.with_for_update() if exclusive else query.with_for_update(read=True, key_share=True)
        return set(self.session.scalars(locked))

    def _find_empty(self, segment_ids: list[int]) -> None:
        if segment_ids:
            has_members = exists().where(MEMBERS.c.segment_id == Segment.id)
            query = select(Segment.id).where(Segment.id.in_(segment_ids), ~has_members)
            self.empty = set(self.session.scalars(query))

    def _condition(self, segment: SegmentRow, subject_ids) -> Select:
        return compile_condition(
            segment_node(segment),
            subject_type=segment.subject_type,
            workspace_id=self.workspace_id,
            now=self.now,
            subject_ids=subject_ids,
        )

    def _counts(self, segment_ids: list[int]) -> dict[int, tuple[int, int]]:
        """(entered, exited) of segments, read from the changes table."""
        if not segment_ids:
            return {}
        changes = membership_changes
        rows = self.session.execute(
            select(changes.c.segment_id, changes.c.entered, func.count())
            .where(changes.c.segment_id.in_(segment_ids))
            .group_by(changes.c.segment_id, changes.c.entered)
        )
        counts: dict[int, list[int]] = {}
        for segment_id, entered, n in rows:
            counts.setdefault(segment_id, [0, 0])[0 if entered else 1] = n
        return {i: (e, x) for i, (e, x) in counts.items()}

    def _diff(self, segment: SegmentRow, scope: str) -> tuple[int, int]:
        """Differences of a segment evaluated whole (FULL) or for many subjects (TABLE): the condition runs once
        into a scratch table, then two anti-joins against the membership. Returns (entered, exited)."""
        session, sid = self.session, segment.id
        columns = ["segment_id", "subject_id", "entered"]
        restriction = None
        if scope == TABLE:
            restriction = select(evaluation_scope.c.subject_id).where(evaluation_scope.c.segment_id == sid)
        evaluated_table, count = evaluate_into(session, self._condition(segment, restriction))
        evaluated = evaluated_table.c.subject_id
        if scope == FULL and sid in self.empty:
            self.first_evaluated.add(sid)
            self._enter_all(sid, evaluated_table)
            return count, 0
        entering = select(literal(sid, BigInteger), evaluated, true()).where(
            ~exists().where(MEMBERS.c.segment_id == sid, MEMBERS.c.subject_id == evaluated)
        )
        leaving = select(literal(sid, BigInteger), MEMBERS.c.subject_id, false()).where(
            MEMBERS.c.segment_id == sid, ~exists().where(evaluated == MEMBERS.c.subject_id)
        )
        if restriction is not None:
            leaving = leaving.where(MEMBERS.c.subject_id.in_(restriction))
        entered = affected_rows(session, insert(membership_changes).from_select(columns, entering))
        exited = affected_rows(session, insert(membership_changes).from_select(columns, leaving))
        filled(session, membership_changes, entered + exited)
        return entered, exited

    def _enter_all(self, segment_id: int, evaluated_table) -> None:
        """A segment without members enters everything evaluated: membership and history straight from the evaluated
        table (in key order), without the copy through the changes table."""
        now = literal(self.now, UTCDateTime())
        segment, subject_id = literal(segment_id, BigInteger), evaluated_table.c.subject_id
        entered = literal(MembershipChange.ENTERED.value)
        self.session.execute(
            insert(MEMBERS).from_select(
                ["segment_id", "subject_id", "entered_at"], select(segment, subject_id, now).order_by(subject_id)
            )
        )
        self.session.execute(
            insert(HISTORY).from_select(
                ["segment_id", "subject_id", "change", "at"],
                select(segment, subject_id, entered, now).order_by(subject_id),
            )
        )

    def _changed(self, segment_ids: Iterable[int]) -> Select:
        """The subjects whose membership changed in these segments during the run (a one-column select)."""
        if self.unrecorded:
            rows = [{"segment_id": i, "subject_id": s, "entered": e} for i, s, e in self.unrecorded]
            self.session.execute(insert(membership_changes), rows)
            self.unrecorded = []
        recorded = [i for i in segment_ids if i not in self.first_evaluated]
        first = [i for i in segment_ids if i in self.first_evaluated]
        parts = []
        if recorded:
            changes = membership_changes
            parts.append(select(changes.c.subject_id).where(changes.c.segment_id.in_(recorded)))
        if first:
            parts.append(select(MEMBERS.c.subject_id).where(MEMBERS.c.segment_id.in_(first)))
        if len(parts) == 1:
            return parts[0]
        both = union_all(*parts).subquery()
        return select(both.c.subject_id)

    def _apply(self, counts: dict[int, tuple[int, int]]) -> None:
        """Apply the recorded changes of these segments to their membership and history, in key order (800,000
        memberships went into their indexes in 4.8 s sorted, 8.0 s in evaluation order)."""
        session, changes = self.session, membership_changes
        now = literal(self.now, UTCDateTime())
        counts = {i: n for i, n in counts.items() if i not in self.first_evaluated and i not in self.applied}
        for segment_id, (_, exited) in counts.items():
            if exited:
                leaving = select(changes.c.subject_id).where(changes.c.segment_id == segment_id, ~changes.c.entered)
                session.execute(
                    delete(MEMBERS).where(MEMBERS.c.segment_id == segment_id, MEMBERS.c.subject_id.in_(leaving))
                )
        entering = [i for i, (entered, _) in counts.items() if entered]
        if entering:
            session.execute(
                insert(MEMBERS).from_select(
                    ["segment_id", "subject_id", "entered_at"],
                    select(changes.c.segment_id, changes.c.subject_id, now)
                    .where(changes.c.segment_id.in_(entering), changes.c.entered)
                    .order_by(changes.c.segment_id, changes.c.subject_id),
                )
            )
        changed = [i for i, (entered, exited) in counts.items() if entered or exited]
        if changed:
            change = case((changes.c.entered, MembershipChange.ENTERED.value), else_=MembershipChange.EXITED.value)
            session.execute(
                insert(HISTORY).from_select(
                    ["segment_id", "subject_id", "change", "at"],
                    select(changes.c.segment_id, changes.c.subject_id, change, now)
                    .where(changes.c.segment_id.in_(changed))
                    .order_by(changes.c.segment_id, changes.c.subject_id),
                )
            )

    def _propagate(self, segment: SegmentRow, changed_count: int) -> None:
        """Ask the segments referencing ``segment`` to re-evaluate the subjects whose membership just changed."""
        dependents = [
            d
            for d in self.segments.values()
            if segment.id in d.references and self.pending.get(d.id) not in (FULL, RECORDED)
        ]
        if not dependents:
            return
        if changed_count <= BOUND_IDS:
            ids = self.changed_ids.get(segment.id)
            if ids is None:
                ids = set(self.session.scalars(self._changed([segment.id])))
            for dependent in dependents:
                related = _related_ids(self.session, ids, segment.subject_type, dependent.subject_type)
                self.add_scope(dependent.id, related)
            return
        changed = self._changed([segment.id])
        self._ready_scope_table()
        for dependent in dependents:
            current = self.pending.get(dependent.id)
            if isinstance(current, set):
                self._insert_scope(dependent.id, current)
            subjects = _related(changed, segment.subject_type, dependent.subject_type)
            rows = select(literal(dependent.id, BigInteger), subjects.c.subject_id)
            added = insert(evaluation_scope).from_select(["segment_id", "subject_id"], rows)
            filled(self.session, evaluation_scope, affected_rows(self.session, added))
            self.pending[dependent.id] = TABLE

    def _refresh_segments_property(self) -> None:
        """Recompute ``Segments`` for every subject whose membership changed in this run (set-based)."""
        by_type: dict[SubjectType, list[int]] = {}
        for segment_id, (entered, exited) in self.evaluation.counts.items():
            if entered or exited:
                by_type.setdefault(self.segments[segment_id].subject_type, []).append(segment_id)
        total = sum(e + x for e, x in self.evaluation.counts.values())
        if total > CHANGED_IDS_LIMIT:
            self.evaluation.changed = None
        for subject_type, segment_ids in by_type.items():
            if total > CHANGED_IDS_LIMIT and total * WHOLE_WORKSPACE_FRACTION > self._subject_count(subject_type):
                # So many changes that recomputing every subject is cheaper than picking them out (a first refresh:
                # 4 s instead of 8 s for a million users).
                subjects = None
            elif total <= BOUND_IDS and all(i in self.changed_ids for i in segment_ids):
                # Few, and known here: bind the ids, so the recomputation is a handful of index seeks.
                subjects = sorted(set().union(*(self.changed_ids[i] for i in segment_ids)))
            else:
                subjects = self._changed(segment_ids)
                if total <= BOUND_IDS:
                    subjects = sorted(set(self.session.scalars(subjects)))
            refresh_computed(
                self.session, self.workspace_id, subject_type, subjects, properties=[segments_property], now=self.now
            )
            if self.evaluation.changed is not None and subjects is not None:
                found = subjects if isinstance(subjects, list) else self.session.scalars(subjects.distinct())
                self.evaluation.changed.setdefault(subject_type, set()).update(found)

    def _subject_count(self, subject_type: SubjectType) -> int:
        table = User.__table__ if subject_type == SubjectType.USER else Account.__table__
        return self.session.scalar(select(func.count()).where(table.c.workspace_id == self.workspace_id))


def _related(changed: Select, from_type: SubjectType, to_type: SubjectType):
    """``changed`` subject ids of ``from_type`` as the related subjects of ``to_type`` (a subquery ``subject_id``)."""
    if from_type == to_type:
        return changed.subquery()
    links = AccountUser.__table__
    if from_type == SubjectType.ACCOUNT:
        return select(links.c.user_id.label("subject_id")).where(links.c.account_id.in_(changed)).subquery()
    return select(links.c.account_id.label("subject_id")).where(links.c.user_id.in_(changed)).subquery()


def _related_ids(session: Session, ids: set[int], from_type: SubjectType, to_type: SubjectType) -> set[int]:
    """As ``_related``, for a few ids held in Python."""
    if from_type == to_type or not ids:
        return ids
    links = AccountUser.__table__
    if from_type == SubjectType.ACCOUNT:
        return set(session.scalars(select(links.c.user_id).where(links.c.account_id.in_(sorted(ids)))))
    return set(session.scalars(select(links.c.account_id).where(links.c.user_id.in_(sorted(ids)))))


def refresh_segments(
    session: Session,
    workspace_id: int,
    segment_ids: Iterable[int] | None = None,
    *,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Fully re-evaluate segments of a workspace (default: every dynamic segment), in dependency order.

    Segments referencing a refreshed segment are re-evaluated for the subjects that changed. ``progress`` is
    called with each segment id once it is done.
    """
    run = _Run(session, workspace_id, now)
    wanted = set(run.segments) if segment_ids is None else set(segment_ids)
    for segment_id in sorted(wanted):
        segment = run.segments.get(segment_id)
        if segment is not None and segment.kind != SegmentKind.MANUAL:
            run.add_full(segment_id)
    return run.execute(progress)


def evaluate_subjects(
    session: Session,
    workspace_id: int,
    scopes: dict[int, Iterable[int]],
    *,
    now: datetime | None = None,
    segments: dict[int, SegmentRow] | None = None,
) -> Evaluation:
    """Re-evaluate each segment of ``scopes`` (id -> subject ids) for those subjects only, then its dependents.

    ``segments`` (from ``workspace_segments``, in this transaction) saves reading them again."""
    run = _Run(session, workspace_id, now, segments)
    for segment_id, subject_ids in scopes.items():
        if segment_id in run.segments:
            run.add_scope(segment_id, subject_ids)
    return run.execute()
