"""The scheduled job that follows window edges (``connector.segments.edges``), every ``EDGE_INTERVAL``.

It exists while some time-relative segment is covered by edges (``edge_job_needed``); one transaction per
workspace, so a workspace's segments stay locked only while its edges are followed and a failing one does not hold
the others back. The sliding refresh job leaves covered segments to this one.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from connector.scheduling.jobs import bound_database
from connector.segments.edges import EdgeRefresh, covered_segments, edge_workspaces, refresh_window_edges

log = logging.getLogger("connector.scheduling")

EDGES_JOB_ID = "segments:follow-window-edges"
FOLLOW_EDGES_REF = "connector.scheduling.window_edges:follow_window_edges"


def edge_job_needed(session: Session) -> bool:
    return bool(covered_segments(session))


def follow_window_edges() -> None:
    db = bound_database()
    with db.session() as session:
        workspaces = edge_workspaces(session)
    total = EdgeRefresh()
    for workspace_id in workspaces:
        try:
            with db.session() as session:
                result = refresh_window_edges(session, workspace_id)
        except Exception:
            log.exception("window edges of workspace %s could not be followed", workspace_id)
            continue
        total.segments += result.segments
        total.subjects += result.subjects
        total.entered += result.entered
        total.exited += result.exited
    if total.subjects:
        log.info(
            "window edges followed: %s subject(s) in %s segment(s), %s entered, %s exited",
            total.subjects,
            total.segments,
            total.entered,
            total.exited,
        )
