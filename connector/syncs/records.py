"""Writing what a destination answered into ``sync_records``, and the run's counters and errors.

Every function takes the caller's session and writes set-based statements (one per kind of outcome); the engine
calls them in one short transaction for the batches answered together, so record state advances only on
acknowledgement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from connector.ingest.statements import insert_rows
from connector.models import Account, RecordState, SubjectType, Sync, SyncRecord, SyncRun, SyncRunError, User, utcnow

# Deleting ids in chunks keeps each statement's parameter list well under every driver's limit.
CHUNK = 1000


def _upsert(session: Session, rows: list[dict[str, Any]], updated: tuple[str, ...]) -> None:
    """Insert ``rows`` of ``sync_records`` (whole rows, of one sync), or update the ``updated`` columns where they
    exist. One statement per batch (``insert_rows``): an executemany of a batch's upserts was most of the database's
    work in a sync run. A subject twice in ``rows`` keeps its last row, as one statement may touch a row only once."""
    if not rows:
        return
    # The sync's row, locked against its delete until this transaction ends: what a foreign key's check did for
    # each row, once (migration 0020). Records acknowledged after the sync was deleted are not written.
    sync_id = rows[0]["sync_id"]
    if session.scalar(select(Sync.id).where(Sync.id == sync_id).with_for_update(read=True, key_share=True)) is None:
        return
    latest = list({row["subject_id"]: row for row in rows}.values()) if len(rows) > 1 else rows
    insert_rows(
        session,
        SyncRecord.__table__,
        latest,
        conflict=["sync_id", "subject_id"],
        update=(*updated, "state", "error", "updated_at"),
    )


def save_delivered(session: Session, sync_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Records the destination acknowledged: ``rows`` of subject_id, identity, payload_hash, payload, remote_id."""
    now = utcnow()
    delivered = [
        {
            "sync_id": sync_id,
            "subject_id": row["subject_id"],
            "identity": row["identity"],
            "payload_hash": row["payload_hash"],
            "payload": row["payload"],
            "remote_id": row.get("remote_id"),
            "state": RecordState.SYNCED,
            "error": None,
            "updated_at": now,
        }
        for row in rows
    ]
    _upsert(session, delivered, ("identity", "payload_hash", "payload", "remote_id"))


def save_rejected(session: Session, sync_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Records the destination refused (``rows`` of subject_id, identity, error). What landed before, if anything,
    stays recorded (payload_hash, payload), so a later exit from the scope still clears it."""
    now = utcnow()
    rejected = [
        {
            "sync_id": sync_id,
            "subject_id": row["subject_id"],
            "identity": row["identity"],
            "payload_hash": None,
            "payload": None,
            "remote_id": None,
            "state": RecordState.REJECTED,
            "error": row["error"],
            "updated_at": now,
        }
        for row in rows
    ]
    _upsert(session, rejected, ("identity",))


def mark_removed(session: Session, sync_id: int, subject_ids: Sequence[int]) -> None:
    """Records cleared or removed at the destination: nothing of their payload is there any more."""
    for start in range(0, len(subject_ids), CHUNK):
        session.execute(
            update(SyncRecord)
            .where(SyncRecord.sync_id == sync_id, SyncRecord.subject_id.in_(subject_ids[start : start + CHUNK]))
            .values(state=RecordState.REMOVED, payload_hash=None, payload=None, error=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def forget_gone(session: Session, sync_id: int, subject_type: SubjectType, subject_ids: Sequence[int]) -> None:
    """Stop tracking records of subjects that no longer exist (erased) once their remote copy was cleared or
    removed: nothing of them, not even the identity, stays."""
    model = User if subject_type == SubjectType.USER else Account
    for start in range(0, len(subject_ids), CHUNK):
        chunk = subject_ids[start : start + CHUNK]
        session.execute(
            delete(SyncRecord)
            .where(
                SyncRecord.sync_id == sync_id,
                SyncRecord.subject_id.in_(chunk),
                ~exists().where(model.id == SyncRecord.subject_id),
            )
            .execution_options(synchronize_session=False)
        )


def forget(session: Session, sync_id: int, subject_ids: Sequence[int]) -> None:
    """Stop tracking records (subjects that left a sync which leaves the destination's copy as it is)."""
    for start in range(0, len(subject_ids), CHUNK):
        session.execute(
            delete(SyncRecord)
            .where(SyncRecord.sync_id == sync_id, SyncRecord.subject_id.in_(subject_ids[start : start + CHUNK]))
            .execution_options(synchronize_session=False)
        )


def add_errors(session: Session, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Per-record errors of a run: ``rows`` of subject_id, identity, kind (invalid | rejected | unsent), reason."""
    if rows:
        session.execute(
            SyncRunError.__table__.insert(),
            [{"run_id": run_id, **row} for row in rows],
        )


def save_counts(session: Session, run_id: int, counts: dict[str, int], **values: Any) -> None:
    """The run's counters so far (and any other columns), with a heartbeat: progress is visible while it runs."""
    session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(**counts, heartbeat_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
