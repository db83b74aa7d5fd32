"""The rolling window shared through the database: limiters of separate processes (here: separate engines) on one
destination together stay under its budget."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, select

from connector.db import Database
from connector.models import RateLimitSlot
from connector.syncs.ratelimit import RateLimiter
from connector.syncs.sharedlimit import DatabaseRateLimiter, limiter_for, use_shared_limits

REQUESTS, SECONDS = 5, 1.0


def test_two_processes_sharing_a_budget_never_exceed_it_in_any_window(database, database_url):
    other = Database(database_url)  # a second engine: another process's connections
    try:
        limiters = [DatabaseRateLimiter(db, "destination:1", REQUESTS, SECONDS) for db in (database, other)]
        taken: list[float] = []
        lock = threading.Lock()

        def caller(limiter: DatabaseRateLimiter) -> None:
            for _ in range(3):
                with limiter.tracking():
                    limiter.acquire()
                    with lock:
                        taken.append(time.time())

        threads = [threading.Thread(target=caller, args=(limiters[i % 2],)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.dispose()
    taken.sort()
    assert len(taken) == 18
    # The sixth request after any other starts a whole window later (less the time to note it down).
    assert min(taken[i + REQUESTS] - taken[i] for i in range(len(taken) - REQUESTS)) >= SECONDS - 0.1
    # And the budget is used: the first five go at once.
    assert taken[REQUESTS - 1] - taken[0] < SECONDS / 2


def test_budgets_of_different_destinations_are_separate(database):
    first = DatabaseRateLimiter(database, "destination:1", 2, 10.0)
    second = DatabaseRateLimiter(database, "destination:2", 2, 10.0)
    started = time.monotonic()
    for limiter in (first, first, second, second):
        limiter.acquire()
    assert time.monotonic() - started < 5.0


def test_the_engine_shares_through_the_database_only_where_switched_on(database):
    assert isinstance(limiter_for(database, ("url://x", 1, "t"), 10, 1.0), RateLimiter)
    use_shared_limits(True)
    try:
        limiter = limiter_for(database, ("postgresql://x", 1, "t"), 10, 1.0)
        assert isinstance(limiter, DatabaseRateLimiter) and limiter.key == "1:t"
        # A budget named by the destination (one HubSpot app in one portal) is the same whatever destination asks.
        portal = limiter_for(database, ("postgresql://x", "budget", "hubspot:127.0.0.1:8010:ab12"), 10, 1.0)
        assert portal.key == "budget:hubspot:127.0.0.1:8010:ab12"
    finally:
        use_shared_limits(False)


def test_an_answered_slot_is_closed_at_its_answer_by_the_next_take_or_a_flush(database):
    now = [1000.0]
    limiter = DatabaseRateLimiter(database, "destination:1", 10, 10.0, clock=lambda: now[0])

    def slots() -> list[tuple[float, bool]]:
        with database.session() as session:
            return [
                tuple(r)
                for r in session.execute(select(RateLimitSlot.taken_at, RateLimitSlot.open).order_by(RateLimitSlot.id))
            ]

    with limiter.tracking():
        limiter.acquire()
        now[0] = 1002.0  # answered two seconds later
    assert slots() == [(1000.0, True)]  # no transaction of its own: still counted as in flight ("now")
    now[0] = 1005.0
    with limiter.tracking():
        limiter.acquire()  # the next take closes it, from the time of its answer
        assert slots() == [(1002.0, False), (1005.0, True)]
        now[0] = 1006.0
    limiter.flush()  # the end of a run
    assert slots() == [(1002.0, False), (1006.0, False)]
    limiter.flush()  # nothing left: no statement


def test_slots_left_in_the_future_by_a_clock_stepped_back_count_for_one_window_at_most(database):
    # A process whose clock ran an hour ahead filled the window; then its clock (or this one) was set right.
    ahead = DatabaseRateLimiter(database, "destination:1", 2, 0.5, clock=lambda: time.time() + 3600)
    for _ in range(2):
        ahead.acquire()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if sum(slept) > 5:
            raise AssertionError("still waiting for slots an hour in the future")
        time.sleep(seconds)

    now = DatabaseRateLimiter(database, "destination:1", 2, 0.5, sleep=sleep)
    now.acquire()
    assert 0 < sum(slept) < 2  # about one window (0.55 s), not an hour


def test_a_take_that_waited_for_the_budget_leaves_the_slots_taken_meanwhile_where_they_are(database, database_url):
    # Another process holds the budget and takes a slot while this one waits for it. This take must count that
    # slot at its own time: read before the wait, this take's clock would be older than the slot, and bringing the
    # slot "back from the future" to it would let the slot leave the window early (more requests than the budget).
    other = Database(database_url)
    waiting = DatabaseRateLimiter(database, "destination:1", 5, 2.0)
    waiting._ensure_key()
    try:
        with other.engine.begin() as connection:
            if other.dialect == "postgresql":
                connection.exec_driver_sql("UPDATE rate_limit_keys SET key = key WHERE key = 'destination:1'")
            taker = threading.Thread(target=waiting.acquire)
            taker.start()
            time.sleep(0.4)  # the taker is waiting for the budget
            taken_at = time.time()
            connection.execute(
                RateLimitSlot.__table__.insert().values(key="destination:1", taken_at=taken_at, open=False)
            )
        taker.join(timeout=30)
        assert not taker.is_alive()
    finally:
        other.dispose()
    with database.session() as session:
        times = sorted(session.scalars(select(RateLimitSlot.taken_at)))
    assert times[0] == taken_at  # the other process's slot, where it was taken
    assert times[1] >= taken_at  # this take's, after it


def test_threads_of_one_process_ask_the_database_one_at_a_time(database):
    # Twelve threads want a slot of a budget of two a window: they queue at the process's gate, and the one at the
    # gate looks at the window about twice a slot (its slots still in flight, then until the oldest leaves),
    # instead of every waiting thread polling the database in turn.
    limiter = DatabaseRateLimiter(database, "destination:1", 2, 0.25)
    limiter.acquire()  # the budget's row exists
    transactions = []

    def count(connection) -> None:
        transactions.append(1)

    def caller() -> None:
        with limiter.tracking():
            limiter.acquire()

    event.listen(database.engine, "begin", count)
    try:
        threads = [threading.Thread(target=caller) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(database.engine, "begin", count)
    assert len(transactions) <= 3 * len(threads)  # one a thread, polling each: five times that, and more


def test_a_slot_answered_in_one_run_is_closed_by_the_next_take_of_another(database):
    # Two runs in one process share a budget of one request; the first run's request was answered and that run
    # asks no more. The second run's take closes that slot: it waits a window, not until the slot is let go as
    # stuck (six windows).
    first = DatabaseRateLimiter(database, "destination:1", 1, 0.3)
    second = DatabaseRateLimiter(database, "destination:1", 1, 0.3)
    with first.tracking():
        first.acquire()
    started = time.monotonic()
    with second.tracking():
        second.acquire()
    assert time.monotonic() - started < 1.0
