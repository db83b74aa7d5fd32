"""Carrying out a claimed sync run in the background: "run now" (the API) goes through the executor scheduled runs
use when the active scheduler runs in this process, else through this process's bounded pool of run threads.

Either way the run was claimed first (``syncs.locks.claim_run``), so the caller can answer with it at once and the
lease keeps it exclusive; the executor only carries it out (``syncs.execute_run`` records any failure in the run).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from connector.db import Database
from connector.scheduling.scheduler import submit_to_scheduler
from connector.syncs import execute_run

log = logging.getLogger("connector.scheduling")

POOL_WORKERS = 4
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def start_claimed_run(db: Database, run_id: int, sync_id: int, trigger: str, *, secret_key: str) -> str:
    """Carry out run ``run_id`` of sync ``sync_id`` in the background; where it runs: ``scheduler`` or ``pool``."""
    name = f"sync {sync_id}: run {run_id} ({trigger})"
    if submit_to_scheduler(_carry_out, db, run_id, sync_id, trigger, secret_key, name=name):
        return "scheduler"
    _run_pool().submit(_carry_out, db, run_id, sync_id, trigger, secret_key)
    return "pool"


def _carry_out(db: Database, run_id: int, sync_id: int, trigger: str, secret_key: str) -> None:
    try:
        execute_run(db, run_id, sync_id, trigger, secret_key=secret_key)
    except Exception:  # execute_run records failures in the run; anything escaping it is logged, not lost
        log.exception("run %s of sync %s could not be carried out", run_id, sync_id)


def _run_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_WORKERS, thread_name_prefix="sync-run")
        return _pool
