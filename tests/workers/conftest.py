"""Real ``connector worker`` processes on the local RabbitMQ, each test on queues of its own.

RabbitMQ (``CONNECTOR_TEST_BROKER_URL``, default ``amqp://guest:guest@127.0.0.1:5672//``) is required under
``CI=true`` and skipped otherwise when it is down, like PostgreSQL. Every test gets a unique queue prefix, so test
runs of other people on the same broker never take each other's tasks; its queues are deleted at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kombu import Connection
from sqlalchemy import select, text

from connector.config import Settings
from connector.models import RunStatus, SyncRun
from connector.operations.settings import OperationsSettings
from connector.workers.app import worker_queues
from connector.workers.dispatch import CeleryDispatcher
from tests.conftest import IN_CI
from tests.syncs.conftest import _sandbox_server, sandbox  # noqa: F401  (the HubSpot sandbox fixtures)

BROKER_URL = os.environ.get("CONNECTOR_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("CONNECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LEASE_SECONDS = 4.0
# A worker process starts in about two seconds; a loaded CI machine may take many times that.
READY_TIMEOUT_S = 120.0
LOG_TAIL = 300
HEARTBEAT_SECONDS = 0.5


def _reachable(url: str, name: str) -> str:
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        message = f"{name} is not reachable: {type(exc).__name__}: {exc}"
        if IN_CI:
            pytest.fail(message + f" (CI=true: {name} is required)", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The local RabbitMQ."""
    return _reachable(BROKER_URL, "RabbitMQ")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis, as a broker."""
    return _reachable(REDIS_URL, "Redis")


@pytest.fixture
def worker_settings(settings: Settings, broker_url: str) -> Settings:
    """The test's settings with the broker, a queue prefix of its own and a short run lease."""
    operations = OperationsSettings(
        broker_url=broker_url,
        queue_prefix=f"connector-test-{uuid.uuid4().hex[:12]}.",
        destination_concurrency=2,
        run_lease_seconds=LEASE_SECONDS,
        run_heartbeat_seconds=HEARTBEAT_SECONDS,
    )
    return replace(settings, operations=operations)


def worker_env(settings: Settings) -> dict[str, str]:
    ops = settings.operations
    return {
        **os.environ,
        "CONNECTOR_DATABASE_URL": settings.database_url,
        "CONNECTOR_SECRET_KEY": settings.secret_key,
        "CONNECTOR_BROKER_URL": ops.broker_url,
        "CONNECTOR_QUEUE_PREFIX": ops.queue_prefix,
        "CONNECTOR_DESTINATION_CONCURRENCY": str(ops.destination_concurrency),
        "CONNECTOR_RUN_LEASE_SECONDS": str(ops.run_lease_seconds),
        "CONNECTOR_RUN_HEARTBEAT_SECONDS": str(ops.run_heartbeat_seconds),
    }


@pytest.fixture
def start_worker(worker_settings: Settings, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``connector worker`` processes, each returned once it listens; all are stopped (killed if they must be)
    and their queues deleted."""
    processes: list[subprocess.Popen] = []

    started: list[Settings] = []

    logs: list[Path] = []

    def start(concurrency: int = 4, settings: Settings | None = None) -> subprocess.Popen:
        settings = settings or worker_settings
        started.append(settings)
        path = tmp_path / f"worker-{len(processes)}.log"
        with path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "worker", "--concurrency", str(concurrency), "--no-alerts"],
                env=worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        logs.append(path)
        wait_until_ready(process, path)
        return process

    yield start
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGUSR1)  # Celery logs every thread's stack: what a stuck worker was doing
    if running:
        time.sleep(0.5)
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # Shown by pytest only when the test failed: what each worker was doing.
    for path in logs:
        lines = path.read_text(errors="replace").splitlines()
        print(f"--- {path.name} (last {min(len(lines), LOG_TAIL)} of {len(lines)} lines)")
        print("\n".join(lines[-LOG_TAIL:]))
    for settings in {s.operations.broker_url: s for s in started}.values():
        with Connection(settings.operations.broker_url) as connection:
            channel = connection.channel()
            for queue in worker_queues(settings):
                try:
                    channel.queue_delete(settings.operations.queue_prefix + queue)
                except Exception:
                    channel = connection.channel()


def wait_until_ready(process: subprocess.Popen, log: Path, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until the worker consumes from its queues (Celery logs "ready."), so tests start from listening workers."""
    deadline = time.monotonic() + timeout
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise AssertionError(f"the worker exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker was not ready after {timeout} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


@pytest.fixture
def dispatcher(database, worker_settings) -> CeleryDispatcher:
    """What the scheduler and the API use to enqueue, pointed at the test's queues."""
    return CeleryDispatcher(database, worker_settings)


def database_activity(database) -> str:
    """What PostgreSQL's other sessions are doing and waiting for (a stuck run's locks), for a failure message."""
    if database.dialect != "postgresql":
        return ""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS in_transaction, "
                "left(query, 160) AS query FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
        ).all()
    return "".join(f"\n  {tuple(row)}" for row in rows) or "\n  (no session of the database is busy)"


def wait_for_runs(database, sync_ids, *, timeout: float, statuses=(RunStatus.SUCCEEDED,)) -> dict[int, SyncRun]:
    """Wait until each sync has a run in one of ``statuses``; its latest such run by sync id."""
    deadline = time.monotonic() + timeout
    wanted = set(sync_ids)
    while True:
        with database.session() as session:
            runs = session.scalars(
                select(SyncRun).where(SyncRun.sync_id.in_(wanted), SyncRun.status.in_(statuses)).order_by(SyncRun.id)
            ).all()
        found = {run.sync_id: run for run in runs}
        if set(found) == wanted:
            return found
        if time.monotonic() > deadline:
            with database.session() as session:
                seen = session.execute(
                    select(SyncRun.sync_id, SyncRun.id, SyncRun.status, SyncRun.first_error).where(
                        SyncRun.sync_id.in_(wanted)
                    )
                ).all()
            raise AssertionError(
                f"no finished run after {timeout} s for syncs {sorted(wanted - set(found))}; runs: {seen}"
                + database_activity(database)
            )
        time.sleep(0.2)
