"""A tiny job for scheduler tests: it records that it ran, in which thread, at what (possibly travelled) time.

Module-level and referenced by name (``tests.scheduling.recorder:record``), like the real jobs, so it goes
through the persistent job store's pickling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

RECORD_REF = "tests.scheduling.recorder:record"
FAIL_REF = "tests.scheduling.recorder:fail"


@dataclass(frozen=True)
class Run:
    label: str
    thread: str
    at: datetime


_runs: list[Run] = []
_lock = threading.Lock()


def record(label: str) -> None:
    with _lock:
        _runs.append(Run(label, threading.current_thread().name, datetime.now(UTC)))


def runs(label: str | None = None) -> list[Run]:
    with _lock:
        return [run for run in _runs if label is None or run.label == label]


def clear() -> None:
    with _lock:
        _runs.clear()


def fail(label: str) -> None:
    record(label)
    raise RuntimeError(f"{label} failed on purpose")
