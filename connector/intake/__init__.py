"""Ingest, then evaluate: one transaction writes what arrived and brings the live segments in step with it.

Every entry point that takes data in (the ingestion API, CSV imports from the API and the command line, and the
sources to come) goes through here, so the rule is written once: the ingestion service writes and returns its
``ChangeSet``; ``apply_changes`` updates the segments those changes can move, in the same transaction; a
transaction that lost a deadlock or a serialization conflict to a concurrent one is run again (the batch is in
memory), ``ATTEMPTS`` times in all, and then refused with ``ConflictError`` (as is a write that raced past a
uniqueness check), so the client sends it again.

This package sits above ``ingest`` and ``segments`` (which do not know each other) and below the entry points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.db import Database
from connector.errors import ConflictError
from connector.ingest.batches import BatchResult
from connector.ingest.imports import ImportReport
from connector.ingest.subjects import ConcurrentWriteError
from connector.segments.incremental import apply_changes
from connector.statistics import after_write

ATTEMPTS = 3
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
CONCURRENT = "Another request changed the same records at the same time; send the batch again."

T = TypeVar("T")
Evaluate = Callable[[ChangeSet], None]


def retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def in_one_transaction(db: Database, workspace_id: int, work: Callable[[Session, Evaluate], T], attempts: int) -> T:
    """``work(session, evaluate)`` in one transaction, where ``evaluate(changes)`` updates the segments; run again
    up to ``attempts`` times in all when it loses a deadlock; ``ConflictError`` when it cannot be carried out."""
    for attempt in range(1, attempts + 1):
        try:
            with db.session() as session:
                done = work(session, lambda changes: apply_changes(session, workspace_id, changes))
            after_write(db)  # statistics that fell behind the data are taken again (off the request's path)
            return done
        except DBAPIError as exc:
            if retryable(exc) and attempt < attempts:
                continue
            if retryable(exc) or isinstance(exc, IntegrityError):
                raise ConflictError(CONCURRENT) from exc
            raise
        except ConcurrentWriteError as exc:
            raise ConflictError(CONCURRENT) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def ingest_batch(
    db: Database,
    workspace_id: int,
    service: Callable[..., BatchResult],
    items: list[dict[str, Any]],
    *,
    partial: bool,
) -> BatchResult:
    """One ingestion service (``identify``, ``track``, …) on a batch, and the segments it moves, in one transaction.

    Raises ``BatchRejectedError`` (nothing written) when items are invalid and ``partial`` is false.
    """

    def work(session: Session, evaluate: Evaluate) -> BatchResult:
        result = service(session, workspace_id, items, partial=partial)
        evaluate(result.changes)
        return result

    return in_one_transaction(db, workspace_id, work, ATTEMPTS)


def ingest_file(
    db: Database, workspace_id: int, importer: Callable[..., ImportReport], stream: IO[bytes], **options: Any
) -> ImportReport:
    """A CSV import (``import_users``, ``import_accounts``), the segments moving chunk by chunk, in one
    transaction; tried once (the stream is read as it goes)."""
    return in_one_transaction(
        db,
        workspace_id,
        lambda session, evaluate: importer(session, workspace_id, stream, on_chunk=evaluate, **options),
        attempts=1,
    )
