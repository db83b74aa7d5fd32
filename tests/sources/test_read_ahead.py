"""``streams.read_ahead``: what a source run reads while it writes."""

from __future__ import annotations

import threading
import time

import pytest

from connector.streams import read_ahead


def test_items_come_in_order_and_the_producer_stays_at_most_depth_ahead():
    produced: list[int] = []

    def produce():
        for n in range(10):
            produced.append(n)
            yield n

    seen = []
    with read_ahead(produce, depth=2) as items:
        for item in items:
            time.sleep(0.02)  # the producer has all the time it wants to run ahead
            # Consumed: item; waiting: at most 2; being produced (its append done, not yet handed over): 1.
            assert len(produced) <= item + 1 + 2 + 1
            seen.append(item)
    assert seen == list(range(10))


def test_the_producers_error_is_raised_where_its_item_would_have_come():
    def produce():
        yield 1
        raise ValueError("the source went away")

    seen = []
    with pytest.raises(ValueError, match="went away"), read_ahead(produce) as items:
        for item in items:
            seen.append(item)
    assert seen == [1]


def test_leaving_early_stops_the_producer_and_runs_its_cleanup_on_its_thread():
    cleaned: list[str] = []
    started = threading.Event()

    def produce():
        try:
            n = 0
            while True:
                started.set()
                yield n
                n += 1
        finally:
            cleaned.append(threading.current_thread().name)

    before = threading.active_count()
    with pytest.raises(RuntimeError), read_ahead(produce, name="reader") as items:
        for item in items:
            if item == 3:
                raise RuntimeError("the write failed")
    assert started.is_set()
    assert cleaned == ["reader"]
    assert threading.active_count() == before
