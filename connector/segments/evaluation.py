"""Evaluating a new or redefined segment after the request that saved it, on an executor.

Saving a dynamic definition (``service.create_segment`` / ``update_segment`` with ``evaluate=False``) marks the
segment ``pending`` and answers at once; the API then has it evaluated in the background
(``scheduling.evaluations``: the active scheduler's executor in this process, else ``submit``, this module's
one-thread pool), in its own transaction: ``running``, then a full refresh of the segment (``refresh_segments``:
membership, history, ``Segments``, and what references it), then ``done`` in the same commit, so its members and
its status never disagree. A failure leaves it ``failed`` with the reason; ``connector segments refresh`` or
``POST .../segments/<id>/refresh`` evaluates it again.

A segment is usable in the conditions of another only once evaluated (``unevaluated_reference_errors``): until then
its membership is not what its definition says. A definition saved again while an evaluation runs is evaluated
again: an evaluation marks ``done`` only if the definition it read is still the saved one (``updated_at``).

Ingestion may evaluate a pending segment for the subjects it touches, as for any segment; the full evaluation takes
the segment's lock (``membership``), so the two never interleave.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.db import Database
from connector.models import Segment, SubjectType
from connector.segments.conditions import AccountSegmentCondition, Node, SegmentCondition
from connector.segments.run import refresh_segments
from connector.segments.trees import walk

log = logging.getLogger(__name__)

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
PROGRESS = {PENDING: 0.0, RUNNING: 0.5, DONE: 1.0, FAILED: 1.0}

# One evaluation at a time per process: each is a full refresh that already uses the database's parallelism.
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_outstanding: set[Future] = set()


def mark_pending(segment: Segment) -> None:
    segment.evaluation = PENDING
    segment.evaluation_error = None


def mark_evaluated(session: Session, workspace_id: int, segment_ids: list[int] | None = None) -> None:
    """After a full refresh in this transaction (of ``segment_ids``, or of every segment of the workspace): those
    not ``done`` are."""
    stmt = update(Segment).where(Segment.workspace_id == workspace_id, Segment.evaluation != DONE)
    if segment_ids is not None:
        stmt = stmt.where(Segment.id.in_(segment_ids))
    values = {"evaluation": DONE, "evaluation_error": None, "updated_at": Segment.updated_at}
    session.execute(stmt.values(**values).execution_options(synchronize_session=False))


def submit(db: Database, workspace_id: int, segment_id: int) -> Future:
    """Evaluate a pending segment on this process's executor."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="segment-evaluation")
        future = _executor.submit(evaluate, db, workspace_id, segment_id)
        _outstanding.add(future)
    future.add_done_callback(_outstanding.discard)
    return future


def wait_idle(timeout: float | None = None) -> bool:
    """Wait until every evaluation submitted so far has ended (a test, or a process about to stop); whether
    they all did within ``timeout``."""
    with _executor_lock:
        pending = set(_outstanding)
    return not wait_for(pending, timeout=timeout).not_done


def evaluate(db: Database, workspace_id: int, segment_id: int) -> str | None:
    """Evaluate one pending segment now; its final status (None when there was nothing to do)."""
    with db.session() as session:
        row = session.execute(
            select(Segment.evaluation, Segment.updated_at).where(
                Segment.id == segment_id, Segment.workspace_id == workspace_id
            )
        ).first()
        if row is None or row.evaluation not in (PENDING, RUNNING):
            return None
        _set_status(session, segment_id, RUNNING)
        saved_at = row.updated_at
    try:
        with db.session() as session:
            refresh_segments(session, workspace_id, [segment_id])
            # Done only if nobody saved another definition meanwhile (then its own evaluation follows).
            if session.scalar(select(Segment.updated_at).where(Segment.id == segment_id)) == saved_at:
                _set_status(session, segment_id, DONE)
    except Exception as exc:
        log.exception("segment %s: evaluation failed", segment_id)
        with db.session() as session:
            _set_status(session, segment_id, FAILED, f"{type(exc).__name__}: {exc}"[:1000])
        return FAILED
    log.info("segment %s: evaluated", segment_id)
    return DONE


def _set_status(session: Session, segment_id: int, status: str, error: str | None = None) -> None:
    # The status is not an edit of the segment: ``updated_at`` stays (it tells definitions apart).
    session.execute(
        update(Segment)
        .where(Segment.id == segment_id)
        .values(evaluation=status, evaluation_error=error, updated_at=Segment.updated_at)
        .execution_options(synchronize_session=False)
    )


def unevaluated_reference_errors(
    session: Session, workspace_id: int, node: Node, subject_type: SubjectType
) -> list[dict[str, str]]:
    """Errors for ``segment`` / ``account_segment`` leaves naming a segment whose evaluation is not done."""
    leaves = [
        (path, leaf)
        for path, leaf, _context in walk(node, subject_type)
        if isinstance(leaf, SegmentCondition | AccountSegmentCondition)
    ]
    if not leaves:
        return []
    ids = {leaf.segment_id for _path, leaf in leaves}
    status = dict(
        session.execute(
            select(Segment.id, Segment.evaluation).where(Segment.workspace_id == workspace_id, Segment.id.in_(ids))
        ).all()
    )
    errors = []
    for path, leaf in leaves:
        state = status.get(leaf.segment_id)
        if state is not None and state != DONE:
            reason = f"segment {leaf.segment_id} is not evaluated yet ({state}): it can be referenced once it is"
            errors.append({"field": f"{path}.segment_id", "reason": reason})
    return errors
