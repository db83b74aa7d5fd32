"""The limiter: exactly the sandbox's (and HubSpot's) rolling window, shared by threads."""

from __future__ import annotations

import threading

import pytest

from connector.destinations.base import OutboundRecord, WritePlan
from connector.destinations.hubspot import HubSpotDestination
from connector.syncs.ratelimit import RateLimiter, shared_limiter
from tests.syncs.conftest import SANDBOX_TOKEN


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_full_window_goes_at_once_then_requests_are_paced_at_the_budget():
    clock = FakeClock()
    limiter = RateLimiter(5, 10.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(12):
        limiter.acquire()
        starts.append(clock.now)
    assert starts[:5] == [100.0] * 5  # the server's window is empty: all of it may go
    assert starts[5:] == pytest.approx([110.0, 112.0, 114.0, 116.0, 118.0, 120.0, 122.0])


def test_after_an_idle_window_a_burst_is_allowed_again():
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limiter.acquire()
    clock.now += 5.0
    started = clock.now
    for _ in range(3):
        limiter.acquire()
    assert clock.now == started


def test_no_window_of_the_given_length_ever_holds_more_than_the_budget():
    clock = FakeClock()
    limiter = RateLimiter(7, 1.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    starts = []
    for i in range(200):
        if i % 13 == 0:
            clock.now += 0.37  # callers arrive irregularly
        limiter.acquire()
        starts.append(clock.now)
    for i, start in enumerate(starts):
        assert sum(1 for other in starts[i:] if other < start + 1.0) <= 7


def test_callers_that_keep_waiting_get_the_whole_budget():
    clock = FakeClock()
    limiter = RateLimiter(7, 1.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(7 + 700):
        limiter.acquire()
    # The opening burst, then 700 more at exactly 7 a second.
    assert clock.now - 100.0 == pytest.approx(1.0 + 699 / 7)


def test_the_margin_widens_the_window():
    clock = FakeClock()
    limiter = RateLimiter(2, 1.0, margin_s=0.25, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.now == pytest.approx(101.25)


def test_threads_share_one_budget():
    clock_lock = threading.Lock()
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        with clock_lock:
            clock.now += seconds

    limiter = RateLimiter(10, 1.0, margin_s=0.0, clock=clock, sleep=sleep)
    starts: list[float] = []
    starts_lock = threading.Lock()

    def worker():
        for _ in range(10):
            limiter.acquire()
            with starts_lock:
                starts.append(clock.now)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 40
    starts.sort()
    for i, start in enumerate(starts):
        assert sum(1 for other in starts[i:] if other < start + 1.0) <= 10


def test_one_destination_shares_its_limiter_until_its_budget_changes():
    first = shared_limiter(("db", 1), 100, 10.0)
    assert shared_limiter(("db", 1), 100, 10.0) is first
    assert shared_limiter(("db", 2), 100, 10.0) is not first
    assert shared_limiter(("db", 1), 190, 10.0) is not first


def test_a_limited_destination_never_meets_the_sandbox_rolling_limit(sandbox):
    """Four threads writing as fast as the limiter lets them, against the sandbox enforcing the same budget."""
    sandbox.set_rate_limit((12, 1.0))
    destination = HubSpotDestination(
        {"access_token": SANDBOX_TOKEN, "base_url": sandbox.url, "rate_limit_requests": 12, "rate_limit_seconds": 1}
    )
    limiter = RateLimiter(*destination.rate_limit)
    destination.bind_rate_limiter(limiter.acquire)
    plan = WritePlan("contacts", "email")

    def worker(n: int):
        for i in range(8):
            with limiter.tracking():  # as the engine calls a destination
                destination.write(plan, [OutboundRecord(f"{n}-{i}", f"w{n}-{i}@example.com", {})])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    destination.close()
    stats = sandbox.stats()
    assert stats["requests"]["POST /crm/v3/objects/contacts/batch/upsert"] == 32
    assert stats["rate_limited"] == 0
    assert stats["records"]["contacts"] == 32


def test_tracked_requests_count_from_when_they_were_answered():
    clock = FakeClock()
    limiter = RateLimiter(2, 10.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(2):
        with limiter.tracking():
            limiter.acquire()
            clock.now += 3.0  # the answer took three seconds: the server may have counted it that late
    limiter.acquire()
    assert clock.now == pytest.approx(113.0)  # the window runs from the first answer, not the first start


def test_a_request_in_flight_holds_its_slot_until_it_is_answered():
    limiter = RateLimiter(1, 0.2, margin_s=0.0)  # real time: a window of 200 ms (given up on after 1.2 s)
    answered = threading.Event()
    started = threading.Event()

    def slow_call():
        with limiter.tracking():
            limiter.acquire()
            started.set()
            answered.wait(5)

    caller = threading.Thread(target=slow_call)
    caller.start()
    started.wait(5)
    waiter = threading.Thread(target=limiter.acquire)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # the window has passed, but the request is still out there
    answered.set()
    caller.join(5)
    waiter.join(5)
    assert not waiter.is_alive()


def test_untracked_requests_of_other_threads_count_from_when_they_started():
    clock = FakeClock()
    limiter = RateLimiter(1, 10.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    other = threading.Thread(target=limiter.acquire)
    other.start()
    other.join()
    clock.now += 3.0
    limiter.acquire()
    assert clock.now == pytest.approx(110.0)


def test_one_call_may_make_more_requests_than_the_budget():
    clock = FakeClock()
    limiter = RateLimiter(2, 1.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    with limiter.tracking():
        for _ in range(5):  # e.g. preparing several fields: each request is answered before the next
            limiter.acquire()
            clock.now += 0.1
    # Two at once, a third when the first answer's window has passed, then one every half second: the call
    # never waits on its own open request.
    assert clock.now == pytest.approx(102.3)
