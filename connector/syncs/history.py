"""What a sync did and is doing: its runs, their errors, the last run and whether one is going (reads only).

Shaping these as JSON is the API's business (``connector.api.sync_documents``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.errors import NotFoundError
from connector.models import RunStatus, Sync, SyncRun, SyncRunError, SyncSegment, utcnow
from connector.syncs.locks import LEASE_SECONDS

COUNTS = ("planned", "added", "changed", "removed", "rejected", "invalid", "unchanged", "unsent")


@dataclass(frozen=True)
class SyncState:
    """A sync with what its document shows besides its columns."""

    sync: Sync
    segment_ids: list[int]
    last_run: SyncRun | None
    running: bool


def sync_states(session: Session, syncs: Sequence[Sync]) -> list[SyncState]:
    """Each sync with its segments, its last real run and whether a run holds its lease (a few queries in all)."""
    ids = [s.id for s in syncs]
    last = last_runs(session, ids)
    segments = segment_ids_by_sync(session, ids)
    running = running_sync_ids(session, ids)
    return [SyncState(s, segments[s.id], last.get(s.id), s.id in running) for s in syncs]


def last_runs(session: Session, sync_ids: Sequence[int]) -> dict[int, SyncRun]:
    """The latest real (not dry) run of each sync."""
    if not sync_ids:
        return {}
    latest = (
        select(func.max(SyncRun.id))
        .where(SyncRun.sync_id.in_(sync_ids), SyncRun.dry_run.is_(False))
        .group_by(SyncRun.sync_id)
    )
    return {run.sync_id: run for run in session.scalars(select(SyncRun).where(SyncRun.id.in_(latest)))}


def running_sync_ids(session: Session, sync_ids: Sequence[int]) -> set[int]:
    """The syncs among ``sync_ids`` with a run in progress (a live lease; dry runs do not count)."""
    if not sync_ids:
        return set()
    fresh = utcnow() - timedelta(seconds=LEASE_SECONDS)
    return set(
        session.scalars(
            select(SyncRun.sync_id).where(
                SyncRun.sync_id.in_(sync_ids),
                SyncRun.status == RunStatus.RUNNING,
                SyncRun.dry_run.is_(False),
                SyncRun.heartbeat_at >= fresh,
            )
        )
    )


def segment_ids_by_sync(session: Session, sync_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {sync_id: [] for sync_id in sync_ids}
    if sync_ids:
        rows = session.execute(
            select(SyncSegment.sync_id, SyncSegment.segment_id)
            .where(SyncSegment.sync_id.in_(sync_ids))
            .order_by(SyncSegment.sync_id, SyncSegment.segment_id)
        )
        for sync_id, segment_id in rows:
            found[sync_id].append(segment_id)
    return found


def list_runs(session: Session, sync_id: int, limit: int, before_id: int | None) -> list[SyncRun]:
    stmt = select(SyncRun).where(SyncRun.sync_id == sync_id)
    if before_id is not None:
        stmt = stmt.where(SyncRun.id < before_id)
    return list(session.scalars(stmt.order_by(SyncRun.id.desc()).limit(limit)))


def get_run(session: Session, sync_id: int, run_id: int) -> SyncRun:
    run = session.scalar(select(SyncRun).where(SyncRun.id == run_id, SyncRun.sync_id == sync_id))
    if run is None:
        raise NotFoundError("run")
    return run


def list_run_errors(session: Session, run_id: int, limit: int, after_id: int | None) -> list[SyncRunError]:
    stmt = select(SyncRunError).where(SyncRunError.run_id == run_id)
    if after_id is not None:
        stmt = stmt.where(SyncRunError.id > after_id)
    return list(session.scalars(stmt.order_by(SyncRunError.id).limit(limit)))
