"""A destination's request budget shared by every process that calls it: the rolling window kept in the database.

``ratelimit.RateLimiter`` keeps HubSpot's rule ("at most 190 requests in any 10 seconds") for the threads of one
process. When syncs run on several worker processes (``connector worker``), each would keep its own window and
together they would send twice the budget. ``DatabaseRateLimiter`` keeps the same rule in the database every
worker shares: each request inserts a slot in ``rate_limit_slots``, after locking the budget's row in
``rate_limit_keys`` (a row lock on PostgreSQL; SQLite's write lock), and may go only while fewer than ``requests``
slots are in the window. As in-process, a slot taken inside ``tracking()`` counts as "now" while its request is in
flight and from the moment of the answer once answered, so a window never starts before the server's.

Within a process, one thread at a time asks the database for a slot of a budget; the others wait at the process's
gate for it (``_LocalBudget``), so a full window costs one poll at a time per process, not one per waiting thread.
An answered request's slot is not closed by a transaction of its own: the answer's time is noted in the process and
written by the next take of the same budget (any thread, any run), or by ``flush()`` when a run ends. Until then the
slot counts as open, i.e. as "now", which only ever holds the window longer. A take is one short transaction; on
PostgreSQL two statements (lock the budget's row; then close, count, take and forget in one), as the count must be
read after the lock is held, in a snapshot of its own.
Clocks: slots carry the wall-clock time of the process that took them, so machines sharing a budget need
synchronised clocks (NTP); the margin covers small skews. A clock stepped back (a virtual machine restored, NTP
stepping) would leave slots in the future, counted until the clock caught up with them: a take that finds slots more
than the margin ahead of its clock moves them to its "now", so they count for one window at most.

``limiter_for(db, key, requests, seconds)`` is what the sync engine asks for, with the key of the budget (the
destination's ``budget_key`` when it names one, a HubSpot app's in its portal, else the destination itself): the
database limiter once ``use_shared_limits(True)`` was called in this process (worker processes do), the in-process
one otherwise.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update
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


class _LocalBudget:
    """What the threads of one process share of one budget: the gate (one of them at a time asks the database:
    while the window is full, the others would only poll it in turn, a transaction each) and the slots answered
    and not yet closed, which whichever thread asks next closes. Shared by every limiter of the budget in this
    process (one per sync run), so a slot answered in one run is closed by the take of another: held back, the
    open slots of runs waiting at the gate would keep the window full for the thread at the gate."""

    def __init__(self) -> None:
        self.gate = threading.Lock()
        self.lock = threading.Lock()
        self.answered: list[tuple[int, float]] = []


# Per database (one ``Database`` is one process's engine; tests open two to stand for two processes) and key.
_local_budgets: weakref.WeakKeyDictionary[Database, dict[str, _LocalBudget]] = weakref.WeakKeyDictionary()
_local_budgets_lock = threading.Lock()


def _local_budget(db: Database, key: str) -> _LocalBudget:
    with _local_budgets_lock:
        return _local_budgets.setdefault(db, {}).setdefault(key, _LocalBudget())


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
        self.margin_s = margin_s
        self.spacing = self.window / requests
        self._stuck = STUCK_WINDOWS * self.window
        self._clock, self._sleep = clock, sleep
        self._local = threading.local()
        self._known = False
        self._budget = _local_budget(db, key)
        self.waited_s = 0.0

    @property
    def limit(self) -> tuple[int, float]:
        return (self.requests, self.seconds)

    def acquire(self) -> None:
        """Block until a request may start, and take a slot for it."""
        tracking = getattr(self._local, "open", None)
        if tracking:
            # One request at a time per thread: asking again means the last one was answered.
            self._answered_now(tracking)
        self._ensure_key()
        asked = time.monotonic()
        # One thread of this process at a time asks the database; the others wait here, not in polls of their own.
        with self._budget.gate:
            self.waited_s += time.monotonic() - asked
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
                self._answered_now(opened)

    def flush(self) -> None:
        """Close the slots of answered requests now (the end of a run: no take of this limiter may follow)."""
        answered = self._take_answered()
        if not answered:
            return
        try:
            with self.db.engine.begin() as connection:
                connection.execute(_CLOSE, [{"slot": slot, "answered_at": at} for slot, at in answered])
        except Exception:
            self._give_back(answered)
            raise

    def _answered_now(self, opened: list[int]) -> None:
        now = self._clock()
        budget = self._budget
        with budget.lock:
            budget.answered.extend((slot, now) for slot in opened)
        opened.clear()

    def _take_answered(self) -> list[tuple[int, float]]:
        budget = self._budget
        with budget.lock:
            answered, budget.answered = budget.answered, []
        return answered

    def _give_back(self, answered: list[tuple[int, float]]) -> None:
        budget = self._budget
        with budget.lock:
            budget.answered[:0] = answered

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
        answered = self._take_answered()
        postgresql = self.db.dialect == "postgresql"
        try:
            with self.db.engine.begin() as connection:
                _lock_budget(connection, self.key, postgresql)
                # The clock is read with the budget locked: every slot already there was taken (or answered)
                # earlier. Read before a wait for the lock, "now" would be older than slots other processes took
                # meanwhile, and bringing those "from the future" back to it would let them leave the window early.
                now = self._clock()
                values = {
                    "key": self.key,
                    "now": now,
                    "horizon": now - self.window,
                    "stuck": now - self._stuck,
                    "ahead": now + self.margin_s,
                    "open": tracking is not None,
                    "requests": self.requests,
                }
                take = _take_postgresql if postgresql else _take
                slot_id, count, oldest_closed = take(connection, values, answered)
        except Exception:
            self._give_back(answered)
            raise
        if slot_id is None:
            # The oldest closed slot leaves the window first; open slots free when answered: look again soon.
            return (oldest_closed - values["horizon"]) if oldest_closed is not None else self.spacing
        if tracking is not None:
            tracking.append(slot_id)
        return None


def _lock_budget(connection, key: str, postgresql: bool) -> None:
    """Hold the budget until commit: its row lock on PostgreSQL, so that the commit does not wait for the disk (a
    slot lost in a database crash only lets a few requests go early once); SQLite's write lock (taken at BEGIN)."""
    if postgresql:
        connection.execute(_LOCK_POSTGRESQL, {"key": key})
    else:
        connection.execute(update(RateLimitKey).where(RateLimitKey.key == key).values(key=key))


def _take_postgresql(connection, values: dict, answered: list[tuple[int, float]]) -> tuple:
    """Close, bring back, count, take and forget in one statement, after the lock."""
    return connection.execute(
        _TAKE_POSTGRESQL,
        {
            **values,
            "closed_ids": "{" + ",".join(str(slot) for slot, _ in answered) + "}",
            "closed_at": "{" + ",".join(repr(at) for _, at in answered) + "}",
        },
    ).one()


def _take(connection, values: dict, answered: list[tuple[int, float]]) -> tuple:
    """The same in separate statements (SQLite: the write lock serialises takers)."""
    if answered:
        connection.execute(_CLOSE, [{"slot": slot, "answered_at": at} for slot, at in answered])
    connection.execute(
        update(RateLimitSlot)
        .where(RateLimitSlot.key == values["key"], RateLimitSlot.taken_at > values["ahead"])
        .values(taken_at=values["now"])
    )
    in_window = (RateLimitSlot.key == values["key"]) & or_(
        RateLimitSlot.taken_at > values["horizon"],
        RateLimitSlot.open.is_(True) & (RateLimitSlot.taken_at > values["stuck"]),
    )
    count, oldest_closed = connection.execute(
        select(func.count(), func.min(RateLimitSlot.taken_at).filter(RateLimitSlot.open.is_(False))).where(in_window)
    ).one()
    if count >= values["requests"]:
        return None, count, oldest_closed
    slot_id = connection.execute(
        insert(RateLimitSlot)
        .values(key=values["key"], taken_at=values["now"], open=values["open"])
        .returning(RateLimitSlot.id)
    ).scalar_one()
    # Forget slots no window can count any more (cheap: the index is on key, taken_at).
    connection.execute(
        delete(RateLimitSlot).where(RateLimitSlot.key == values["key"], RateLimitSlot.taken_at < values["stuck"])
    )
    return slot_id, count, oldest_closed


# Answered now: the slot counts from the answer on (the server saw the request at the latest then).
_CLOSE = (
    update(RateLimitSlot)
    .where(RateLimitSlot.id == bindparam("slot"))
    .values(taken_at=bindparam("answered_at"), open=False)
)
_LOCK_POSTGRESQL = text(
    "WITH locked AS (UPDATE rate_limit_keys SET key = key WHERE key = :key RETURNING key) "
    "SELECT set_config('synchronous_commit', 'off', true) FROM locked"
)
# In one statement, after the lock: close the answered slots, bring slots from the future back to now (a clock
# stepped back), count the window (as it was before this statement: a slot closed here still counts as open, i.e.
# as now), take a slot if there is room, forget slots no window can count any more (cheap: the index is on key,
# taken_at).
_TAKE_POSTGRESQL = text(
    """
    WITH closed AS (
        UPDATE rate_limit_slots SET taken_at = answered.at, open = false
        FROM unnest(CAST(:closed_ids AS bigint[]), CAST(:closed_at AS float8[])) AS answered (id, at)
        WHERE rate_limit_slots.id = answered.id
    ), returned AS (
        UPDATE rate_limit_slots SET taken_at = :now
        WHERE key = :key AND taken_at > :ahead AND id <> ALL (CAST(:closed_ids AS bigint[]))
    ), counted AS (
        SELECT count(*) AS slots, min(taken_at) FILTER (WHERE NOT open) AS oldest_closed
        FROM rate_limit_slots
        WHERE key = :key AND (taken_at > :horizon OR (open AND taken_at > :stuck))
    ), taken AS (
        INSERT INTO rate_limit_slots (key, taken_at, open)
        SELECT :key, :now, :open FROM counted WHERE slots < :requests
        RETURNING id
    ), forgotten AS (
        DELETE FROM rate_limit_slots
        WHERE key = :key AND taken_at < :stuck AND id <> ALL (CAST(:closed_ids AS bigint[]))
    )
    SELECT (SELECT id FROM taken), slots, oldest_closed FROM counted
    """
)
