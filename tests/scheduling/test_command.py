"""``connector scheduler``: its own process, one active per database, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from connector.models import SchedulerLease

ROOT = Path(__file__).resolve().parents[2]


class SchedulerProcess:
    """``connector scheduler`` in a child process, its log collected line by line."""

    def __init__(self, database_url: str) -> None:
        env = {**os.environ, "CONNECTOR_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "scheduler", "--retry-seconds", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log:
                return True
            if self.process.poll() is not None:
                self._reader.join(2)
                return needle in self.log
            time.sleep(0.05)
        return False

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code


@pytest.fixture
def processes():
    started: list[SchedulerProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


def lock_is_free(database) -> bool:
    if database.dialect == "postgresql":
        from connector.scheduling.leadership import ADVISORY_LOCK_KEY

        with database.engine.connect() as connection:
            free = connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            if free:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            return bool(free)
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(SchedulerLease)) == 0


def test_scheduler_command_runs_until_sigterm_and_releases_the_lock(database, database_url, processes):
    scheduler = SchedulerProcess(database_url)
    processes.append(scheduler)
    assert scheduler.wait_for("scheduler active"), scheduler.log
    assert not lock_is_free(database)

    assert scheduler.stop(signal.SIGTERM) == 0, scheduler.log

    assert "scheduler stopped" in scheduler.log
    assert lock_is_free(database)


def test_second_scheduler_process_stands_by_and_takes_over_when_the_first_is_killed(database, database_url, processes):
    if database.dialect != "postgresql":
        pytest.skip("a killed holder's lease expires after 30 s; the lease takeover is tested in test_leadership")
    first = SchedulerProcess(database_url)
    processes.append(first)
    assert first.wait_for("scheduler active"), first.log
    second = SchedulerProcess(database_url)
    processes.append(second)
    assert second.wait_for("scheduler process started"), second.log
    time.sleep(1.0)
    assert "scheduler active" not in second.log

    first.process.kill()  # SIGKILL: no clean-up, the server ends its session and the lock with it
    first.process.wait(10)

    assert second.wait_for("scheduler active"), second.log
    assert second.stop(signal.SIGINT) == 0, second.log
