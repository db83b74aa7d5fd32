"""Evaluating a saved segment definition in the background (``connector.segments.evaluation``), on the executor
scheduled jobs and "run now" use when the active scheduler runs in this process, else on the segment engine's own
one-thread pool; on a worker when a broker is configured.
"""

from __future__ import annotations

from connector.db import Database
from connector.scheduling.dispatch import EVALUATION_JOB, Dispatcher, current_dispatcher
from connector.scheduling.scheduler import submit_to_scheduler
from connector.segments import evaluation


def start_evaluation(db: Database, workspace_id: int, segment_id: int, dispatcher: Dispatcher | None = None) -> str:
    """Evaluate a pending segment in the background; where it runs: ``worker`` (a broker is configured: sent to
    ``dispatcher``, or this process's), ``scheduler`` or ``pool``."""
    dispatcher = dispatcher or current_dispatcher()
    if dispatcher is not None:
        dispatcher.enqueue(EVALUATION_JOB, workspace_id=workspace_id, segment_id=segment_id)
        return "worker"
    name = f"segment {segment_id}: evaluation"
    if submit_to_scheduler(evaluation.evaluate, db, workspace_id, segment_id, name=name):
        return "scheduler"
    evaluation.submit(db, workspace_id, segment_id)
    return "pool"
