"""The running scheduler: one active per database, standbys waiting to take over, jobs logged and misfires recorded."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_SHUTDOWN,
    EVENT_SCHEDULER_STARTED,
)
from apscheduler.executors.base import BaseExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler, SchedulerNotRunningError

from connector.automation import install as install_automation
from connector.config import Settings
from connector.db import Database
from connector.scheduling.jobs import (
    bind_database,
    expire_abandoned_runs,
    record_missed_run,
    sync_id_of,
    unbind_database,
)
from connector.scheduling.leadership import LeaderLock, holder_name, leader_lock
from connector.scheduling.reconciler import PERSISTENT_STORE, Reconciliation, reconcile_jobs
from connector.scheduling.store import DatabaseJobStore

log = logging.getLogger("connector.scheduling")

MISFIRE_GRACE_SECONDS = 3600
RECONCILE_SECONDS = 30.0
RETRY_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0
LEASE_SECONDS = 30.0
INTERNAL_STORE = "internal"
RECONCILE_JOB_ID = "scheduler:reconcile"
SWEEP_JOB_ID = "scheduler:expire-abandoned-runs"
# How often the active scheduler marks runs whose process died (lease expired) as failed.
SWEEP_SECONDS = 30.0
# How long a scheduler that has lost its lock waits before looking again (it is being stopped meanwhile).
LOCK_RECHECK_SECONDS = 1.0
# A scheduler that lost its lock waits this many of its retry periods before trying for it again.
LOST_BACKOFF_RETRIES = 3
# Counting the run times a job missed during downtime stops here (a minutely job down for a year).
MISSED_COUNT_LIMIT = 10_000

_handles: set[SchedulerHandle] = set()
_handles_lock = threading.Lock()


class LeaderScheduler(BackgroundScheduler):
    """A background scheduler that starts no job unless its process still holds the scheduler lock."""

    def __init__(self, holds_lock: Callable[[], bool] | None = None, **options) -> None:
        self._holds_lock = holds_lock
        super().__init__(**options)

    def _process_jobs(self):
        if self._holds_lock is not None and not self._holds_lock():
            self._logger.warning("scheduler lock not held: starting no jobs")
            return LOCK_RECHECK_SECONDS
        # ``shutdown()`` marks the scheduler stopped, then takes this lock to close the executors. A look for due
        # jobs that began before the mark would otherwise hand a job to a closed executor ("Error submitting job")
        # and move the job past the run it never made. Checked under the lock: past it, the executors are open.
        with self._jobstores_lock:
            if self.state == STATE_STOPPED:
                return None
            return super()._process_jobs()


def create_scheduler(
    db: Database,
    *,
    holds_lock: Callable[[], bool] | None = None,
    executor: BaseExecutor | None = None,
    max_workers: int = 10,
    thread_name_prefix: str = "scheduler",
    misfire_grace_time: int = MISFIRE_GRACE_SECONDS,
    secret_key: str | None = None,
) -> LeaderScheduler:
    """A scheduler (not started) on the database's job store, with the defaults and listeners every job needs.

    Jobs coalesce (runs missed while no scheduler was running become one run) and may start up to
    ``misfire_grace_time`` seconds late; a later one is a misfire, logged and, for a sync, recorded as a skipped
    run. ``secret_key`` decrypts destination secrets for scheduled syncs (None: ``CONNECTOR_SECRET_KEY``).
    Most callers want ``start_scheduler``, which adds the one-per-database lock; this is the part below it.
    """
    scheduler = LeaderScheduler(
        holds_lock,
        jobstores={PERSISTENT_STORE: DatabaseJobStore(db.engine), INTERNAL_STORE: MemoryJobStore()},
        executors={
            "default": executor
            or ThreadPoolExecutor(max_workers, pool_kwargs={"thread_name_prefix": thread_name_prefix})
        },
        job_defaults={"coalesce": True, "misfire_grace_time": misfire_grace_time, "max_instances": 1},
        timezone=UTC,
    )
    scheduler.add_listener(
        _JobEventRecorder(db), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
    )
    if secret_key is None:  # a scheduler started without settings reads them once, here
        secret_key = Settings.from_env().secret_key
    scheduler.add_listener(_DatabaseBinding(db, secret_key), EVENT_SCHEDULER_STARTED | EVENT_SCHEDULER_SHUTDOWN)
    return scheduler


@dataclass
class OverdueJob:
    job_id: str
    missed: int
    last: datetime
    runs_now: bool


def report_overdue_jobs(scheduler: BaseScheduler, now: datetime | None = None) -> list[OverdueJob]:
    """Log the jobs whose run times passed while no scheduler was running, before the scheduler catches up.

    Each such job runs once (coalesced) if its latest missed time is within its grace time; otherwise APScheduler
    reports a misfire, which the listener logs and records. Call it between ``start(paused=True)`` and ``resume()``.
    """
    now = now or datetime.now(UTC)
    overdue = []
    for job in scheduler.get_jobs(jobstore=PERSISTENT_STORE):
        run_time = job.next_run_time
        if run_time is None or run_time > now:
            continue
        missed, last = 0, run_time
        while run_time is not None and run_time <= now and missed < MISSED_COUNT_LIMIT:
            missed, last = missed + 1, run_time
            run_time = job.trigger.get_next_fire_time(run_time, now)
        grace = job.misfire_grace_time
        runs_now = grace is None or now - last <= timedelta(seconds=grace)
        overdue.append(OverdueJob(job.id, missed, last, runs_now))
        if runs_now:
            log.warning(
                "job %s: %d run(s) fell due while no scheduler was running (last at %s); %s",
                job.id,
                missed,
                last.isoformat(),
                "coalesced into one run now" if missed > 1 else "running it now",
            )
        else:
            log.warning(
                "job %s: %d run(s) fell due while no scheduler was running; the last (%s) is more than %ss late "
                "and is skipped",
                job.id,
                missed,
                last.isoformat(),
                grace,
            )
    return overdue


class SchedulerHandle:
    """One process's claim on the scheduler: active while it holds the database's scheduler lock, standby otherwise.

    A background thread tries the lock every ``retry_seconds``; once held it starts an APScheduler
    ``BackgroundScheduler`` (reporting overdue jobs, reconciling, then every ``reconcile_seconds``) and confirms the
    lock every ``heartbeat_seconds``. Losing the lock stops the scheduler and goes back to standby.
    """

    def __init__(
        self,
        db: Database,
        *,
        retry_seconds: float = RETRY_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        reconcile_seconds: float = RECONCILE_SECONDS,
        misfire_grace_time: int = MISFIRE_GRACE_SECONDS,
        max_workers: int = 10,
        secret_key: str | None = None,
        lock: LeaderLock | None = None,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self.db = db
        self.secret_key = secret_key
        self.holder = holder_name()
        self.retry_seconds = retry_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.reconcile_seconds = reconcile_seconds
        self.sweep_seconds = sweep_seconds
        self.misfire_grace_time = misfire_grace_time
        self.max_workers = max_workers
        self._lock = lock or leader_lock(db, self.holder, lease_seconds=lease_seconds)
        self._scheduler: LeaderScheduler | None = None
        self._stopping = threading.Event()
        self._active = threading.Event()
        self._reconcile_mutex = threading.Lock()
        self._wait_for_jobs = True
        self._thread = threading.Thread(target=self._run, name="scheduler-leadership", daemon=True)

    @property
    def active(self) -> bool:
        """Whether this process runs the database's scheduler now."""
        return self._active.is_set()

    @property
    def scheduler(self) -> LeaderScheduler | None:
        """The APScheduler instance while active, else None."""
        return self._scheduler

    def start(self) -> SchedulerHandle:
        with _handles_lock:
            _handles.add(self)
        self._thread.start()
        return self

    def wait_until_active(self, timeout: float | None = None) -> bool:
        return self._active.wait(timeout)

    def reconcile(self) -> Reconciliation | None:
        """Reconcile now, in the calling thread; None when this process is not the active scheduler."""
        scheduler = self._scheduler
        if scheduler is None:
            return None
        with self._reconcile_mutex:
            return reconcile_jobs(scheduler, self.db)

    def request_reconcile(self) -> bool:
        """Ask the active scheduler to reconcile as soon as it can (in its own thread); False when standing by."""
        scheduler = self._scheduler
        if scheduler is None:
            return False
        try:
            scheduler.modify_job(RECONCILE_JOB_ID, jobstore=INTERNAL_STORE, next_run_time=datetime.now(UTC))
        except (JobLookupError, SchedulerNotRunningError):
            return False
        return True

    def submit(self, func: Callable[..., object], *args: object, name: str = "", **kwargs: object) -> bool:
        """Run ``func`` once, now, on the active scheduler's executor (where scheduled jobs run); False when this
        process stands by."""
        scheduler = self._scheduler
        if scheduler is None:
            return False
        try:
            scheduler.add_job(
                func,
                args=args,
                kwargs=kwargs,
                name=name or getattr(func, "__name__", "job"),
                jobstore=INTERNAL_STORE,
                next_run_time=datetime.now(UTC),
                misfire_grace_time=None,
            )
        except SchedulerNotRunningError:
            return False
        return True

    def shutdown(self, wait: bool = True) -> None:
        """Stop scheduling and release the lock; ``wait`` also waits for running jobs to finish."""
        self._wait_for_jobs = wait
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with _handles_lock:
            _handles.discard(self)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._try_acquire():
                self._stopping.wait(self.retry_seconds)
                continue
            try:
                self._activate()
            except Exception:
                log.exception("the scheduler could not start; releasing the scheduler lock")
                self._deactivate(wait=False)
                self._lock.release()
                self._stopping.wait(self.retry_seconds)
                continue
            lost = False
            while not self._stopping.wait(self.heartbeat_seconds):
                if not self._still_holds():
                    log.error("%s lost the scheduler lock: stopping, standing by", self.holder)
                    lost = True
                    break
            self._deactivate(wait=self._wait_for_jobs and not lost)
            self._lock.release()
            if lost:
                # Its connection was cut: let the standbys, which try every retry_seconds, have the lock first
                # (trying again at once, it often won the race against a healthy standby and carried on).
                self._stopping.wait(LOST_BACKOFF_RETRIES * self.retry_seconds)
        log.info("%s: scheduler stopped", self.holder)

    def _try_acquire(self) -> bool:
        try:
            return self._lock.acquire()
        except Exception:
            log.exception("could not try the scheduler lock")
            return False

    def _still_holds(self) -> bool:
        try:
            return self._lock.check()
        except Exception:
            log.exception("could not confirm the scheduler lock")
            return False

    def _activate(self) -> None:
        scheduler = create_scheduler(
            self.db,
            holds_lock=self._lock.holds,
            max_workers=self.max_workers,
            thread_name_prefix=f"scheduler-{self.holder}",
            misfire_grace_time=self.misfire_grace_time,
            secret_key=self.secret_key,
        )
        self._scheduler = scheduler
        scheduler.start(paused=True)
        report_overdue_jobs(scheduler)
        with self._reconcile_mutex:
            reconcile_jobs(scheduler, self.db)
        scheduler.add_job(
            self._reconcile_job,
            "interval",
            seconds=self.reconcile_seconds,
            id=RECONCILE_JOB_ID,
            name="scheduler: reconcile jobs",
            jobstore=INTERNAL_STORE,
            misfire_grace_time=None,
            max_instances=2,
            replace_existing=True,
        )
        scheduler.add_job(
            expire_abandoned_runs,
            "interval",
            args=(self.db,),
            seconds=self.sweep_seconds,
            id=SWEEP_JOB_ID,
            name="syncs: mark abandoned runs failed",
            jobstore=INTERNAL_STORE,
            misfire_grace_time=None,
            max_instances=1,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.resume()
        self._active.set()
        log.info("%s holds the scheduler lock: scheduler active", self.holder)

    def _deactivate(self, *, wait: bool) -> None:
        self._active.clear()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=wait)

    def _reconcile_job(self) -> None:
        self.reconcile()


def start_scheduler(db: Database, settings: Settings | None = None, **options) -> SchedulerHandle:
    """Start this process's claim on the scheduler and return at once (``connector serve`` calls this).

    The process becomes the active scheduler when no other holds the database's scheduler lock, and stands by
    otherwise. ``settings.secret_key`` decrypts destination secrets for scheduled syncs; ``options`` are
    ``SchedulerHandle``'s (intervals, grace time). Call ``.shutdown()`` on the result when the process stops.
    """
    if settings is not None:
        options.setdefault("secret_key", settings.secret_key)
    install_automation()
    return SchedulerHandle(db, **options).start()


def run_scheduler(db: Database, settings: Settings | None = None, *, stop: threading.Event | None = None, **options):
    """Run the scheduler until SIGTERM or SIGINT (or ``stop`` is set), then shut it down cleanly: the blocking
    form behind ``connector scheduler``."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    handle = start_scheduler(db, settings, **options)
    log.info("%s: scheduler process started; active when it holds the scheduler lock", handle.holder)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("%s: stopping the scheduler", handle.holder)
        handle.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def notify_sync_changed(sync_id: int | None = None) -> bool:
    """Tell the scheduler of this process that a sync was created, changed or deleted; call it after the commit.

    When this process runs the active scheduler, it reconciles its jobs at once (in its own thread, so this never
    waits); otherwise this does nothing and returns False: the active scheduler, wherever it runs, picks the change
    up at its next periodic reconcile (every 30 s).
    """
    with _handles_lock:
        handles = list(_handles)
    requested = False
    for handle in handles:
        requested = handle.request_reconcile() or requested
    if requested:
        log.debug("reconcile requested after a change to sync %s", sync_id)
    return requested


def submit_to_scheduler(func: Callable[..., object], *args: object, name: str = "", **kwargs: object) -> bool:
    """Run ``func`` once, now, on the executor of the active scheduler of this process; False when this process
    runs none (the caller runs it elsewhere)."""
    with _handles_lock:
        handles = list(_handles)
    return any(handle.submit(func, *args, name=name, **kwargs) for handle in handles)


class _JobEventRecorder:
    """Logs every job outcome; records a sync's missed or crowded-out tick as a skipped run in its history."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, event) -> None:
        if event.code == EVENT_JOB_EXECUTED:
            # The periodic reconcile logs what it changed; a line every 30 s saying it ran would drown the rest.
            level = logging.DEBUG if event.job_id == RECONCILE_JOB_ID else logging.INFO
            log.log(level, "job %s ran (scheduled for %s)", event.job_id, event.scheduled_run_time.isoformat())
        elif event.code == EVENT_JOB_ERROR:
            # APScheduler's executor logs the traceback; this is the one line to search for.
            log.error(
                "job %s failed (scheduled for %s): %r",
                event.job_id,
                event.scheduled_run_time.isoformat(),
                event.exception,
            )
        elif event.code == EVENT_JOB_MISSED:
            log.warning(
                "job %s missed its run time %s (later than its grace time): skipped until its next run",
                event.job_id,
                event.scheduled_run_time.isoformat(),
            )
            self._record(event.job_id, event.scheduled_run_time, "missed: no scheduler ran it within the grace time")
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            run_time = event.scheduled_run_times[-1]
            log.warning("job %s skipped at %s: earlier runs are still going", event.job_id, run_time.isoformat())
            self._record(event.job_id, run_time, "skipped: earlier scheduled runs of this sync are still going")

    def _record(self, job_id: str, scheduled_at: datetime, reason: str) -> None:
        sync_id = sync_id_of(job_id)
        if sync_id is not None:
            record_missed_run(self.db, sync_id, scheduled_at, reason)


class _DatabaseBinding:
    """Binds the scheduler's database (and secret key) for its jobs while it runs."""

    def __init__(self, db: Database, secret_key: str) -> None:
        self.db = db
        self.secret_key = secret_key

    def __call__(self, event) -> None:
        if event.code == EVENT_SCHEDULER_STARTED:
            bind_database(self.db, self.secret_key)
        else:
            unbind_database(self.db)
