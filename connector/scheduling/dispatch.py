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


_current: list[Dispatcher | None] = [None]
_lock = threading.Lock()


def use_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Send this process's scheduled work to ``dispatcher`` (None: run it in-process again)."""
    with _lock:
        _current[0] = dispatcher


def current_dispatcher() -> Dispatcher | None:
    with _lock:
        return _current[0]
