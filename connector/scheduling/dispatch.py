"""Where scheduled work goes: run here (the default), or handed to a dispatcher that enqueues it for workers.

``connector scheduler`` and ``connector serve`` install a dispatcher (``use_dispatcher``) when a broker is
configured; the jobs then only enqueue, and ``connector worker`` processes execute.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Dispatcher(Protocol):
    def run_sync(self, sync_id: int, trigger: str, run_id: int | None = None) -> str: ...

    def refresh_time_relative_segments(self) -> str: ...

    def enqueue(self, job: str, **ids: int) -> str:
        """Send one of the other kinds of work (``JOBS``) with its ids; returns the task id."""
        ...


# The other kinds of work a dispatcher takes (``Dispatcher.enqueue``), with the ids each is sent with.
SOURCE_JOB = "source"  # source_id: the scheduled run of a source's models
SOURCE_RUN_JOB = "source-run"  # run_id: a source model run the API claimed
AUTOMATION_PROCESS_JOB = "automation-process"  # (none): playbook history, due steps, pending deliveries
PLAYBOOK_JOB = "playbook"  # playbook_id, at (epoch s of the tick): a schedule playbook's tick
SEGMENT_ACTION_JOB = "segment-action"  # action_id, at (epoch s): a segment action's daily run
EVALUATION_JOB = "segment-evaluation"  # workspace_id, segment_id: a pending segment's background evaluation
JOBS = (SOURCE_JOB, SOURCE_RUN_JOB, AUTOMATION_PROCESS_JOB, PLAYBOOK_JOB, SEGMENT_ACTION_JOB, EVALUATION_JOB)


_current: list[Dispatcher | None] = [None]
_lock = threading.Lock()


def use_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Send this process's scheduled work to ``dispatcher`` (None: run it in-process again)."""
    with _lock:
        _current[0] = dispatcher


def current_dispatcher() -> Dispatcher | None:
    with _lock:
        return _current[0]
