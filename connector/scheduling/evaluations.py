"""Evaluating a saved segment definition in the background (``connector.segments.evaluation``), on the executor
scheduled jobs and "run now" use when the active scheduler runs in this process, else on the segment engine's own
one-thread pool.
"""

from __future__ import annotations

from connector.db import Database
from connector.scheduling.scheduler import submit_to_scheduler
from connector.segments import evaluation


def start_evaluation(db: Database, workspace_id: int, segment_id: int) -> str:
    """Evaluate a pending segment in the background; where it runs: ``scheduler`` or ``pool``."""
    name = f"segment {segment_id}: evaluation"
    if submit_to_scheduler(evaluation.evaluate, db, workspace_id, segment_id, name=name):
        return "scheduler"
    evaluation.submit(db, workspace_id, segment_id)
    return "pool"
