"""The retry policy around one destination call."""

from __future__ import annotations

import pytest

from connector.destinations import ConfigError, TransientError
from connector.syncs.retry import RetryPolicy


class Flaky:
    """Fails with the given errors, one per call, then answers ``"done"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def policy(**overrides) -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []
    settings = {"attempts": 8, "deadline_s": 300.0, "initial_wait_s": 1.0, "max_wait_s": 60.0, "sleep": waits.append}
    settings.update(overrides)
    return RetryPolicy(**settings), waits


def test_transient_failures_are_retried_until_the_call_succeeds():
    retry, waits = policy()
    call = Flaky(TransientError("502"), TransientError("timeout"))
    assert retry.call(call, "plan", ["batch"]) == "done"
    assert call.calls == 3
    assert len(waits) == 2


def test_the_wait_the_destination_asks_for_is_honoured():
    retry, waits = policy()
    call = Flaky(TransientError("429", retry_after=10.0))
    retry.call(call)
    assert 10.0 <= waits[0] <= 11.0  # plus at most 10% jitter


def test_waits_are_capped():
    retry, waits = policy(max_wait_s=2.0, initial_wait_s=5.0)
    retry.call(Flaky(TransientError("429", retry_after=30.0), TransientError("503"), TransientError("503")))
    assert all(wait <= 2.0 for wait in waits)


def test_backoff_grows_exponentially_with_jitter_until_the_cap():
    retry, waits = policy(initial_wait_s=1.0, max_wait_s=8.0)
    retry.call(Flaky(*[TransientError("503") for _ in range(6)]))
    # Full jitter: each wait is random in [0, min(cap, 2^n)].
    for n, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(8.0, 2.0**n)


def test_giving_up_raises_the_last_transient_error():
    retry, waits = policy(attempts=3)
    call = Flaky(*[TransientError(f"503 #{i}") for i in range(5)])
    with pytest.raises(TransientError, match="503 #2"):
        retry.call(call)
    assert call.calls == 3
    assert len(waits) == 2


def test_a_configuration_error_is_not_retried():
    retry, waits = policy()
    call = Flaky(ConfigError("bad token"))
    with pytest.raises(ConfigError):
        retry.call(call)
    assert call.calls == 1
    assert waits == []


def test_unexpected_errors_are_not_retried():
    retry, waits = policy()
    call = Flaky(ValueError("bug"))
    with pytest.raises(ValueError):
        retry.call(call)
    assert call.calls == 1
