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

Where it lives: ``evaluated`` (a segment's row, parsed definitions, ``Evaluation``), ``run`` (a run, with
``refresh_segments`` and ``evaluate_subjects``), ``few`` (the few-subjects path), ``sliding`` (sliding windows),
``preview`` (previews); this module holds explicit membership changes and what a rename or deletion recomputes.

Sliding windows: ``sliding.refresh_time_relative_segments`` fully re-evaluates the segments whose conditions move
with time alone; the scheduler runs it every ``refresh_cadence()``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Select,
    delete,
    exists,
    false,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.orm import Session

from connector.computed import refresh_computed
from connector.computed.segments import segments_property
from connector.models import (
    Segment,
)
from connector.scratch import (
    affected_rows,
    evaluated_subjects,
    filled,
    membership_changes,
    scratch,
)
from connector.segments.evaluated import MEMBERS, Evaluation
from connector.segments.run import _Run


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
