"""Exact time windows: re-evaluating, as time passes, only the subjects whose window edge passed.

A relative condition changes truth with time alone only when something crosses a window edge. For ``within_last d``
(``now - d <= t <= now``) a fact at instant ``t`` leaves the window when ``now`` passes ``t + d`` (and a fact dated
in the future enters when ``now`` passes ``t``); ``more_than_ago d`` (``t < now - d``) starts holding when ``now``
passes ``t + d``. So between two checks at ``since`` and ``now`` the subjects whose truth may have changed are
exactly those with a fact at ``t`` in ``[since - d, now - d)`` (or, future-dated, in ``(since, now]``): each is an
index range (``events`` by workspace, name and time, page views by workspace and time; ``devices``, ``users`` and
``accounts`` by workspace and time, migration 0012), and only those subjects are re-evaluated
(``evaluate_subjects``: membership, history, ``Segments``, and the segments that reference them).

The facts whose edges are tracked: event and page-view windows, device ``last_seen`` windows and relative
comparisons on ``created_at``, including inside a users aggregation (the accounts of the users are re-evaluated).
A segment with any other relative part (a relative comparison on an attribute held in JSON, on an event property
or an object field, on an account's field from a user segment) is not ``covered``: the sliding refresh
(``sliding.refresh_time_relative_segments``) keeps evaluating it whole at its cadence.

``refresh_window_edges`` is the scheduler's job, run every ``EDGE_INTERVAL``; each segment remembers the instant up
to which its edges were followed (``segments.edges_checked_at``; its last full evaluation counts too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import Session

from connector.models import (
    Account,
    AccountUser,
    Device,
    Event,
    EventKind,
    Segment,
    SegmentKind,
    SubjectType,
    User,
    utcnow,
)
from connector.segments.conditions import (
    RELATIVE_OPERATORS,
    UNITS,
    AttributeCondition,
    DeviceCondition,
    EventCondition,
    Node,
    ObjectCondition,
    PageViewCondition,
    Window,
)
from connector.segments.run import evaluate_subjects, refresh_segments
from connector.segments.trees import walk
from connector.segments.validation import parse_conditions

# How often the scheduler follows window edges: membership follows an edge within this plus one evaluation.
EDGE_INTERVAL = timedelta(seconds=30)
# Past this many subjects for one segment, evaluating the whole segment is cheaper than listing the subjects.
WHOLE_ABOVE = 20_000


@dataclass(frozen=True)
class Edge:
    """Facts whose window edges move a segment: ``kind`` is ``event`` (``name``), ``page``, ``device`` or
    ``created_at``; ``about`` is the subject type the fact belongs to (users inside an account segment's
    aggregation)."""

    kind: str
    width: timedelta
    about: SubjectType
    name: str | None = None


@dataclass
class EdgePlan:
    edges: set[Edge] = field(default_factory=set)
    covered: bool = True


def edge_plan(node: Node, subject_type: SubjectType) -> EdgePlan:
    """The window edges that can change a tree's truth with time, and whether they are all of its relative parts."""
    plan = EdgePlan()
    for _path, leaf, about in walk(node, subject_type):
        about = SubjectType(about or subject_type)
        if isinstance(leaf, EventCondition):
            _window(plan, leaf.window, Edge("event", timedelta(0), about, leaf.name))
            plan.covered &= not any(_relative(f) for f in leaf.filters)
        elif isinstance(leaf, PageViewCondition):
            _window(plan, leaf.window, Edge("page", timedelta(0), about))
        elif isinstance(leaf, DeviceCondition):
            _window(plan, leaf.last_seen, Edge("device", timedelta(0), about))
        elif isinstance(leaf, ObjectCondition):
            plan.covered &= not any(_relative(f) for f in leaf.filters)
        elif isinstance(leaf, AttributeCondition) and _relative(leaf):
            if leaf.field == "created_at" and leaf.of is None:
                width = leaf.value["amount"] * UNITS[leaf.value["unit"]]
                plan.edges.add(Edge("created_at", width, about))
            else:
                plan.covered = False
    return plan


def _relative(comparison) -> bool:
    return comparison.operator in RELATIVE_OPERATORS and isinstance(comparison.value, dict)


def _window(plan: EdgePlan, window: Window | None, edge: Edge) -> None:
    if window is not None and window.within_last is not None:
        plan.edges.add(Edge(edge.kind, window.within_last.as_timedelta(), edge.about, edge.name))


def passed(session: Session, workspace_id: int, edge: Edge, since: datetime, now: datetime) -> set[int]:
    """Ids of the subjects (of ``edge.about``) with a fact whose edge passed in ``(since, now]``."""
    low, high = since - edge.width, now - edge.width
    if edge.kind in ("event", "page"):
        kind = EventKind.TRACK if edge.kind == "event" else EventKind.PAGE
        where: list[ColumnElement] = [Event.workspace_id == workspace_id, Event.kind == kind]
        if edge.name is not None:
            where.append(Event.name == edge.name)
        leaving = and_(Event.occurred_at >= low, Event.occurred_at < high)
        # Dated in the future when received: it enters the window when its instant comes.
        entering = and_(Event.occurred_at > since, Event.occurred_at <= now, Event.occurred_at > Event.received_at)
        ids = set(session.scalars(select(Event.user_id).where(*where, leaving).distinct()))
        return ids | set(session.scalars(select(Event.user_id).where(*where, entering).distinct()))
    if edge.kind == "device":
        stmt = select(Device.user_id).where(
            Device.workspace_id == workspace_id, Device.last_seen_at >= low, Device.last_seen_at < high
        )
        return set(session.scalars(stmt.distinct()))
    model = User if edge.about == SubjectType.USER else Account
    stmt = select(model.id).where(model.workspace_id == workspace_id, model.created_at >= low, model.created_at < high)
    return set(session.scalars(stmt))


def _accounts_of(session: Session, user_ids: set[int]) -> set[int]:
    found: set[int] = set()
    ordered = sorted(user_ids)
    for start in range(0, len(ordered), 5000):
        chunk = ordered[start : start + 5000]
        found.update(session.scalars(select(AccountUser.account_id).where(AccountUser.user_id.in_(chunk)).distinct()))
    return found


@dataclass
class EdgeRefresh:
    segments: int = 0
    subjects: int = 0
    entered: int = 0
    exited: int = 0


def covered_segments(session: Session, workspace_id: int | None = None) -> dict[int, tuple[Segment, EdgePlan]]:
    """The time-relative dynamic segments whose every relative part is a tracked window edge."""
    query = select(Segment).where(Segment.is_time_relative.is_(True), Segment.kind == SegmentKind.DYNAMIC)
    if workspace_id is not None:
        query = query.where(Segment.workspace_id == workspace_id)
    found = {}
    for segment in session.scalars(query.order_by(Segment.id)):
        try:
            plan = edge_plan(parse_conditions(segment.conditions, segment.subject_type), segment.subject_type)
        except Exception:  # a definition the engine cannot read is the sliding refresh's to report
            continue
        if plan.covered:
            found[segment.id] = (segment, plan)
    return found


def refresh_window_edges(session: Session, workspace_id: int, now: datetime | None = None) -> EdgeRefresh:
    """Re-evaluate, in the workspace's covered segments, the subjects whose window edge passed since each segment
    was last followed, and mark them followed up to ``now``. Runs in the caller's transaction."""
    now = now or utcnow()
    result = EdgeRefresh()
    scopes: dict[int, set[int]] = {}
    whole: list[int] = []
    covered = covered_segments(session, workspace_id)
    for segment_id, (segment, plan) in covered.items():
        if segment.last_evaluated_at is None:  # never evaluated: there is no state to move from
            whole.append(segment_id)
            result.segments += 1
            continue
        since = max(m for m in (segment.edges_checked_at, segment.last_evaluated_at) if m is not None)
        if since >= now:
            continue
        subjects: set[int] = set()
        for edge in plan.edges:
            ids = passed(session, workspace_id, edge, since, now)
            if edge.about != segment.subject_type and ids:
                ids = _accounts_of(session, ids)
            subjects |= ids
        result.segments += 1
        result.subjects += len(subjects)
        if len(subjects) > WHOLE_ABOVE:
            whole.append(segment_id)
        elif subjects:
            scopes[segment_id] = subjects
    if scopes:
        evaluation = evaluate_subjects(session, workspace_id, scopes, now=now)
        result.entered, result.exited = evaluation.entered, evaluation.exited
    if whole:
        evaluation = refresh_segments(session, workspace_id, whole, now=now)
        result.entered += evaluation.entered
        result.exited += evaluation.exited
    if covered:
        session.execute(
            update(Segment)
            .where(Segment.id.in_(list(covered)))
            .values(edges_checked_at=now, updated_at=Segment.updated_at)
            .execution_options(synchronize_session=False)
        )
    return result


def edge_workspaces(session: Session) -> list[int]:
    """Workspaces with time-relative segments."""
    query = select(Segment.workspace_id).where(Segment.is_time_relative.is_(True), Segment.kind == SegmentKind.DYNAMIC)
    return list(session.scalars(query.distinct().order_by(Segment.workspace_id)))
