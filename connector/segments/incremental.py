"""Incremental re-evaluation after ingestion."""

from __future__ import annotations

from sqlalchemy.orm import Session

from connector.changes import ChangeSet


def apply_changes(session: Session, workspace_id: int, changes: ChangeSet) -> None:
    """Re-evaluate, for the changed subjects only, the segments whose conditions can depend on what changed."""
