"""The half of a sync run that talks to the destination and records its answers.

``Delivery`` is the base of the engine's runner: batches are submitted to the run's pool of worker threads (each
request tracked by the destination's rate limiter, each batch under the run's retry policy), answers are collected
as they come, and answered batches are committed in one short transaction from the run's thread (batches answered
together share it: record state, per-record errors, and the counters at most every ``COUNTS_EVERY_S``). Records a
destination asks to retry go into later batches, up to ``MAX_RECORD_TRIES``; a batch whose retries are exhausted
stops the run. At the end the run's status is decided and recorded, with the sync's watermark when the run was
complete.

The runner (``engine._Runner``) sets the state these methods share: the destination plugin, pool, limiter, retry
policy, renderer, write plan, buffers and counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from typing import Any

from connector.destinations import ConfigError, OutboundRecord, RecordResult, TransientError
from connector.models import RunStatus, utcnow
from connector.syncs import changes
from connector.syncs import records as store
from connector.syncs.planner import Change, Planned

log = logging.getLogger(__name__)

LEASE_LOST = "the run lost its lease (another process took it over as abandoned): it stopped sending"
MAX_RECORD_TRIES = 3
# Per-record errors kept per run (the counts stay exact beyond it): a broken mapping must not write millions of rows.
MAX_RUN_ERRORS = 10_000
PENDING_FLUSH = 1000
# How often an answered batch writes the run's counters (progress readable while it runs).
COUNTS_EVERY_S = 1.0


@dataclass
class Batch:
    # "write" | "clear" | "remove"; "clear_old" | "remove_old": the record under an identity the subject left.
    op: str
    items: list[Planned]


OPS = ("write", "clear", "remove", "clear_old", "remove_old")


class Delivery:
    """Sending batches and recording their answers (see the module's docstring)."""

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

    def _submit(self, batch: Batch) -> None:
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
        answered: list[tuple[Batch, list[RecordResult]]] = []
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
                answered.append((batch, results))
        if answered:
            self._record(answered)
        self._check_lease()

    def _drain(self) -> None:
        """Send what is left in the buffers, retry what asked for it, and wait for every answer."""
        for op, buffer in self.buffers.items():
            self.buffers[op] = []
            for start in range(0, len(buffer), self.batch_size):
                self._submit(Batch(op, buffer[start : start + self.batch_size]))
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
                        self._submit(Batch(op, buffer[start : start + self.batch_size]))
                continue
            self._collect(block=True)

    def _record(self, answered: list[tuple[Batch, list[RecordResult]]]) -> None:
        """Commit answered batches (those that came back together): record state, errors and counters, in one
        short transaction."""
        delivered: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        removed: list[int] = []
        for batch, results in answered:
            by_key = {result.key: result for result in results}
            for item in batch.items:
                result = by_key.get(str(item.subject_id)) or RecordResult.retry(
                    str(item.subject_id), "the destination gave no result for this record"
                )
                self._settle(batch.op, item, result, delivered, rejected, removed)
        with self.db.session() as session:
            store.save_delivered(session, self.sync_id, delivered)
            store.save_rejected(session, self.sync_id, rejected)
            store.mark_removed(session, self.sync_id, removed)
            if removed:
                store.forget_gone(session, self.sync_id, self.scope.subject_type, removed)
            self._write_pending(session, counts=time.monotonic() >= self.counts_due)
        if self.progress is not None:
            self._report()

    def _settle(
        self,
        op: str,
        item: Planned,
        result: RecordResult,
        delivered: list[dict[str, Any]],
        rejected: list[dict[str, Any]],
        removed: list[int],
    ) -> None:
        """Count one record's answer and note what to write for it (or queue it again when asked to retry)."""
        if result.status in ("ok", "exists"):
            if op == "write":
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
            elif op in ("clear_old", "remove_old"):
                self.counts.removed += 1  # the subject's own record is the one written under its new identity
            else:
                removed.append(item.subject_id)
                self.counts.removed += 1
        elif result.status == "rejected":
            self.counts.rejected += 1
            reason = result.reason or "refused by the destination"
            if op not in ("clear_old", "remove_old"):
                rejected.append({"subject_id": item.subject_id, "identity": item.identity, "error": reason})
            self._error(item.subject_id, item.identity, "rejected", reason)
        else:
            tries = self.tries.get(item.subject_id, 1) + 1
            if tries > MAX_RECORD_TRIES:
                self._unsent([item], f"the destination asked to retry {MAX_RECORD_TRIES} times: {result.reason}")
            else:
                self.tries[item.subject_id] = tries
                self.retry_buffers[op].append(item)

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

    def _write_pending(self, session, *, counts: bool = True) -> None:
        """Records the run stopped tracking, errors, and (unless ``counts`` is false) the counters so far: an
        answered batch writes them at most every ``COUNTS_EVERY_S``, the end of the run always."""
        if self.pending_forget:
            store.forget(session, self.sync_id, self.pending_forget)
            self.pending_forget = []
        store.add_errors(session, self.run_id, self.pending_errors)
        self.pending_errors = []
        if counts:
            store.save_counts(session, self.run_id, self._live_counts())
            self.counts_due = time.monotonic() + COUNTS_EVERY_S

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
