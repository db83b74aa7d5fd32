"""Producing the next items of a stream while the current ones are consumed."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.1


@contextmanager
def read_ahead(
    produce: Callable[[], Iterable[T]], *, depth: int = 1, name: str = "read-ahead"
) -> Iterator[Iterator[T]]:
    """The items of ``produce()``, produced on a thread of their own up to ``depth`` items ahead of the consumer.

    For a stream whose production waits on one database and whose consumption on another (a source read while the
    previous chunk is written): the two waits overlap. At most ``depth`` items wait between the two, plus the one
    being produced and the one being consumed. An exception of the producer is raised to the consumer where the
    item would have come. Leaving the block early (the consumer failed or stopped) stops the producer after the
    item it is producing and closes its iterator (its ``finally`` blocks run on its thread).
    """
    slots: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        iterator = None
        try:
            iterator = iter(produce())
            for item in iterator:
                if not put((True, item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))
        else:
            put((False, None))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def items() -> Iterator[T]:
        while True:
            produced, value = slots.get()
            if produced:
                yield value  # type: ignore[misc]
            elif value is None:
                return
            else:
                raise value  # type: ignore[misc]

    try:
        yield items()
    finally:
        stop.set()
        thread.join()
