"""Syncs: planning, diffing, batching, retries, rate limiting and run history.

``run_sync(db, sync_id, trigger=...)`` runs one sync now (exclusive: a second run at the same time is recorded as
``skipped``); ``is_running(session, sync_id)`` tells whether a run is in progress.
"""

from connector.syncs.engine import RunCounts, RunOutcome, execute_run, run_sync
from connector.syncs.locks import claim_run, is_running, running_run

__all__ = ["RunCounts", "RunOutcome", "claim_run", "execute_run", "is_running", "run_sync", "running_run"]
