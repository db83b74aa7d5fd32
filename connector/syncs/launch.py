"""Starting runs from an entry point: a real run in a background thread, or a dry run in the caller's thread.

The claim (the sync's lease) is committed before the work starts, so a second "run now" sees the first and is
refused with ``ConflictError`` (its attempt is recorded as a ``skipped`` run, as the scheduler's would be).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from connector.db import Database
from connector.errors import ConflictError
from connector.models import RunStatus, SyncRun
from connector.syncs import definitions, history
from connector.syncs.engine import execute_run, run_sync
from connector.syncs.locks import claim_run


def start_run(db: Database, workspace_id: int, sync_id: int, trigger: str, secret_key: str) -> SyncRun:
    """Claim the sync and run it in a daemon thread; the run as claimed (``running``)."""
    with db.session() as session:
        sync = definitions.get_sync(session, workspace_id, sync_id)
        run = claim_run(session, sync.id, trigger)
        session.flush()
    if run.status == RunStatus.SKIPPED:
        raise ConflictError(run.first_error or "a run of this sync is in progress", run_id=run.id)
    threading.Thread(
        target=execute_run,
        args=(db, run.id, sync_id, trigger),
        kwargs={"secret_key": secret_key},
        name=f"sync-{sync_id}-run-{run.id}",
        daemon=True,
    ).start()
    return run


@dataclass(frozen=True)
class DryRun:
    run: SyncRun
    samples: list[dict[str, Any]]


def dry_run(db: Database, workspace_id: int, sync_id: int, trigger: str, secret_key: str) -> DryRun:
    """What a run would send now (counts and sample payloads); sends nothing, changes no record state."""
    with db.session() as session:
        definitions.get_sync(session, workspace_id, sync_id)
    outcome = run_sync(db, sync_id, trigger, dry_run=True, secret_key=secret_key)
    with db.session() as session:
        run = history.get_run(session, sync_id, outcome.run_id)
    return DryRun(run, list(outcome.samples or []))
