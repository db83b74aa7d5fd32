"""Request budgets of destinations, shared by every thread that calls one.

HubSpot counts requests in a rolling window ("at most 190 in any 10 seconds"). A classic token bucket of that size
(refill 19/s, capacity 190) would let through 190 at once and then 19 a second, i.e. up to 380 in the first ten
seconds: a rolling window refuses half of that. The limiter here keeps the server's rule exactly, as a sliding log
(a request may start when fewer than ``requests`` slots were taken in the last ``seconds``), which alone makes it
safe. Within that rule:

* it starts full: after an idle spell the first ``requests`` go at once, as the server allows;
* then it paces: one request every ``seconds / requests``, so a long run holds the ceiling rate evenly instead of
  repeating the opening burst every window (same average, no stampede of 190 requests every ten seconds). Budget
  left unused while no caller was waiting is not made up: the callers, not the limit, were the bottleneck then.

The server counts a request when it arrives, somewhere between the moment we let it go and the moment its answer
came back; on a busy machine that gap varies by more than any fixed margin. So a caller can wrap its calls in
``tracking()``: the slots taken inside count as "now" while the call is in flight and, once it is answered, from
the moment of the answer. The window then never starts before the server's, and a request the limiter lets go
cannot arrive inside a window the server still counts. Slots taken outside ``tracking()`` count from when they
were taken, plus ``margin_s``. (A tracked slot still open after ``STUCK_WINDOWS`` windows is let go: a caller
that stalls for that long has timed out.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEFAULT_MARGIN_S = 0.01
STUCK_WINDOWS = 6


class RateLimiter:
    """At most ``requests`` slots in any window of ``seconds`` (+ ``margin_s``); ``acquire`` blocks until one is
    free. Thread-safe. ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        requests: int,
        seconds: float,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or seconds <= 0:
            raise ValueError("a rate limit needs at least one request per positive number of seconds")
        self.requests = requests
        self.seconds = seconds
        self.window = seconds + margin_s
        self.spacing = self.window / requests
        self._clock = clock
        self._sleep = sleep
        # Each slot is [time, open]: an open slot's call is in flight (it counts as now); tracking() closes it.
        self._slots: deque[list] = deque()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stuck = STUCK_WINDOWS * self.window
        self._last: float | None = None  # when the latest slot was taken
        self._burst = 0  # slots that may still go without pacing
        self._due = 0.0  # when the next paced slot is due
        self.waited_s = 0.0  # total time callers spent blocked, for metrics

    @property
    def limit(self) -> tuple[int, float]:
        return (self.requests, self.seconds)

    def acquire(self) -> None:
        """Block until a request may start, and take a slot for it."""
        while True:
            with self._lock:
                now = self._clock()
                horizon = now - self.window
                slots = self._slots
                tracking = getattr(self._local, "open", None)
                if tracking:
                    # A thread makes one request at a time: asking again means its last one was answered.
                    self._close(tracking, now)
                # Slots leave from the head only: one answered late (or still open) holds back the ones behind it,
                # which is conservative (a slot is never freed early).
                while slots and (slots[0][0] <= horizon if not slots[0][1] else slots[0][0] <= now - self._stuck):
                    slots.popleft()
                if self._last is None or now - self._last >= self.window + self.spacing:
                    self._burst = self.requests  # idle for a whole window: the server's window is empty too
                    self._due = now
                if len(slots) >= self.requests:
                    head_time, head_open = slots[0]
                    # An open slot frees when its call is answered: look again soon.
                    wait = self.spacing if head_open else head_time - horizon
                elif self._burst <= 0 and now < self._due:
                    wait = self._due - now
                else:
                    if self._burst > 0:
                        self._burst -= 1
                        self._due = now
                    else:
                        # Stay on the grid when this caller is a little late (a sleeper wakes up late on a busy
                        # machine): that lost time is made up; a caller later than a whole step starts a new grid.
                        on_grid = now - self._due < self.spacing
                        self._due = (self._due if on_grid else now) + self.spacing
                    self._last = now
                    slot = [now, tracking is not None]
                    slots.append(slot)
                    if tracking is not None:
                        tracking.append(slot)
                    return
            self.waited_s += wait
            self._sleep(wait)

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Requests started inside this block (in this thread) are counted until they are answered: wrap one
        call to the destination in it."""
        self._local.open = opened = []
        try:
            yield
        finally:
            self._local.open = None
            if opened:
                with self._lock:
                    self._close(opened, self._clock())

    def flush(self) -> None:
        """Nothing to write: an answered request's slot is closed at once, in memory (see ``sharedlimit``)."""

    @staticmethod
    def _close(opened: list[list], now: float) -> None:
        for slot in opened:
            slot[0] = max(slot[0], now)
            slot[1] = False
        opened.clear()


_shared: dict[object, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: object, requests: int, seconds: float) -> RateLimiter:
    """The process-wide limiter of one destination (by ``key``), so syncs writing to the same account share its
    budget; a new one when the budget changed."""
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None or limiter.limit != (requests, seconds):
            limiter = _shared[key] = RateLimiter(requests, seconds)
        return limiter
