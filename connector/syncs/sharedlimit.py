"""A destination's request budget shared by every process that calls it: the rolling window kept in the database.

``ratelimit.RateLimiter`` keeps HubSpot's rule ("at most 190 requests in any 10 seconds") for the threads of one
process. When syncs run on several worker processes (``connector worker``), each would keep its own window and
together they would send twice the budget. ``DatabaseRateLimiter`` keeps the same rule in the database every
worker shares: each request inserts a slot in ``rate_limit_slots``, after locking the budget's row in
``rate_limit_keys`` (a row lock on PostgreSQL; SQLite's write lock), and may go only while fewer than ``requests``
slots are in the window. As in-process, a slot taken inside ``tracking()`` counts as "now" while its request is in
flight and from the moment of the answer once answered, so a window never starts before the server's.

It costs two short transactions per request (take, then close): a few hundred requests a second on PostgreSQL.
Clocks: slots carry the wall-clock time of the process that took them, so machines sharing a budget need
synchronised clocks (NTP); the margin covers small skews.

``limiter_for(db, key, requests, seconds)`` is what the sync engine asks for, with the key of the budget (the
destination's ``budget_key`` when it names one, a HubSpot app's in its portal, else the destination itself): the
database limiter once ``use_shared_limits(True)`` was called in this process (worker processes do), the in-process
one otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from connector.db import Database
from connector.models import RateLimitKey, RateLimitSlot
from connector.syncs.ratelimit import STUCK_WINDOWS, RateLimiter, shared_limiter

DEFAULT_MARGIN_S = 0.05
# Shortest and longest sleep between two looks at a full window.
MIN_WAIT_S = 0.005
MAX_WAIT_S = 1.0

_shared = {"enabled": False}


def use_shared_limits(enabled: bool = True) -> None:
    """Make the sync engine in this process count requests in the database, shared with every other process."""
    _shared["enabled"] = enabled


def shared_limits_enabled() -> bool:
    return _shared["enabled"]


def limiter_for(db: Database, key: object, requests: int, seconds: float) -> RateLimiter | DatabaseRateLimiter:
    """The limiter of one budget (``key`` names it: a remote account's, or one destination's): shared across
    processes through the database when ``use_shared_limits`` is on, else shared by this process's threads."""
    if shared_limits_enabled():
        return DatabaseRateLimiter(db, _key_text(key), requests, seconds)
    return shared_limiter(key, requests, seconds)


def _key_text(key: object) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    # The database URL is the same for every process that shares this table: leave it out of the key.
    return ":".join(str(p) for p in parts if not (isinstance(p, str) and "://" in p))[:200]


class DatabaseRateLimiter:
    """At most ``requests`` requests in any ``seconds`` (+ ``margin_s``) for every process sharing ``db``."""

    def __init__(
        self,
        db: Database,
        key: str,
        requests: int,
        seconds: float,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests < 1 or seconds <= 0:
            raise ValueError("a rate limit needs at least one request per positive number of seconds")
        self.db, self.key = db, key
        self.requests, self.seconds = requests, seconds
        self.window = seconds + margin_s
        self.spacing = self.window / requests
        self._stuck = STUCK_WINDOWS * self.window
        self._clock, self._sleep = clock, sleep
        self._local = threading.local()
        self._known = False
        self.waited_s = 0.0

    @property
    def limit(self) -> tuple[int, float]:
        return (self.requests, self.seconds)

    def acquire(self) -> None:
        """Block until a request may start, and take a slot for it."""
        tracking = getattr(self._local, "open", None)
        if tracking:
            # One request at a time per thread: asking again means the last one was answered.
            self._close(tracking)
        self._ensure_key()
        while True:
            wait = self._try_take(tracking)
            if wait is None:
                return
            wait = min(max(wait, MIN_WAIT_S), MAX_WAIT_S)
            self.waited_s += wait
            self._sleep(wait)

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Requests started inside this block (in this thread) count until they are answered."""
        self._local.open = opened = []
        try:
            yield
        finally:
            self._local.open = None
            if opened:
                self._close(opened)

    def _ensure_key(self) -> None:
        if self._known:
            return
        try:
            with self.db.session() as session:
                if session.get(RateLimitKey, self.key) is None:
                    session.execute(insert(RateLimitKey).values(key=self.key))
        except IntegrityError:
            pass  # another process made it meanwhile
        self._known = True

    def _try_take(self, tracking: list | None) -> float | None:
        """Take a slot and return None, or return how long to wait before looking again."""
        with self.db.session() as session:
            self._fast_commit(session)
            # Lock the budget's row: takers of one budget queue here, one transaction at a time.
            session.execute(update(RateLimitKey).where(RateLimitKey.key == self.key).values(key=self.key))
            now = self._clock()
            horizon = now - self.window
            in_window = (RateLimitSlot.key == self.key) & or_(
                RateLimitSlot.taken_at > horizon,
                RateLimitSlot.open.is_(True) & (RateLimitSlot.taken_at > now - self._stuck),
            )
            count, oldest_closed = session.execute(
                select(
                    func.count(),
                    func.min(RateLimitSlot.taken_at).filter(RateLimitSlot.open.is_(False)),
                ).where(in_window)
            ).one()
            if count >= self.requests:
                # The oldest closed slot leaves the window first; open slots free when answered: look again soon.
                return (oldest_closed - horizon) if oldest_closed is not None else self.spacing
            slot_id = session.execute(
                insert(RateLimitSlot)
                .values(key=self.key, taken_at=now, open=tracking is not None)
                .returning(RateLimitSlot.id)
            ).scalar_one()
            # Forget slots no window can count any more (cheap: the index is on key, taken_at).
            session.execute(
                delete(RateLimitSlot).where(RateLimitSlot.key == self.key, RateLimitSlot.taken_at < now - self._stuck)
            )
        if tracking is not None:
            tracking.append(slot_id)
        return None

    def _fast_commit(self, session) -> None:
        # The budget's row is locked until commit: a commit that waits for the disk would cap the requests a
        # second. A slot lost in a database crash only lets a few requests go early once.
        if self.db.dialect == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit = off"))

    def _close(self, opened: list[int]) -> None:
        ids, opened[:] = list(opened), []
        with self.db.session() as session:
            self._fast_commit(session)
            # Answered now: the slot counts from now on (the server saw the request at the latest now).
            session.execute(
                update(RateLimitSlot).where(RateLimitSlot.id.in_(ids)).values(taken_at=self._clock(), open=False)
            )
