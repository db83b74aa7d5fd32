"""Running a sync: plan, send in batches, record what the destination acknowledged, keep the run's history.

``run_sync(db, sync_id)`` is the entry point for the CLI, the API and the scheduler. One run:

1. claims the sync's lease (``locks.claim_run``): a second run of the same sync records ``skipped`` and returns;
2. streams the plan (``planner.diff``): only new, changed and leaving records, never the unchanged ones;
3. sends batches of ``max_batch_size`` from a pool of worker threads, each request taking a slot of the
   destination's rate limiter, each batch call wrapped in the one retry policy (``retry.RetryPolicy``);
4. commits answered batches in one short transaction from this thread (the only writer; batches answered
   together share one): record state, per-record errors and, at most every second, the run's counters. A crash
   loses nothing: at most the batches in flight are sent again;
5. finishes the run: ``succeeded``; ``partial`` when records were rejected, invalid or left unsent; ``failed`` when
   the destination refused its configuration, an unexpected error stopped the run, or nothing could be delivered.

A batch whose retries are exhausted stops the run (the destination is down: the next run converges); records a
destination asks to ``retry`` go into a later batch of the same run, up to ``MAX_RECORD_TRIES`` times. The
destination is prepared (fields and options created) only when there is something to send, each of its requests
retried alone by the same policy, and once per plan and destination schema version across processes (recorded in
``sync_preparations``), so an unchanged run makes no request at all and a run with one change spends none on setup.
Multi-select options of deleted or renamed segments are dropped once no record holds them (``preparations``).

A subject whose identity changed (a new email) is moved in place where the destination can (``updates_identity``:
updated by its remote id); elsewhere, in mirror mode, the record under the old identity is cleared or removed.

A dry run plans the same way and sends nothing, writes no record state, and returns counts and sample payloads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from connector.db import Database
from connector.destinations import (
    ConfigError,
    WritePlan,
)
from connector.destinations import (
    Destination as DestinationPlugin,
)
from connector.models import Destination, RecordState, RunStatus, Segment, Sync, SyncMode
from connector.security import SecretBox
from connector.syncs import changes, preparations
from connector.syncs.associations import associate_companies
from connector.syncs.connections import build_destination
from connector.syncs.definitions import segment_ids_of
from connector.syncs.delivery import OPS, PENDING_FLUSH, Batch, Delivery
from connector.syncs.lists import is_list_sync, sync_lists
from connector.syncs.locks import HEARTBEAT_SECONDS, LEASE_SECONDS, LeaseHeartbeat, claim_run, skip_run
from connector.syncs.mapping import Renderer, parse_mappings
from connector.syncs.planner import (
    PAGE_SIZE,
    Change,
    PlanCounts,
    Planned,
    Scope,
    diff,
    duplicate_identities,
    leaving,
    leaving_page,
    pages,
    subject_page,
)
from connector.syncs.retry import RetryPolicy
from connector.syncs.sharedlimit import limiter_for

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 4
SCHEDULE_TRIGGER = "schedule"
SAMPLE_SIZE = 10


@dataclass
class RunCounts:
    planned: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    rejected: int = 0
    invalid: int = 0
    unchanged: int = 0
    unsent: int = 0
    existing: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class RunOutcome:
    """What a run did. For a dry run, added/changed/removed are what it would send."""

    run_id: int
    sync_id: int
    status: RunStatus
    trigger: str
    dry_run: bool = False
    counts: RunCounts = field(default_factory=RunCounts)
    first_error: str | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0


ProgressCallback = Callable[[RunCounts], None]


def run_sync(
    db: Database,
    sync_id: int,
    trigger: str = "manual",
    *,
    dry_run: bool = False,
    secret_key: str,
    retry: RetryPolicy | None = None,
    workers: int = DEFAULT_WORKERS,
    lease_seconds: float = LEASE_SECONDS,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    progress: ProgressCallback | None = None,
    page_size: int = PAGE_SIZE,
) -> RunOutcome:
    """Run a sync now, in this thread, and return what happened: ``skipped`` when another run holds the lease, or
    when the scheduler (``trigger="schedule"``) fires for a sync disabled meanwhile.

    ``secret_key`` decrypts the destination's secrets (the caller's ``Settings.secret_key``: settings are read
    once, by the entry point).
    ``lease_seconds``: how old a running run's heartbeat must be to take it over as abandoned;
    ``heartbeat_seconds``: how often this run renews its own (keep it well under the lease).
    Raises ``LookupError`` when there is no such sync; every other failure is recorded as a failed run.
    """
    with db.session() as session:
        sync = session.get(Sync, sync_id)
        if sync is None:
            raise LookupError(f"no sync {sync_id}")
        if trigger == SCHEDULE_TRIGGER and not sync.enabled and not dry_run:
            run = skip_run(session, sync_id, trigger, "skipped: the sync is disabled")
        else:
            run = claim_run(session, sync_id, trigger, dry_run=dry_run, lease_seconds=lease_seconds)
        run_id, status, first_error = run.id, run.status, run.first_error
    if status == RunStatus.SKIPPED:
        log.info("sync %s: run %s skipped (%s)", sync_id, run_id, first_error)
        return RunOutcome(run_id, sync_id, status, trigger, first_error=first_error)
    return execute_run(
        db,
        run_id,
        sync_id,
        trigger,
        dry_run=dry_run,
        secret_key=secret_key,
        retry=retry,
        workers=workers,
        heartbeat_seconds=heartbeat_seconds,
        progress=progress,
        page_size=page_size,
    )


def execute_run(
    db: Database,
    run_id: int,
    sync_id: int,
    trigger: str = "manual",
    *,
    dry_run: bool = False,
    secret_key: str,
    retry: RetryPolicy | None = None,
    workers: int = DEFAULT_WORKERS,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    progress: ProgressCallback | None = None,
    page_size: int = PAGE_SIZE,
) -> RunOutcome:
    """Carry out a run already claimed with ``locks.claim_run`` (the API claims in the request, runs in a thread)."""
    runner = _Runner(
        db,
        run_id,
        sync_id,
        trigger,
        dry_run=dry_run,
        box=SecretBox(secret_key),
        retry=retry or RetryPolicy(),
        workers=workers,
        heartbeat_seconds=heartbeat_seconds,
        progress=progress,
        page_size=page_size,
    )
    return runner.run()


class _Runner(Delivery):
    """One run: load the sync, read and plan what changed, and hand batches to ``Delivery``."""

    def __init__(
        self,
        db: Database,
        run_id: int,
        sync_id: int,
        trigger: str,
        *,
        dry_run: bool,
        box: SecretBox,
        retry: RetryPolicy,
        workers: int,
        heartbeat_seconds: float,
        progress: ProgressCallback | None,
        page_size: int,
    ) -> None:
        self.db, self.run_id, self.sync_id, self.trigger = db, run_id, sync_id, trigger
        self.dry_run, self.box, self.retry = dry_run, box, retry
        self.workers, self.progress, self.page_size = max(1, workers), progress, page_size
        self.heartbeat_seconds = heartbeat_seconds
        self.counts = RunCounts()
        self.plan_counts = PlanCounts()
        self.first_error: str | None = None
        self.failed = False
        self.stopping = False
        self.samples: list[dict[str, Any]] = []
        self.prepared = False
        self.in_flight: dict[Future, Batch] = {}
        self.buffers: dict[str, list[Planned]] = {op: [] for op in OPS}
        self.retry_buffers: dict[str, list[Planned]] = {op: [] for op in OPS}
        self.tries: dict[int, int] = {}
        self.pending_errors: list[dict[str, Any]] = []
        self.errors_kept = 0
        self.pending_forget: list[int] = []
        self.counts_due = 0.0  # monotonic time from which an answered batch writes the counters again
        self.taken = 0
        self.plugin: DestinationPlugin | None = None
        self.limiter = None
        self.pool: ThreadPoolExecutor | None = None
        # Reading what changed (``changes``): where the run starts, what it found invalid, and the synced
        # records it did not read (unchanged, counted without reading them).
        self.increment: changes.Increment | None = None
        self.invalid_ids: list[int] = []
        self.synced_unread = 0

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        started = time.monotonic()
        beat = LeaseHeartbeat(self.db, self.run_id, self.heartbeat_seconds)
        beat.start()
        self.beat = beat
        try:
            self._load()
            if self.dry_run:  # nothing is prepared, but what preparing would refuse is reported now
                self.preparer.inspect(self.write_plan)
            log.info(
                "sync %s: run %s started (%s%s)",
                self.sync_id,
                self.run_id,
                self.trigger,
                ", dry run" if self.dry_run else "",
            )
            self._plan_and_send()
            if not self.dry_run and not self.stopping and is_list_sync(self.db, self.sync_id):
                sync_lists(self.db, self.run_id, self.sync_id, self.plugin, self.object_type, self._request)
            if not self.dry_run and not self.stopping:
                associate_companies(self.db, self.run_id, self.sync_id, self.plugin, self._request)
        except Exception as exc:
            self._fail(exc)
        finally:
            beat.done.set()
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            if self.limiter is not None:
                try:
                    self.limiter.flush()  # the answered requests' slots count from their answers, not as open
                except Exception as exc:
                    log.warning("sync %s: closing the rate limiter's slots failed: %s", self.sync_id, exc)
            if self.plugin is not None:
                try:
                    self.plugin.close()
                except Exception as exc:
                    log.warning("sync %s: closing the destination failed: %s", self.sync_id, exc)
        status = self._status()
        if self.counts.rejected:
            self._forget_prepared()  # refusals may come from a field or option changed by hand: check them again
        self._finish(status)
        outcome = RunOutcome(
            self.run_id,
            self.sync_id,
            status,
            self.trigger,
            dry_run=self.dry_run,
            counts=self.counts,
            first_error=self.first_error,
            samples=self.samples,
            elapsed_s=time.monotonic() - started,
        )
        log.info(
            "sync %s: run %s %s in %.1fs: %s%s",
            self.sync_id,
            self.run_id,
            status.value,
            outcome.elapsed_s,
            self.counts.as_dict(),
            f" (first error: {self.first_error})" if self.first_error else "",
        )
        return outcome

    def _load(self) -> None:
        with self.db.session() as session:
            sync = session.get(Sync, self.sync_id)
            destination = session.get(Destination, sync.destination_id)
            self.scope = Scope(sync.workspace_id, sync.subject_type, tuple(segment_ids_of(session, sync.id)))
            self.fingerprint = changes.fingerprint(sync, self.scope)
            self.mode = sync.mode
            self.mirror_action = sync.mirror_action or "clear"
            self.object_type = sync.destination_object
            mappings = parse_mappings(sync.mappings)
            identity_field = (sync.identity or {}).get("destination")
            self.segment_names = list(
                session.scalars(
                    select(Segment.name)
                    .where(Segment.workspace_id == sync.workspace_id, Segment.subject_type == sync.subject_type)
                    .order_by(Segment.name)
                )
            )
            filter_names = list(session.scalars(select(Segment.name).where(Segment.id.in_(self.scope.segment_ids))))
            self.plugin = build_destination(destination, self.box)
            # The budget the requests count against: the remote account's when the plugin names it (destinations
            # holding one HubSpot app's token share one), else this destination's own.
            budget = self.plugin.budget_key
            destination_key = (
                (self.db.url, "budget", budget) if budget else (self.db.url, destination.id, destination.created_at)
            )
            self.preparer = preparations.Preparer(
                self.db,
                self.sync_id,
                destination.id,
                preparations.schema_version(destination, self.plugin),
                self.plugin,
                self.retry,
                self._answered,
            )
        self.renderer = Renderer(mappings, identity_field, self.plugin, filter_segments=filter_names)
        self.batch_size = max(1, int(self.plugin.max_batch_size))
        self.max_in_flight = self.workers * 2
        self.write_plan = WritePlan(
            object_type=self.object_type,
            identity_field=identity_field,
            fields=tuple(self.renderer.field_specs(self.segment_names)),
            mode={SyncMode.UPDATE: "update", SyncMode.CREATE: "create"}.get(self.mode, "upsert"),
        )
        if self.mode == SyncMode.CREATE and not getattr(self.plugin, "supports_create_only", False):
            raise ConfigError(f"{self.plugin.type} destinations cannot tell existing records: no create-only mode")
        limit = self.plugin.rate_limit
        self.limiter = None
        if limit and not self.dry_run:
            self.limiter = limiter_for(self.db, destination_key, int(limit[0]), float(limit[1]))
            self.plugin.bind_rate_limiter(self.limiter.acquire)

    def _read(self, fetch, *args):
        def page(after: int, limit: int):
            with self.db.session() as session:
                return fetch(session, *args, after, limit)

        return page

    def _read_ids(self, fetch, *args):
        def page(after: int, limit: int, chunk):
            with self.db.session() as session:
                return self._tally(fetch(session, *args, after, limit, subject_ids=chunk))

        return page

    def _read_subjects(self):
        def page(_after: int, _limit: int, chunk):
            with self.db.session() as session:
                return self._tally(changes.subject_rows(session, self.scope, self.sync_id, self.renderer, chunk))

        return page

    def _tally(self, rows: list) -> list:
        self.synced_unread -= sum(1 for row in rows if row.state == RecordState.SYNCED)
        return rows

    def _plan_and_send(self) -> None:
        with self.db.session() as session:
            computed = [name for _label, name in self.renderer.computed_columns]
            self.increment = changes.plan_increment(session, self.sync_id, self.scope, self.fingerprint, computed)
            ids = self.increment.subject_ids
            duplicates = duplicate_identities(session, self.scope, self.renderer, ids) if ids != [] else set()
            if ids is not None:
                self.synced_unread = changes.synced_count(session, self.sync_id)
        if ids is not None:
            log.info("sync %s: run %s reads the %d subjects that changed", self.sync_id, self.run_id, len(ids))
            subjects = changes.pages_of(ids, self.page_size, self._read_subjects())
        else:
            subjects = pages(
                self._read(subject_page, self.scope, self.sync_id, self.renderer),
                key=lambda r: r.id,
                limit=self.page_size,
            )
        if not self.dry_run:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"sync-{self.sync_id}")
        for item in diff(subjects, self.renderer, duplicates, self.plan_counts):
            self._take(item)
            if self.stopping:
                break
        if not self.stopping:
            if ids is not None:
                records = changes.pages_of(ids, self.page_size, self._read_ids(leaving_page, self.scope, self.sync_id))
            else:
                records = pages(
                    self._read(leaving_page, self.scope, self.sync_id),
                    key=lambda r: r.subject_id,
                    limit=self.page_size,
                )
            for item in leaving(records, self.plan_counts):
                self._take(item)
                if self.stopping:
                    break
        if not self.dry_run:
            self._drain()
        self._flush_pending()
        if not self.dry_run and not self.stopping and not self.counts.unsent:
            self.preparer.retire_options(self.object_type)

    def _take(self, item: Planned) -> None:
        self.taken += 1
        if self.progress is not None and self.taken % self.page_size == 0:
            self._report()
        if item.change == Change.INVALID:
            self.counts.invalid += 1
            self.invalid_ids.append(item.subject_id)
            self._error(item.subject_id, item.identity, "invalid", item.reason or "invalid")
            return
        if item.change == Change.LEAVING:
            if self.mode == SyncMode.MIRROR and item.acknowledged:
                self._queue("remove" if self.mirror_action == "remove" else "clear", item)
            elif not self.dry_run:
                self.pending_forget.append(item.subject_id)
                if len(self.pending_forget) >= PENDING_FLUSH:
                    self._flush_pending()
            return
        if item.previous_identity and not self.plugin.updates_identity and self.mode == SyncMode.MIRROR:
            # The destination cannot move a record to a new identity: the one under the old identity leaves.
            old = Planned(Change.LEAVING, item.subject_id, identity=item.previous_identity, acknowledged=True)
            self._queue("remove_old" if self.mirror_action == "remove" else "clear_old", old)
        self._queue("write", item)

    def _queue(self, op: str, item: Planned) -> None:
        self.counts.planned += 1
        if self.dry_run:
            self._count_planned(op, item)
            return
        buffer = self.buffers[op]
        buffer.append(item)
        if len(buffer) >= self.batch_size:
            self.buffers[op] = []
            self._submit(Batch(op, buffer))

    def _count_planned(self, op: str, item: Planned) -> None:
        if op == "write":
            if item.change == Change.CHANGED:
                self.counts.changed += 1
            else:
                self.counts.added += 1
        else:
            self.counts.removed += 1
        if len(self.samples) < SAMPLE_SIZE:
            properties = item.properties if op == "write" else (self.renderer.cleared() if op == "clear" else {})
            change = item.change.value if op == "write" else ("cleared" if op == "clear" else "removed")
            self.samples.append(
                {"subject_id": item.subject_id, "change": change, "identity": item.identity, "properties": properties}
            )
