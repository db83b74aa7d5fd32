"""Syncs as their documents show them: definition, segments, last run, whether one is going, and when the
scheduler runs each next (read from the job store, so it works from any process)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from connector.scheduling.store import next_run_times
from connector.syncs.definitions import get_sync, list_syncs
from connector.syncs.history import SyncState, sync_states

SyncOverview = tuple[SyncState, datetime | None]


def upcoming_runs(session: Session, sync_ids: list[int]) -> dict[int, datetime | None]:
    """``next_run_times``, or None for each sync when the job table cannot be read (an older schema must not hide
    the syncs themselves)."""
    try:
        with session.begin_nested():
            return next_run_times(session, sync_ids)
    except SQLAlchemyError:
        return dict.fromkeys(sync_ids)


def sync_overviews(session: Session, workspace_id: int) -> list[SyncOverview]:
    """Every sync of the workspace, in id order, with its state and next scheduled run."""
    states = sync_states(session, list_syncs(session, workspace_id))
    upcoming = upcoming_runs(session, [s.sync.id for s in states])
    return [(state, upcoming[state.sync.id]) for state in states]


def sync_overview(session: Session, workspace_id: int, sync_id: int) -> SyncOverview:
    """One sync of the workspace with its state and next scheduled run; ``NotFoundError`` when there is none."""
    (state,) = sync_states(session, [get_sync(session, workspace_id, sync_id)])
    return state, upcoming_runs(session, [sync_id])[sync_id]
