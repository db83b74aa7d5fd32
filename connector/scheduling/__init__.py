"""The scheduler: APScheduler 3 with its job store in the service's database, one active scheduler per database.

Where it runs
    ``connector serve`` starts it inside the web process (the single-machine default); ``connector scheduler``
    runs it as its own process (stops cleanly on SIGTERM or SIGINT). Any number of processes may start one:
    exactly one is *active*, the others stand by and take over when it stops or dies.

One active scheduler per database
    PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated connection while
    active; standbys try again every 5 s, and the server frees the lock the moment the holder's connection ends,
    so a dead holder is replaced within about 5 s. SQLite and other databases: a lease row in ``scheduler_leases``,
    renewed every 5 s and expiring 30 s after the last renewal; a dead holder is replaced once its lease expires.
    Before every scheduling pass the active scheduler checks that it still holds the lock, so a process that lost
    it starts nothing more.

Jobs (persisted in ``apscheduler_jobs``, so they survive restarts)
    ``sync:<id>``
        one per enabled sync with an interval (every N minutes) or cron schedule (a crontab expression read in
        the sync's time zone, weekday numbers as crontab's: 0 or 7 is Sunday). Across daylight saving, a time the
        clocks skip runs an hour later that night and a time they repeat runs once (``connector.scheduling.
        triggers``). Manual and disabled syncs have no job. Each run calls the sync engine's
        ``run_sync(db, sync_id, trigger="schedule")``, whose exclusive lock records a *skipped* run when the
        previous run is still going.
    ``segments:refresh-time-relative``
        the sliding-window re-evaluation: a full refresh of the dynamic segments whose conditions move with the
        passing of time alone (``logged in within the last 7 days``, ``signed up more than 2 hours ago``), in every
        workspace. Its cadence is the segment engine's ``refresh_cadence()``, set by the smallest relative time
        unit any such segment uses: minutes -> every minute, hours -> every 5 minutes, days -> every 15 minutes;
        no time-relative segment -> no job. The cadence is read again at every reconcile, so the job is added,
        rescheduled or removed as segments are saved and deleted.

Keeping jobs in step
    ``reconcile_jobs`` compares the job store with the syncs table and the refresh cadence: it runs when a
    scheduler becomes active, every 30 s, and at once when the API calls ``notify_sync_changed`` in the process
    that runs the active scheduler. ``next_run_time(db, sync_id)`` reads the job store and works from any process.

Late and skipped runs
    Runs missed while no scheduler was running are coalesced into one run, made when the scheduler comes back if
    the latest missed time is less than the grace time (1 hour) ago; the number of missed runs is logged. A run
    later than the grace time is a misfire: logged, and recorded in the sync's run history as a skipped run.
    Job outcomes (ran, failed, missed) are logged under ``connector.scheduling``.
"""

from connector.schedules import ScheduleError, trigger_for
from connector.scheduling.reconciler import Reconciliation, reconcile_jobs
from connector.scheduling.scheduler import (
    SchedulerHandle,
    create_scheduler,
    notify_sync_changed,
    run_scheduler,
    start_scheduler,
)
from connector.scheduling.store import next_run_time, next_run_times

__all__ = [
    "Reconciliation",
    "ScheduleError",
    "SchedulerHandle",
    "create_scheduler",
    "next_run_time",
    "next_run_times",
    "notify_sync_changed",
    "reconcile_jobs",
    "run_scheduler",
    "start_scheduler",
    "trigger_for",
]
