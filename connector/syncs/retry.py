"""The one retry policy of the sync engine: around the destination call for one batch, never a transaction.

Only ``TransientError`` is retried (429, 5xx, timeouts, dropped connections, as the destination classified them);
``ConfigError`` and anything unexpected go straight to the caller. The wait is what the destination asked for
(``retry_after``, e.g. HubSpot's 429 window) when it said, else exponential backoff with full jitter; both capped by
``max_wait_s``. A call gives up after ``attempts`` tries or once ``deadline_s`` has passed since the first, and
then raises the last ``TransientError``: the batch stays unsent and the next run sends it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from connector.destinations import TransientError
from connector.operations.metrics import count_retry

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    deadline_s: float = 300.0
    initial_wait_s: float = 1.0
    max_wait_s: float = 60.0
    # Injectable so tests run in milliseconds; tenacity calls it with the seconds to wait.
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)``, repeated on ``TransientError`` as the policy says."""
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline_s),
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            # A little jitter, so workers told to wait the same time do not all come back at once.
            return min(max(float(asked), 0.0) * random.uniform(1.0, 1.1), self.max_wait_s)
        return wait_random_exponential(multiplier=self.initial_wait_s, max=self.max_wait_s)(state)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("destination call failed (attempt %d), retrying in %.2fs: %s", state.attempt_number, wait, error)
    count_retry(error)
