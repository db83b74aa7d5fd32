"""Firing playbooks: from the membership history (enter/exit) or a schedule, to recorded firings and their actions.

Enter/exit triggers read ``segment_membership_history``, not an in-memory hook. A playbook reads it in lanes
(``PlaybookLane``: the subjects with ``subject_id % lanes == lane``), each with a cursor (the last history id it
read) and a row lock of its own, so the lanes of one playbook are fired by parallel transactions. One pass of a lane
reads the next rows of its segment, change and subjects after its cursor, checks the conditions for those subjects,
runs the actions that write to the database (enrol, attributes, tags), records one firing per history row and
advances the lane's cursor — all in the caller's transaction, so a crash before the commit leaves everything to be
read again, and a commit leaves nothing to be read twice (a firing is also unique per playbook, history row and
subject). A subject is always in the same lane: its firings keep their order and its loop bound is counted in one
place. Rows younger than ``SETTLE`` are left for the next pass, so that a transaction that wrote a lower history id
and commits a moment later is not stepped over; a transaction that commits later still (a long import beside short
requests) is caught by ``sweep_late_rows``, which fires the rows of the last ``LATE_WINDOW`` behind the lane's
cursor that have no firing yet (never rows from before the playbook was created or resumed from now).

Actions that call out (webhook, run a sync) are never run inside the transaction: the firing is recorded
``pending`` and ``deliver_firing`` runs them afterwards, with retries (tenacity), then records ``succeeded`` or
``failed`` with the error. A pending firing is never dropped: the next pass delivers it again (receivers get the
firing id in ``X-Connector-Firing`` to recognise a repeat).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import DateTime, String, Text, bindparam, cast, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from connector.automation.common import insert_for
from connector.automation.playbooks import MAX_FIRINGS_PER_SUBJECT_PER_HOUR
from connector.automation.sequences import enrol, get_sequence
from connector.automation.webhooks import DeliveryPolicy, post_signed
from connector.db import Database
from connector.ingest.accounts import group
from connector.ingest.statements import id_array, one_of
from connector.ingest.users import identify
from connector.models import (
    Account,
    FiringStatus,
    MembershipChange,
    Playbook,
    PlaybookFiring,
    PlaybookLane,
    SegmentMembershipEvent,
    SubjectType,
    User,
    utcnow,
)
from connector.security import SecretBox
from connector.segments.compiler import compile_condition
from connector.segments.incremental import apply_changes
from connector.segments.validation import parse_conditions
from connector.syncs import run_sync

log = logging.getLogger("connector.automation")

SETTLE = timedelta(seconds=1)
LATE_WINDOW = timedelta(minutes=15)
BATCH = 5000
# Ids per statement (bound as a list): large enough that a batch is a handful of statements.
CHUNK = 5000
OUTBOUND = frozenset({"webhook", "run_sync"})
FIRINGS = PlaybookFiring.__table__
HISTORY = SegmentMembershipEvent.__table__
FIRING_HEADER = "X-Connector-Firing"


class Cause(NamedTuple):
    trigger: str
    ref: str
    subject_id: int
    at: datetime
    # The membership history row this firing answers (its ref is the row's id), when it answers one.
    history_id: int | None = None


def playbooks_to_process(session: Session) -> list[tuple[int, int]]:
    """The lanes of the enabled enter/exit playbooks of every workspace, as (playbook id, lane)."""
    query = (
        select(PlaybookLane.playbook_id, PlaybookLane.lane)
        .join(Playbook, Playbook.id == PlaybookLane.playbook_id)
        .where(Playbook.enabled.is_(True), Playbook.trigger_segment_id.is_not(None))
    )
    rows = session.execute(query.order_by(Playbook.id, PlaybookLane.lane))
    return [(playbook_id, lane) for playbook_id, lane in rows]


def process_membership_triggers(
    session: Session, playbook_id: int, lane: int = 0, *, now: datetime | None = None, limit: int = BATCH, settle=SETTLE
) -> int:
    """Fire the playbook for the next ``limit`` history rows of the lane after its cursor; returns how many were read
    (0: the lane is caught up, or another process holds it)."""
    now = now or utcnow()
    locked = _lock_lane(session, playbook_id, lane)
    if locked is None:
        return 0
    playbook, reading = locked
    rows = session.execute(
        select(HISTORY.c.id, HISTORY.c.subject_id, HISTORY.c.at)
        .where(
            _lane_rows(playbook, lane),
            HISTORY.c.id > reading.cursor,
            HISTORY.c.at <= now - settle,
        )
        .order_by(HISTORY.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    fire(session, playbook, _history_causes(playbook, rows), now)
    reading.cursor = rows[-1].id
    session.flush()
    return len(rows)


def sweep_late_rows(
    session: Session,
    playbook_id: int,
    lane: int = 0,
    *,
    now: datetime | None = None,
    limit: int = BATCH,
    window=LATE_WINDOW,
) -> int:
    """Fire for history rows of the lane behind its cursor that have no firing: rows whose transaction committed
    after later rows had been read. Returns how many were found."""
    now = now or utcnow()
    locked = _lock_lane(session, playbook_id, lane)
    if locked is None:
        return 0
    playbook, reading = locked
    fired = (
        select(FIRINGS.c.id)
        .where(FIRINGS.c.playbook_id == playbook.id, FIRINGS.c.trigger_ref == cast(HISTORY.c.id, String))
        .exists()
    )
    rows = session.execute(
        select(HISTORY.c.id, HISTORY.c.subject_id, HISTORY.c.at)
        .where(
            _lane_rows(playbook, lane),
            HISTORY.c.id <= reading.cursor,
            HISTORY.c.at >= max(now - window, playbook.read_from),
            ~fired,
        )
        .order_by(HISTORY.c.id)
        .limit(limit)
    ).all()
    if rows:
        log.warning("playbook %s: %d membership change(s) committed late are fired now", playbook.id, len(rows))
        fire(session, playbook, _history_causes(playbook, rows), now)
    return len(rows)


def _lock_lane(session: Session, playbook_id: int, lane: int) -> tuple[Playbook, PlaybookLane] | None:
    """The playbook and its lane, the lane's row locked for this transaction; None when another transaction holds
    it (SKIP LOCKED) or the playbook reads no history."""
    reading = session.scalar(
        select(PlaybookLane)
        .where(PlaybookLane.playbook_id == playbook_id, PlaybookLane.lane == lane)
        .with_for_update(skip_locked=True)
    )
    if reading is None:
        return None
    playbook = _locked_playbook(session, playbook_id)
    if playbook is None or not playbook.enabled or playbook.trigger_segment_id is None:
        return None
    return playbook, reading


def _locked_playbook(session: Session, playbook_id: int) -> Playbook | None:
    """The playbook, its row locked against its delete until this transaction ends: what a foreign key's check did
    for each firing written, once (migration 0019). None when it is gone."""
    locked = select(Playbook.id).where(Playbook.id == playbook_id).with_for_update(read=True, key_share=True)
    return session.get(Playbook, playbook_id) if session.scalar(locked) is not None else None


def _lane_rows(playbook: Playbook, lane: int):
    """The history rows of the playbook's segment and change whose subjects are in the lane."""
    change = MembershipChange.ENTERED if playbook.trigger["kind"] == "enters" else MembershipChange.EXITED
    rows = (HISTORY.c.segment_id == playbook.trigger_segment_id) & (HISTORY.c.change == change.value)
    lanes = len(playbook.lanes)
    return rows & (HISTORY.c.subject_id % lanes == lane) if lanes > 1 else rows


def _history_causes(playbook: Playbook, rows) -> list[Cause]:
    kind = playbook.trigger["kind"]
    return [Cause(kind, str(id_), subject_id, at, id_) for id_, subject_id, at in rows]


def fire_on_schedule(session: Session, playbook_id: int, now: datetime | None = None) -> int:
    """Fire a schedule playbook for every subject matching its conditions now; returns the firings recorded."""
    now = now or utcnow()
    playbook = _locked_playbook(session, playbook_id)
    if playbook is None or not playbook.enabled or playbook.trigger.get("kind") != "schedule":
        return 0
    subjects = matching_subjects(session, playbook, None, now)
    ref = "schedule:" + now.replace(second=0, microsecond=0).isoformat()
    causes = [Cause("schedule", ref, subject_id, now) for subject_id in sorted(subjects)]
    for start in range(0, len(causes), BATCH):
        fire(session, playbook, causes[start : start + BATCH], now, check_conditions=False)
    return len(causes)


def matching_subjects(session: Session, playbook: Playbook, subject_ids: list[int] | None, now: datetime) -> set[int]:
    """The subjects (of ``subject_ids``, or all) matching the playbook's conditions at ``now``."""
    subject_type = SubjectType(playbook.subject_type)
    table = User if subject_type == SubjectType.USER else Account
    if playbook.conditions is None:
        query = select(table.id).where(table.workspace_id == playbook.workspace_id)
        if subject_ids is None:
            return set(session.scalars(query))
        found: set[int] = set()
        for chunk in _chunks(subject_ids):
            found.update(session.scalars(query.where(one_of(session, table.id, chunk))))
        return found
    node = parse_conditions(playbook.conditions, subject_type)
    if subject_ids is None:
        return set(
            session.scalars(
                compile_condition(node, subject_type=subject_type, workspace_id=playbook.workspace_id, now=now)
            )
        )
    found = set()
    for chunk in _chunks(subject_ids):
        query = compile_condition(
            node, subject_type=subject_type, workspace_id=playbook.workspace_id, now=now, subject_ids=chunk
        )
        found.update(session.scalars(query))
    return found


def fire(session: Session, playbook: Playbook, causes: list[Cause], now: datetime, *, check_conditions=True) -> None:
    """Record a firing per cause: ``skipped`` when the conditions do not hold, ``suppressed`` past the loop bound,
    else run the database actions and record ``succeeded`` / ``failed`` (or ``pending`` when actions call out)."""
    subjects = sorted({c.subject_id for c in causes})
    check = check_conditions and playbook.conditions is not None
    # Without conditions every subject of the history matches (one deleted since has nothing to act on).
    matching = matching_subjects(session, playbook, subjects, now) if check else set(subjects)
    recent = _recent_firings(session, playbook.id, [s for s in subjects if s in matching], now)
    statuses: list[tuple[Cause, FiringStatus, str | None]] = []
    to_fire: list[int] = []
    for cause in causes:
        if cause.subject_id not in matching:
            statuses.append((cause, FiringStatus.SKIPPED, "conditions not met"))
        elif recent.get(cause.subject_id, 0) >= MAX_FIRINGS_PER_SUBJECT_PER_HOUR:
            reason = f"loop bound: fired {MAX_FIRINGS_PER_SUBJECT_PER_HOUR} times in the last hour for this subject"
            statuses.append((cause, FiringStatus.SUPPRESSED, reason))
        else:
            recent[cause.subject_id] = recent.get(cause.subject_id, 0) + 1
            to_fire.append(cause.subject_id)
            statuses.append((cause, FiringStatus.SUCCEEDED, None))
    outcome = run_local_actions(session, playbook, sorted(set(to_fire)), now) if to_fire else ActionOutcome()
    outbound = any(a["type"] in OUTBOUND for a in playbook.actions)
    # Firings alike but for their cause are recorded together: one statement per distinct outcome of the batch.
    groups: dict[tuple[str, FiringStatus, str | None, bool | None], list[Cause]] = {}
    for cause, status, error in statuses:
        enrolled = None  # no results: the actions did not run for this cause
        if status == FiringStatus.SUCCEEDED:
            # Enrolled once per batch: a later firing for the same subject found them enrolled.
            enrolled = cause.subject_id in outcome.enrolled
            outcome.enrolled.discard(cause.subject_id)
            if outcome.error is not None:
                status, error = FiringStatus.FAILED, outcome.error
            elif outbound:
                status = FiringStatus.PENDING
        groups.setdefault((cause.trigger, status, error, enrolled), []).append(cause)
    recorded_at = utcnow()
    for (trigger, status, error, enrolled), members in groups.items():
        shared = {
            "workspace_id": playbook.workspace_id,
            "playbook_id": playbook.id,
            "trigger": trigger,
            "status": status.value,
            "attempts": 1 if status in (FiringStatus.SUCCEEDED, FiringStatus.FAILED) else 0,
            "results": [] if enrolled is None else outcome.results(enrolled, playbook.actions),
            "error": error,
            "created_at": recorded_at,
            "finished_at": None if status == FiringStatus.PENDING else recorded_at,
        }
        record_firings(session, shared, members)


def record_firings(session: Session, shared: dict[str, Any], causes: list[Cause]) -> None:
    """Insert one firing per cause, alike in every other column (``shared``), skipping any already recorded for the
    same cause. One INSERT … SELECT with the shared values as constants (an executemany of 5,000 rows was most of a
    batch's time): on PostgreSQL the causes come from the history rows they answer (one array of ids) or from
    arrays (``unnest``), on SQLite from one JSON document (``json_each``); elsewhere an executemany."""
    insert = insert_for(session)(FIRINGS).on_conflict_do_nothing(
        index_elements=["playbook_id", "trigger_ref", "subject_id"]
    )
    dialect = session.get_bind().dialect
    if dialect.name not in ("postgresql", "sqlite"):
        rows = [{**shared, "subject_id": c.subject_id, "trigger_ref": c.ref, "triggered_at": c.at} for c in causes]
        session.execute(insert, rows)
        return
    where = true()
    if dialect.name == "sqlite":
        selected, source = _sqlite_rows(causes, dialect)
    elif all(c.history_id is not None for c in causes):
        selected, source = [HISTORY.c.subject_id, cast(HISTORY.c.id, Text), HISTORY.c.at], HISTORY
        where = one_of(session, HISTORY.c.id, [c.history_id for c in causes])
    else:
        selected, source = (
            [
                func.unnest(id_array([c.subject_id for c in causes])),
                func.unnest(bindparam("a_ref", [c.ref for c in causes], type_=ARRAY(Text))),
                func.unnest(bindparam("a_at", [c.at for c in causes], type_=ARRAY(DateTime(timezone=True)))),
            ],
            None,
        )
    names = ["subject_id", "trigger_ref", "triggered_at"]
    for column in FIRINGS.c:
        if column.name in names or column.name == "id":
            continue
        names.append(column.name)
        selected.append(literal(shared[column.name], column.type))
    # SQLite needs a WHERE before ON CONFLICT in an INSERT … SELECT (else it reads the ON as a join's).
    query = select(*selected) if source is None else select(*selected).select_from(source).where(where)
    session.execute(insert.from_select(names, query))


def _sqlite_rows(causes: list[Cause], dialect) -> tuple[list[Any], Any]:
    """SQLite's counterpart of unnest: the per-row values as one JSON array read by ``json_each`` (binding 5,000
    rows of a dozen values each one by one was most of a batch's time there)."""
    stored_at = FIRINGS.c.triggered_at.type.dialect_impl(dialect).bind_processor(dialect)
    document = json.dumps([[c.subject_id, c.ref, str(stored_at(c.at))] for c in causes])
    each = func.json_each(bindparam("a_rows", document, type_=Text)).table_valued("value")
    selected = [
        func.json_extract(each.c.value, "$[0]"),
        func.json_extract(each.c.value, "$[1]"),
        func.json_extract(each.c.value, "$[2]"),
    ]
    return selected, each


def _recent_firings(session: Session, playbook_id: int, subjects: list[int], now: datetime) -> dict[int, int]:
    """How many firings that acted (or will) each subject had from this playbook in the last hour (the loop bound).

    One count per subject, each an index probe of ``(playbook_id, subject_id, created_at)``: on PostgreSQL the
    subjects are an array unnested beside a correlated count, so the plan does not depend on what the planner
    believes of the firings table (as a semi-join, with statistics from when the table was empty, it re-read every
    firing of the playbook for each subject: 16 s for 5,000 subjects at 40,000 firings)."""
    counted = (FiringStatus.SUCCEEDED.value, FiringStatus.FAILED.value, FiringStatus.PENDING.value)
    recent = [
        FIRINGS.c.playbook_id == playbook_id,
        FIRINGS.c.created_at >= now - timedelta(hours=1),
        FIRINGS.c.status.in_(counted),
    ]
    postgresql = session.get_bind().dialect.name == "postgresql"
    counts: dict[int, int] = {}
    for chunk in _chunks(subjects):
        if postgresql:
            subject = func.unnest(id_array(chunk)).column_valued("subject")
            found = select(func.count()).where(FIRINGS.c.subject_id == subject, *recent).scalar_subquery()
            query = select(subject, found).where(found > 0)
        else:
            query = (
                select(FIRINGS.c.subject_id, func.count())
                .where(FIRINGS.c.subject_id.in_(chunk), *recent)
                .group_by(FIRINGS.c.subject_id)
            )
        counts.update({subject_id: n for subject_id, n in session.execute(query)})
    return counts


# -- actions that write to the database ---------------------------------------------------------------------------


@dataclass
class ActionOutcome:
    enrolled: set[int] = field(default_factory=set)
    error: str | None = None

    def results(self, enrolled: bool, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What each action did for a subject (``enrolled``: whether the enrol action enrolled it now)."""
        results = []
        for action in actions:
            if action["type"] == "enrol":
                detail = "enrolled" if enrolled else "already enrolled"
                results.append({"type": "enrol", "status": "ok", "detail": detail})
            elif action["type"] in OUTBOUND:
                results.append({"type": action["type"], "status": "pending"})
            else:
                results.append({"type": action["type"], "status": "ok" if self.error is None else "failed"})
        return results


def run_local_actions(session: Session, playbook: Playbook, subjects: list[int], now: datetime) -> ActionOutcome:
    """Enrolments and data changes for these subjects, all or none (a savepoint): a failure is the firings' error."""
    outcome = ActionOutcome()
    try:
        with session.begin_nested():
            for action in playbook.actions:
                kind = action["type"]
                if kind == "enrol":
                    sequence = get_sequence(session, playbook.workspace_id, action["sequence_id"])
                    for chunk in _chunks(subjects):
                        outcome.enrolled.update(
                            enrol(
                                session,
                                sequence,
                                chunk,
                                fallback_channel=action["fallback_channel"],
                                source="playbook",
                                source_id=playbook.id,
                                now=now,
                            )
                        )
                elif kind not in OUTBOUND:
                    _change_data(session, playbook, subjects, action)
    except Exception as exc:
        log.exception("playbook %s: actions failed for %d subject(s)", playbook.id, len(subjects))
        outcome = ActionOutcome(error=f"{type(exc).__name__}: {exc}"[:1000])
    return outcome


def _change_data(session: Session, playbook: Playbook, subjects: list[int], action: dict[str, Any]) -> None:
    """Set or remove an attribute or tag through ingestion (``identify`` / ``group``) and the incremental segment
    update, exactly as an ingestion request would: segments, history and syncs follow."""
    change: dict[str, Any] = {}
    if action["type"] == "set_attribute":
        change["attributes"] = {action["name"]: action["value"]}
    elif action["type"] == "remove_attribute":
        change["attributes"] = {action["name"]: None}
    elif action["type"] == "add_tag":
        change["tags"] = [action["tag"]]
    else:
        change["remove_tags"] = [action["tag"]]
    is_user = SubjectType(playbook.subject_type) == SubjectType.USER
    for chunk in _chunks(subjects):
        if is_user:
            rows = session.execute(select(User.external_id, User.email).where(User.id.in_(chunk)))
            items = [{"external_id": r.external_id} if r.external_id else {"email": r.email} for r in rows]
            result = identify(session, playbook.workspace_id, [{**item, **change} for item in items])
        else:
            rows = session.scalars(select(Account.external_id).where(Account.id.in_(chunk)))
            result = group(session, playbook.workspace_id, [{"external_id": e, **change} for e in rows])
        apply_changes(session, playbook.workspace_id, result.changes)


def _chunks(ids: Iterable[int], size: int = CHUNK) -> Iterable[list[int]]:
    ids = list(ids)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# -- actions that call out ----------------------------------------------------------------------------------------


def pending_firings(session: Session, limit: int = 100) -> list[int]:
    query = select(FIRINGS.c.id).where(FIRINGS.c.status == FiringStatus.PENDING.value)
    return list(session.scalars(query.order_by(FIRINGS.c.id).limit(limit)))


def deliver_firing(db: Database, firing_id: int, secret_key: str, policy: DeliveryPolicy | None = None) -> str | None:
    """Run a pending firing's outbound actions (outside any transaction), then record the outcome; returns the
    status recorded (None when the firing is no longer pending)."""
    policy = policy or DeliveryPolicy()
    with db.session() as session:
        firing = session.get(PlaybookFiring, firing_id)
        if firing is None or firing.status != FiringStatus.PENDING:
            return None
        playbook = session.get(Playbook, firing.playbook_id)
        secrets = SecretBox(secret_key).decrypt(playbook.secrets_encrypted) if playbook.secrets_encrypted else {}
        payload = _payload(session, playbook, firing)
        actions = list(playbook.actions)
        results = list(firing.results)
    error = None
    for index, action in enumerate(actions):
        if action["type"] not in OUTBOUND:
            continue
        try:
            if action["type"] == "webhook":
                detail = post_signed(
                    action["url"], secrets.get(str(index), ""), payload, {FIRING_HEADER: str(firing_id)}, policy
                )
            else:
                detail = _run_sync(db, action["sync_id"], secret_key)
            _set_result(results, index, {"type": action["type"], "status": "ok", "detail": detail})
        except Exception as exc:
            error = f"{action['type']} (action {index}): {exc}"[:1000]
            _set_result(results, index, {"type": action["type"], "status": "failed", "detail": str(exc)[:500]})
    status = FiringStatus.FAILED if error else FiringStatus.SUCCEEDED
    with db.session() as session:
        session.execute(
            update(PlaybookFiring)
            .where(PlaybookFiring.id == firing_id, PlaybookFiring.status == FiringStatus.PENDING)
            .values(
                status=status,
                results=results,
                error=error,
                attempts=PlaybookFiring.attempts + 1,
                finished_at=utcnow(),
            )
        )
    return status.value


def _set_result(results: list[dict[str, Any]], index: int, value: dict[str, Any]) -> None:
    while len(results) <= index:
        results.append({})
    results[index] = value


def _payload(session: Session, playbook: Playbook, firing: PlaybookFiring) -> dict[str, Any]:
    subject: dict[str, Any] = {"id": firing.subject_id}
    if playbook.subject_type == SubjectType.USER:
        user = session.get(User, firing.subject_id)
        if user is not None:
            subject.update(external_id=user.external_id, email=user.email)
    else:
        account = session.get(Account, firing.subject_id)
        if account is not None:
            subject.update(external_id=account.external_id, domain=account.domain)
    return {
        "playbook": {"id": playbook.id, "name": playbook.name},
        "firing_id": firing.id,
        "trigger": firing.trigger,
        "triggered_at": firing.triggered_at.isoformat(),
        "subject_type": playbook.subject_type.value,
        "subject": subject,
    }


def _run_sync(db: Database, sync_id: int, secret_key: str) -> str:
    outcome = run_sync(db, sync_id, trigger="playbook", secret_key=secret_key)
    if outcome.status.value == "failed":
        raise RuntimeError(f"sync run {outcome.run_id} failed: {outcome.first_error}")
    return f"sync run {outcome.run_id}: {outcome.status.value}"
