"""Running a sync: plan, send in batches, record what the destination acknowledged, keep the run's history.

``run_sync(db, sync_id)`` is the entry point for the CLI, the API and the scheduler. One run:

1. claims the sync's lease (``locks.claim_run``): a second run of the same sync records ``skipped`` and returns;
2. streams the plan (``planner.diff``): only new, changed and leaving records, never the unchanged ones;
3. sends batches of ``max_batch_size`` from a pool of worker threads, each request taking a slot of the
   destination's rate limiter, each batch call wrapped in the one retry policy (``retry.RetryPolicy``);
4. commits every answered batch in one short transaction from this thread (the only writer): record state,
   per-record errors and the run's counters. A crash loses nothing: at most the batches in flight are sent again;
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
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from connector.db import Database
from connector.destinations import (
    ConfigError,
    OutboundRecord,
    RecordResult,
    TransientError,
    WritePlan,
)
from connector.destinations import (
    Destination as DestinationPlugin,
)
from connector.models import Destination, RecordState, RunStatus, Segment, Sync, SyncMode, utcnow
from connector.security import SecretBox
from connector.syncs import changes, preparations
from connector.syncs import records as store
from connector.syncs.associations import associate_companies
from connector.syncs.connections import build_destination
from connector.syncs.definitions import segment_ids_of
from connector.syncs.lists import is_list_sync, sync_lists
from connector.syncs.locks import HEARTBEAT_SECONDS, LEASE_SECONDS, claim_run, heartbeat, skip_run
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
LEASE_LOST = "the run lost its lease (another process took it over as abandoned): it stopped sending"
MAX_RECORD_TRIES = 3
# Per-record errors kept per run (the counts stay exact beyond it): a broken mapping must not write millions of rows.
MAX_RUN_ERRORS = 10_000
SAMPLE_SIZE = 10
PENDING_FLUSH = 1000


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


@dataclass
class _Batch:
    # "write" | "clear" | "remove"; "clear_old" | "remove_old": the record under an identity the subject left.
    op: str
    items: list[Planned]


OPS = ("write", "clear", "remove", "clear_old", "remove_old")


class _Heartbeat(threading.Thread):
    """Renews the run's lease while it runs; sets ``lost`` when another process took the run over."""

    def __init__(self, db: Database, run_id: int, interval: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(name=f"sync-run-{run_id}-heartbeat", daemon=True)
        self.db, self.run_id, self.interval = db, run_id, interval
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                with self.db.session() as session:
                    alive = heartbeat(session, self.run_id)
            except Exception as exc:  # the database may be back by the next beat; the lease has slack for that
                log.warning("run %s: heartbeat failed: %s", self.run_id, exc)
                continue
            if not alive:
                self.lost.set()
                return


class _Runner:
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
        self.in_flight: dict[Future, _Batch] = {}
        self.buffers: dict[str, list[Planned]] = {op: [] for op in OPS}
        self.retry_buffers: dict[str, list[Planned]] = {op: [] for op in OPS}
        self.tries: dict[int, int] = {}
        self.pending_errors: list[dict[str, Any]] = []
        self.errors_kept = 0
        self.pending_forget: list[int] = []
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
        beat = _Heartbeat(self.db, self.run_id, self.heartbeat_seconds)
        beat.start()
        self.beat = beat
        try:
            self._load()
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
            destination_key = (self.db.url, destination.id, destination.created_at)
            self.plugin = build_destination(destination, self.box)
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
        def page(after: int):
            with self.db.session() as session:
                return fetch(session, *args, after, self.page_size)

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
            self._submit(_Batch(op, buffer))

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

    # -- sending ------------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Make sure the destination has the fields (and options) the plan writes (``preparations.Preparer``)."""
        if not self.prepared:
            self.preparer.prepare(self.write_plan)
            self.prepared = True

    def _forget_prepared(self) -> None:
        # The destination refused its configuration or a record: the next run prepares it again.
        if getattr(self, "preparer", None) is not None:
            self.preparer.forget()

    def _check_lease(self) -> None:
        if self.beat.lost.is_set() and not self.stopping:
            self._stop(LEASE_LOST, fatal=True)

    def _submit(self, batch: _Batch) -> None:
        self._check_lease()
        if self.stopping:
            self._unsent(batch.items, self.first_error or "the run stopped")
            return
        try:
            self._prepare()
        except Exception:
            self._unsent(batch.items, "the destination could not be prepared")
            raise
        while len(self.in_flight) >= self.max_in_flight:
            self._collect(block=True)
        if self.stopping:
            self._unsent(batch.items, self.first_error or "the run stopped")
            return
        if batch.op in ("clear", "clear_old"):
            cleared = self.renderer.cleared()
            outbound = [OutboundRecord(str(i.subject_id), i.identity or "", cleared) for i in batch.items]
        elif batch.op in ("remove", "remove_old"):
            outbound = [OutboundRecord(str(i.subject_id), i.identity or "", {}) for i in batch.items]
        else:
            outbound = [
                OutboundRecord(
                    str(i.subject_id), i.identity or "", i.properties or {}, i.previous_identity, i.remote_id
                )
                for i in batch.items
            ]
        future = self.pool.submit(self._send, batch.op, outbound)
        self.in_flight[future] = batch
        self._collect(block=False)

    def _send(self, op: str, outbound: list[OutboundRecord]) -> list[RecordResult]:
        """In a worker thread: one batch, retried on transient failures."""
        call = self.plugin.remove if op in ("remove", "remove_old") else self.plugin.write
        return self.retry.call(self._answered(call), self.write_plan, outbound)

    def _request(self, call: Callable[..., Any], *args: Any) -> Any:
        """One request of the list sync, under the run's retry policy and rate limiter."""
        return self.retry.call(self._answered(call), *args)

    def _answered(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call``, tracked by the rate limiter (each attempt): its requests count until they are answered, so the
        destination's window never starts before they surely arrived."""
        limiter = self.limiter
        if limiter is None:
            return call

        def attempt(*args: Any) -> Any:
            with limiter.tracking():
                return call(*args)

        return attempt

    def _collect(self, block: bool) -> None:
        if not self.in_flight:
            return
        done, _ = wait(list(self.in_flight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self.in_flight.pop(future)
            try:
                results = future.result()
            except TransientError as exc:
                self._unsent(batch.items, f"retries exhausted: {exc}")
                self._stop(f"retries exhausted: {exc}", fatal=False)
            except ConfigError as exc:
                self._forget_prepared()
                self._unsent(batch.items, str(exc))
                self._stop(str(exc), fatal=True)
            except Exception as exc:
                log.exception("sync %s: a batch failed unexpectedly", self.sync_id)
                self._unsent(batch.items, f"{type(exc).__name__}: {exc}")
                self._stop(f"{type(exc).__name__}: {exc}", fatal=True)
            else:
                self._record(batch, results)
        self._check_lease()

    def _drain(self) -> None:
        """Send what is left in the buffers, retry what asked for it, and wait for every answer."""
        for op, buffer in self.buffers.items():
            self.buffers[op] = []
            for start in range(0, len(buffer), self.batch_size):
                self._submit(_Batch(op, buffer[start : start + self.batch_size]))
        while self.in_flight or any(self.retry_buffers.values()):
            if self.stopping:
                for op, buffer in self.retry_buffers.items():
                    self.retry_buffers[op] = []
                    self._unsent(buffer, self.first_error or "the run stopped")
                for future in list(self.in_flight):
                    if future.cancel():
                        self._unsent(self.in_flight.pop(future).items, self.first_error or "the run stopped")
            elif not self.in_flight or any(len(b) >= self.batch_size for b in self.retry_buffers.values()):
                for op, buffer in self.retry_buffers.items():
                    self.retry_buffers[op] = []
                    for start in range(0, len(buffer), self.batch_size):
                        self._submit(_Batch(op, buffer[start : start + self.batch_size]))
                continue
            self._collect(block=True)

    def _record(self, batch: _Batch, results: list[RecordResult]) -> None:
        """Commit one answered batch: record state, errors and counters, in one short transaction."""
        by_key = {result.key: result for result in results}
        delivered: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        removed: list[int] = []
        for item in batch.items:
            result = by_key.get(str(item.subject_id)) or RecordResult.retry(
                str(item.subject_id), "the destination gave no result for this record"
            )
            if result.status in ("ok", "exists"):
                if batch.op == "write":
                    delivered.append(
                        {
                            "subject_id": item.subject_id,
                            "identity": item.identity,
                            "payload_hash": item.payload_hash,
                            "payload": item.properties,
                            "remote_id": result.remote_id,
                        }
                    )
                    if result.status == "exists":
                        self.counts.existing += 1
                    elif item.change == Change.CHANGED:
                        self.counts.changed += 1
                    else:
                        self.counts.added += 1
                elif batch.op in ("clear_old", "remove_old"):
                    self.counts.removed += 1  # the subject's own record is the one written under its new identity
                else:
                    removed.append(item.subject_id)
                    self.counts.removed += 1
            elif result.status == "rejected":
                self.counts.rejected += 1
                reason = result.reason or "refused by the destination"
                if batch.op not in ("clear_old", "remove_old"):
                    rejected.append({"subject_id": item.subject_id, "identity": item.identity, "error": reason})
                self._error(item.subject_id, item.identity, "rejected", reason)
            else:
                tries = self.tries.get(item.subject_id, 1) + 1
                if tries > MAX_RECORD_TRIES:
                    self._unsent([item], f"the destination asked to retry {MAX_RECORD_TRIES} times: {result.reason}")
                else:
                    self.tries[item.subject_id] = tries
                    self.retry_buffers[batch.op].append(item)
        with self.db.session() as session:
            store.save_delivered(session, self.sync_id, delivered)
            store.save_rejected(session, self.sync_id, rejected)
            store.mark_removed(session, self.sync_id, removed)
            if removed:
                store.forget_gone(session, self.sync_id, self.scope.subject_type, removed)
            self._write_pending(session)
        if self.progress is not None:
            self._report()

    def _unsent(self, items: list[Planned], reason: str) -> None:
        self.counts.unsent += len(items)
        for item in items:
            self._error(item.subject_id, item.identity, "unsent", reason)

    def _stop(self, reason: str, *, fatal: bool) -> None:
        if self.first_error is None:
            self.first_error = reason
        self.failed = self.failed or fatal
        if not self.stopping:
            self.stopping = True
            for op, buffer in self.buffers.items():
                self.buffers[op] = []
                self._unsent(buffer, reason)

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, ConfigError):
            self._forget_prepared()
        if isinstance(exc, ConfigError | TransientError):
            reason = str(exc)
        else:
            log.exception("sync %s: run %s failed", self.sync_id, self.run_id)
            reason = f"{type(exc).__name__}: {exc}"
        self._stop(reason, fatal=True)
        # Batches already sent are still answered: record them, so nothing that landed is sent twice.
        try:
            while self.in_flight:
                self._collect(block=True)
            for op, buffer in self.retry_buffers.items():
                self.retry_buffers[op] = []
                self._unsent(buffer, reason)
        except Exception:
            log.exception("sync %s: recording the last answers failed", self.sync_id)

    # -- bookkeeping --------------------------------------------------------------------------------------------

    def _error(self, subject_id: int | None, identity: str | None, kind: str, reason: str) -> None:
        if self.errors_kept >= MAX_RUN_ERRORS:
            return
        self.errors_kept += 1
        self.pending_errors.append(
            {
                "subject_id": subject_id,
                "identity": (identity or None) and identity[:500],
                "kind": kind,
                "reason": reason,
            }
        )
        if len(self.pending_errors) >= PENDING_FLUSH:
            self._flush_pending()

    def _live_counts(self) -> dict[str, int]:
        self.counts.unchanged = self.plan_counts.unchanged + self.synced_unread
        return self.counts.as_dict()

    def _write_pending(self, session) -> None:
        if self.pending_forget:
            store.forget(session, self.sync_id, self.pending_forget)
            self.pending_forget = []
        store.add_errors(session, self.run_id, self.pending_errors)
        self.pending_errors = []
        store.save_counts(session, self.run_id, self._live_counts())

    def _flush_pending(self) -> None:
        with self.db.session() as session:
            self._write_pending(session)

    def _report(self) -> None:
        self.counts.unchanged = self.plan_counts.unchanged + self.synced_unread
        try:
            self.progress(self.counts)
        except Exception:  # a broken progress display must not break the run
            log.exception("sync %s: progress callback failed", self.sync_id)

    def _status(self) -> RunStatus:
        c = self.counts
        if self.failed:
            return RunStatus.FAILED
        if c.unsent:
            return RunStatus.PARTIAL if (c.added + c.changed + c.removed + c.rejected) else RunStatus.FAILED
        if not self.dry_run and (c.rejected or c.invalid):
            return RunStatus.PARTIAL
        return RunStatus.SUCCEEDED

    def _finish(self, status: RunStatus) -> None:
        try:
            with self.db.session() as session:
                self._write_pending(session)
                store.save_counts(
                    session,
                    self.run_id,
                    self._live_counts(),
                    status=status,
                    finished_at=utcnow(),
                    first_error=self.first_error,
                )
                if self.increment is not None and not (self.dry_run or self.stopping or self.counts.unsent):
                    # Complete: the next run reads only what changed after this one's start.
                    changes.save_watermark(
                        session, self.sync_id, self.fingerprint, self.increment.mark, self.invalid_ids
                    )
                    changes.prune_tombstones(session, self.scope.workspace_id)
        except Exception:
            # The run stays "running" until its lease expires; the next run takes over and converges.
            log.exception("sync %s: recording the end of run %s failed", self.sync_id, self.run_id)
