"""Segment membership: evaluating segments into stored membership, with every enter and exit kept as history.

How an evaluation moves only differences, in SQL, on both dialects. For a whole segment (or many subjects):

1. The segment's compiled condition runs once, into a scratch table of evaluated subject ids (on PostgreSQL with
   ``CREATE TEMPORARY TABLE … AS``, which may use parallel workers where ``INSERT … SELECT`` may not).
2. Two anti-joins write the difference to a scratch table of changes: evaluated subjects that are not members
   (entered), and members (in scope) that were not evaluated (exited).
3. A ``DELETE`` of the exits, an ``INSERT … SELECT`` of the enters and an ``INSERT … SELECT`` of history rows
   (``entered``/``exited`` at the evaluation's instant), in key order. A segment without any member yet (its first
   evaluation) skips the changes table: membership and history are written straight from the evaluated ids.

For a few subjects (incremental evaluation after ingestion), one query per dependency level asks every segment's
condition about its subjects (bound to their ids: index seeks) and reads their current membership; the difference
of those few pairs is applied at once (on PostgreSQL one statement: DELETE and INSERT as CTEs feeding the history).
The level's query and PostgreSQL's apply statement are built once and reused with other ids and another instant
(``LateValues``): building them cost more than running them.

Nothing per subject is evaluated in Python (the few-subject path only compares the pairs SQL returned), and a full
refresh of a million users holds no member list in memory.

Dependencies: segments are evaluated after the segments they reference (``ordering``); when a segment's membership
changes, the segments referencing it are re-evaluated for the changed subjects (mapped through ``account_users``
when a user segment references an account segment or an account segment aggregates user segments), transitively.
Finally the ``Segments`` computed property is recomputed for every subject whose membership changed.

Concurrency (PostgreSQL; SQLite runs one writing transaction at a time): a full evaluation (and an explicit
membership change) locks its segments' rows ``FOR UPDATE``; an evaluation for some subjects locks them
``FOR KEY SHARE``, after ``incremental`` locked the subjects' own rows. So ingestion never interleaves with a full
refresh of the same segment (its diff would otherwise see members the refresh's older evaluation does not), two
ingestions about one person evaluate one after the other, and ingestions about different people run side by side.
Segment locks are taken in id order in one statement, so evaluations do not deadlock each other. One race remains:
a full refresh and an ingestion that change one subject's membership in two different segments at the same moment
may leave that subject's ``Segments`` value missing one of the two changes until its next change or refresh.

Sliding windows: ``refresh_time_relative_segments`` fully re-evaluates the segments whose conditions move with time
alone; the scheduler runs it every ``refresh_cadence()``.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Select,
    bindparam,
    case,
    column,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
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
    SegmentMembership,
    SegmentMembershipEvent,
    SubjectType,
    User,
    utcnow,
)
from connector.models.base import UTCDateTime
from connector.operations.metrics import SEGMENT_EVALUATION_SECONDS
from connector.scratch import (
    affected_rows,
    evaluate_into,
    evaluated_subjects,
    evaluation_scope,
    filled,
    insert_rows,
    membership_changes,
    scratch,
)
from connector.segments.compiler import LateValues, compile_condition
from connector.segments.conditions import Node, parse_conditions, shared_condition
from connector.segments.ordering import dependents_of, evaluation_levels, references_in
from connector.segments.shared_members import matching_users, shared_stand_ins

MEMBERS = SegmentMembership.__table__
SEGMENTS = Segment.__table__
HISTORY = SegmentMembershipEvent.__table__

# How often the sliding-window refresh runs, by the smallest relative time unit in use: a condition counted in
# minutes moves every minute; one in hours is re-checked every 5 minutes and one in days every 15 (a person leaves
# "viewed in the last 7 days" at most 15 minutes after the last view aged out).
CADENCE_BY_UNIT: list[tuple[timedelta, timedelta]] = [
    (timedelta(minutes=1), timedelta(minutes=1)),
    (timedelta(hours=1), timedelta(minutes=5)),
    (timedelta(days=1), timedelta(minutes=15)),
]

# Changed subject ids are handed back to the caller (syncs mark them dirty) up to this many; past it the
# evaluation's history rows (``segment_membership_history.at == Evaluation.at``) are the list.
CHANGED_IDS_LIMIT = 50_000
# Past that many changes, ``Segments`` is recomputed for every subject of the workspace when the changes number more
# than a quarter of its subjects.
WHOLE_WORKSPACE_FRACTION = 4


@dataclass
class Evaluation:
    """What an evaluation changed.

    ``counts`` maps each evaluated segment id to ``(entered, exited)``. ``changed`` holds the ids of subjects whose
    membership changed, by subject type, or None when more than ``CHANGED_IDS_LIMIT`` changed (then the history
    rows written at ``at`` list them).
    """

    at: datetime
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)
    changed: dict[SubjectType, set[int]] | None = field(default_factory=dict)

    @property
    def entered(self) -> int:
        return sum(e for e, _ in self.counts.values())

    @property
    def exited(self) -> int:
        return sum(x for _, x in self.counts.values())

    def summary(self) -> dict[str, int]:
        return {"segments": len(self.counts), "entered": self.entered, "exited": self.exited}


@dataclass(frozen=True)
class SegmentRow:
    """What evaluation needs of a segment, read once per run."""

    id: int
    name: str
    subject_type: SubjectType
    kind: SegmentKind
    conditions: dict | None
    dependencies: frozenset[str]
    references: frozenset[int]


def workspace_segments(session: Session, workspace_id: int) -> dict[int, SegmentRow]:
    """Every segment of the workspace, by id (one query)."""
    t = SEGMENTS  # table columns, not ORM attributes: this runs on every ingestion
    rows = session.execute(
        select(t.c.id, t.c.name, t.c.subject_type, t.c.kind, t.c.conditions, t.c.dependencies).where(
            t.c.workspace_id == workspace_id
        )
    )
    return {
        r.id: SegmentRow(
            r.id,
            r.name,
            r.subject_type,
            r.kind,
            r.conditions,
            frozenset(r.dependencies),
            frozenset(references_in(r.dependencies)),
        )
        for r in rows
    }


# Why a segment is in a run: evaluated whole, for the subjects listed in the scratch scope table, or its changes
# were recorded already. (A segment evaluated for a few subjects has the set of their ids instead.)
FULL, TABLE, RECORDED = "full", "table", "recorded"
# Up to this many subjects a segment is evaluated for are bound into its query as a list (each probe an index
# seek); more go through the scratch scope table.
BOUND_IDS = 1_000


class _Run:
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

    @staticmethod
    def _node(segment: SegmentRow) -> Node:
        if segment.kind == SegmentKind.SHARED:
            return shared_condition(segment.conditions["share_id"])
        return parsed_conditions(segment.id, segment.conditions, segment.subject_type)

    def _condition(self, segment: SegmentRow, subject_ids) -> Select:
        return compile_condition(
            self._node(segment),
            subject_type=segment.subject_type,
            workspace_id=self.workspace_id,
            now=self.now,
            subject_ids=subject_ids,
        )

    def _diff_few(self, scopes: dict[int, set[int]]) -> dict[int, tuple[int, int]]:
        """Differences of segments evaluated for a few subjects each, applied at once. One query asks every
        condition about its subjects (each bound to their ids: index seeks) and reads their current membership; the
        difference of those few pairs is applied with ``_apply_pairs``. Returns (entered, exited) by segment; the
        changed ids are kept (``self.changed_ids``) for dependents and ``Segments``.

        Comparing the pairs here rather than with anti-joins in SQL keeps the plan free of membership statistics: a
        segment that was small when last analysed would otherwise be scanned whole for each subject."""
        if not scopes:
            return {}
        query, params = self._few_query(scopes)
        matched: set[tuple[int, int]] = set()
        current: set[tuple[int, int]] = set()
        for subject_id, segment_id, is_match in self.session.execute(query, params):
            (matched if is_match else current).add((segment_id, subject_id))
        entered = sorted(matched - current)
        exited = sorted((sid, subject) for sid, subject in current - matched if subject in scopes[sid])
        self._apply_pairs(entered, exited)
        counts: dict[int, list[int]] = {}
        for pairs, position in ((entered, 0), (exited, 1)):
            for segment_id, subject_id in pairs:
                counts.setdefault(segment_id, [0, 0])[position] += 1
                self.changed_ids.setdefault(segment_id, set()).add(subject_id)
        self.applied.update(scopes)
        self.unrecorded += [(i, s, True) for i, s in entered] + [(i, s, False) for i, s in exited]
        return {i: (e, x) for i, (e, x) in counts.items()}

    def _few_query(self, scopes: dict[int, set[int]]) -> tuple[CompoundSelect, dict[str, Any]]:
        """The query of ``_diff_few`` and its parameters: (subject, segment, true) for each subject matching its
        segment's condition, (subject, segment, false) for each current membership of those subjects. Built once per
        set of segment definitions and reused with other ids and another ``now`` (``LateValues``)."""
        order = sorted(scopes)
        nodes = [self._node(self.segments[i]) for i in order]
        # The cached entry holds the nodes, so their ids are not reused while it lives.
        key = (self.workspace_id, *zip(order, map(id, nodes), strict=True))
        with _cache_lock:
            cached = _few_queries.get(key)
            if cached is not None:
                _few_queries.move_to_end(key)
        if cached is None:
            parts, lates = [], []
            for segment_id, node in zip(order, nodes, strict=True):
                late = LateValues(f"s{segment_id}_")
                condition = compile_condition(
                    node,
                    subject_type=self.segments[segment_id].subject_type,
                    workspace_id=self.workspace_id,
                    now=self.now,
                    subject_ids=sorted(scopes[segment_id]),
                    late=late,
                )
                parts.append(
                    condition.add_columns(literal(segment_id, BigInteger).label("segment_id"), true().label("matched"))
                )
                lates.append(late)
            members = select(MEMBERS.c.subject_id, MEMBERS.c.segment_id, false()).where(
                MEMBERS.c.subject_id.in_(bindparam("member_ids", expanding=True)), MEMBERS.c.segment_id.in_(order)
            )
            cached = (nodes, union_all(*parts, members), lates)
            with _cache_lock:
                _few_queries[key] = cached
                if len(_few_queries) > _FEW_QUERIES_MAX:
                    _few_queries.popitem(last=False)
        _, query, lates = cached
        params: dict[str, Any] = {"member_ids": sorted(set().union(*scopes.values()))}
        for segment_id, late in zip(order, lates, strict=True):
            params.update(late.params(self.now, sorted(scopes[segment_id])))
        return query, params

    def _apply_pairs(self, entered: list[tuple[int, int]], exited: list[tuple[int, int]]) -> None:
        """Apply a few (segment, subject) enters and exits to membership and history. On PostgreSQL in one
        statement built once (``_pg_apply_pairs``), the pairs passed as arrays; elsewhere in up to four."""
        if not entered and not exited:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            params: dict[str, Any] = {"at": self.now}
            for name, pairs in (("entered", entered), ("exited", exited)):
                params[f"{name}_segments"] = [i for i, _ in pairs]
                params[f"{name}_subjects"] = [s for _, s in pairs]
            self.session.execute(_pg_apply_pairs(bool(entered), bool(exited)), params)
            return
        if exited:
            key = tuple_(MEMBERS.c.segment_id, MEMBERS.c.subject_id)
            self.session.execute(delete(MEMBERS).where(key.in_(exited)))
        if entered:
            rows = [{"segment_id": i, "subject_id": s, "entered_at": self.now} for i, s in entered]
            self.session.execute(insert(MEMBERS), rows)
        history = [(MembershipChange.ENTERED, entered), (MembershipChange.EXITED, exited)]
        rows = [{"segment_id": i, "subject_id": s, "change": c.value, "at": self.now} for c, p in history for i, s in p]
        self.session.execute(insert(HISTORY), rows)

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


@functools.cache
def _pg_apply_pairs(entering: bool, leaving: bool):
    """PostgreSQL: the exits deleted and the enters inserted as data-modifying CTEs feeding the history insert. The
    pairs come as arrays (``entered_segments``/``entered_subjects``, ``exited_…``) and the instant as ``at``."""
    at = bindparam("at", type_=UTCDateTime())
    written = []
    for change, wanted in ((MembershipChange.ENTERED, entering), (MembershipChange.EXITED, leaving)):
        if not wanted:
            continue
        name = change.value
        pairs = (
            func.unnest(
                bindparam(f"{name}_segments", type_=postgresql.ARRAY(BigInteger)),
                bindparam(f"{name}_subjects", type_=postgresql.ARRAY(BigInteger)),
            )
            .table_valued(column("segment_id", BigInteger), column("subject_id", BigInteger))
            .render_derived()
        )
        if change == MembershipChange.ENTERED:
            statement = insert(MEMBERS).from_select(
                ["segment_id", "subject_id", "entered_at"], select(pairs.c.segment_id, pairs.c.subject_id, at)
            )
        else:
            key = tuple_(MEMBERS.c.segment_id, MEMBERS.c.subject_id)
            statement = delete(MEMBERS).where(key.in_(select(pairs.c.segment_id, pairs.c.subject_id)))
        done = statement.returning(MEMBERS.c.segment_id, MEMBERS.c.subject_id).cte(f"{name}_rows")
        written.append(select(done.c.segment_id, done.c.subject_id, literal(name), at))
    return insert(HISTORY).from_select(["segment_id", "subject_id", "change", "at"], union_all(*written))


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


_cache_lock = threading.Lock()
_parsed: OrderedDict[tuple[int, str], Node] = OrderedDict()
_PARSED_MAX = 512

# The queries of ``_diff_few`` by workspace and segment definitions (nodes from ``parsed_conditions``, which hands
# back the same node for the same definition): (nodes, query, late values of each segment).
_few_queries: OrderedDict[tuple, tuple[list[Node], CompoundSelect, list[LateValues]]] = OrderedDict()
_FEW_QUERIES_MAX = 256


def parsed_conditions(segment_id: int, conditions: dict | None, subject_type: SubjectType) -> Node:
    """The stored (already validated) tree of a segment as nodes; parsed once per distinct definition."""
    key = (segment_id, json.dumps(conditions, sort_keys=True))
    with _cache_lock:
        node = _parsed.get(key)
        if node is not None:
            _parsed.move_to_end(key)
            return node
    node = parse_conditions(conditions or {"type": "any", "children": []}, subject_type)
    with _cache_lock:
        node = _parsed.setdefault(key, node)
        if len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
    return node


# -- entry points for services ---------------------------------------------------------------------------------------


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


def change_members(
    session: Session,
    segment_id: int,
    *,
    add: Select | None = None,
    remove: Select | None = None,
    now: datetime | None = None,
) -> Evaluation:
    """Add and remove explicit members of a segment (``add`` / ``remove``: one-column selects of subject ids of the
    segment's workspace and type). Ids in both are removed. Dependents and ``Segments`` follow as for any change.
    """
    segment = session.get(Segment, segment_id)
    run = _Run(session, segment.workspace_id, now)
    changes = membership_changes
    columns = ["segment_id", "subject_id", "entered"]
    if add is not None:
        added = add.subquery()
        candidates = select(added.c[0].label("subject_id")).distinct().subquery()
        rows = select(literal(segment_id, BigInteger), candidates.c.subject_id, true()).where(
            ~exists().where(MEMBERS.c.segment_id == segment_id, MEMBERS.c.subject_id == candidates.c.subject_id)
        )
        if remove is not None:
            removed = remove.subquery()
            rows = rows.where(~exists().where(removed.c[0] == candidates.c.subject_id))
        session.execute(insert(changes).from_select(columns, rows))
    if remove is not None:
        rows = select(literal(segment_id, BigInteger), MEMBERS.c.subject_id, false()).where(
            MEMBERS.c.segment_id == segment_id, MEMBERS.c.subject_id.in_(remove)
        )
        session.execute(insert(changes).from_select(columns, rows))
    run.add_recorded(segment_id)
    return run.execute()


def forget_segment(session: Session, segment: Segment) -> None:
    """Before a segment is deleted: recompute ``Segments`` for its members as if it were gone."""
    members = select(MEMBERS.c.subject_id).where(MEMBERS.c.segment_id == segment.id)
    scratch(session, evaluated_subjects)
    copied = affected_rows(session, insert(evaluated_subjects).from_select(["subject_id"], members))
    filled(session, evaluated_subjects, copied)
    session.execute(delete(MEMBERS).where(MEMBERS.c.segment_id == segment.id))
    refresh_computed(
        session,
        segment.workspace_id,
        segment.subject_type,
        select(evaluated_subjects.c.subject_id),
        properties=[segments_property],
    )


def rename_recompute(session: Session, segment: Segment) -> None:
    """After a rename: recompute ``Segments`` for the segment's members."""
    refresh_computed(
        session,
        segment.workspace_id,
        segment.subject_type,
        select(MEMBERS.c.subject_id).where(MEMBERS.c.segment_id == segment.id),
        properties=[segments_property],
    )


def time_relative_workspaces(session: Session) -> list[int]:
    """The workspaces that have time-relative segments (to refresh them one transaction per workspace)."""
    query = select(Segment.workspace_id).where(Segment.is_time_relative.is_(True), Segment.kind != SegmentKind.MANUAL)
    return list(session.scalars(query.distinct().order_by(Segment.workspace_id)))


def refresh_time_relative_segments(
    session: Session, workspace_id: int | None = None, now: datetime | None = None, exclude: Iterable[int] = ()
) -> dict[str, int]:
    """Fully re-evaluate every dynamic segment whose conditions move with time alone (all workspaces, or one).

    The scheduler's sliding-window job; returns ``{"workspaces", "segments", "entered", "exited"}``. The refreshed
    segments stay locked until the caller commits (ingestion touching them waits): with many workspaces, prefer
    one transaction per workspace (``time_relative_workspaces``). ``exclude``: segments followed otherwise
    (``connector.segments.edges``).
    """
    query = select(Segment.workspace_id, Segment.id).where(
        Segment.is_time_relative.is_(True), Segment.kind != SegmentKind.MANUAL
    )
    if exclude:
        query = query.where(Segment.id.not_in(list(exclude)))
    if workspace_id is not None:
        query = query.where(Segment.workspace_id == workspace_id)
    by_workspace: dict[int, list[int]] = {}
    for ws, segment_id in session.execute(query.order_by(Segment.workspace_id, Segment.id)):
        by_workspace.setdefault(ws, []).append(segment_id)
    totals = {"workspaces": len(by_workspace), "segments": 0, "entered": 0, "exited": 0}
    now = now or utcnow()
    for ws, segment_ids in by_workspace.items():
        evaluation = refresh_segments(session, ws, segment_ids, now=now)
        totals["segments"] += len(segment_ids)
        totals["entered"] += evaluation.entered
        totals["exited"] += evaluation.exited
    return totals


def refresh_cadence(session: Session) -> timedelta | None:
    """How often ``refresh_time_relative_segments`` should run: by the smallest relative time unit of any
    time-relative segment (``CADENCE_BY_UNIT``); None when no segment is time-relative (no job is needed)."""
    smallest = session.scalar(
        select(func.min(Segment.time_unit_seconds)).where(
            Segment.is_time_relative.is_(True), Segment.kind != SegmentKind.MANUAL
        )
    )
    if smallest is None:
        return None
    unit = timedelta(seconds=smallest)
    for limit, cadence in CADENCE_BY_UNIT:
        if unit <= limit:
            return cadence
    return CADENCE_BY_UNIT[-1][1]


def preview_membership(
    session: Session,
    workspace_id: int,
    node: Node,
    subject_type: SubjectType,
    *,
    segment_id: int | None = None,
    now: datetime | None = None,
    sample_size: int = 20,
) -> dict[str, Any]:
    """Evaluate a definition without saving anything: how many match, a sample, and — against a saved segment's
    membership — how many would enter and leave."""
    subject_type = SubjectType(subject_type)
    query = compile_condition(node, subject_type=subject_type, workspace_id=workspace_id, now=now or utcnow())
    evaluated_table, count = evaluate_into(session, query)
    evaluated = evaluated_table.c.subject_id
    sample_ids = select(evaluated).order_by(evaluated).limit(sample_size).scalar_subquery()
    result: dict[str, Any] = {"count": count, "sample": describe_subjects(session, subject_type, sample_ids)}
    if segment_id is None:
        result.update(would_add=count, would_remove=0)
        return result
    is_member = exists().where(MEMBERS.c.segment_id == segment_id, MEMBERS.c.subject_id == evaluated)
    result["would_add"] = session.scalar(select(func.count()).select_from(evaluated_table).where(~is_member))
    result["would_remove"] = session.scalar(
        select(func.count())
        .select_from(MEMBERS)
        .where(MEMBERS.c.segment_id == segment_id, ~exists().where(evaluated == MEMBERS.c.subject_id))
    )
    return result


def describe_subjects(session: Session, subject_type: SubjectType, ids) -> list[dict[str, Any]]:
    """Identity fields of subjects (ids: a collection or a one-column select), in id order."""
    if SubjectType(subject_type) == SubjectType.USER:
        rows = session.execute(select(User.id, User.external_id, User.email).where(User.id.in_(ids)).order_by(User.id))
        return [{"id": r.id, "external_id": r.external_id, "email": r.email} for r in rows]
    rows = session.execute(
        select(Account.id, Account.external_id, Account.name, Account.domain)
        .where(Account.id.in_(ids))
        .order_by(Account.id)
    )
    return [{"id": r.id, "external_id": r.external_id, "name": r.name, "domain": r.domain} for r in rows]
