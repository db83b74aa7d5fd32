"""Fixtures for the scheduler tests: syncs to schedule, schedulers that are always stopped, the job recorder."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from apscheduler.executors.debug import DebugExecutor

from connector.db import Database
from connector.models import User
from connector.scheduling import create_scheduler
from connector.security import SecretBox
from connector.syncs.connections import DestinationIn, create_destination
from connector.syncs.definitions import SyncIn, create_sync
from tests.scheduling import recorder


@pytest.fixture(autouse=True)
def _clear_recorder() -> Iterator[None]:
    recorder.clear()
    yield
    recorder.clear()


@pytest.fixture
def make_sync(database, tenant, settings, tmp_path):
    """Create, through the sync service, a sync of the ``acme`` workspace sending users' emails to a destination
    (files in a temporary directory unless told otherwise); returns its id."""
    counter = iter(range(1, 1000))

    def make(schedule: dict, *, enabled: bool = True, destination: tuple[str, dict] | None = None) -> int:
        n = next(counter)
        kind, config = destination or ("file", {"directory": str(tmp_path / "files")})
        with database.session() as session:
            target = create_destination(
                session,
                tenant.workspace_id,
                SecretBox(settings.secret_key),
                DestinationIn(name=f"destination {n}", type=kind, config=config),
            )
            sync = create_sync(
                session,
                tenant.workspace_id,
                SyncIn(
                    name=f"sync {n}",
                    destination_id=target.id,
                    subject_type="users",
                    destination_object="people",
                    mappings=[{"source": {"kind": "field", "name": "email"}, "destination": "email"}],
                    identity={"destination": "email"},
                    schedule=schedule,
                    enabled=enabled,
                ),
            )
            return sync.id

    return make


@pytest.fixture
def make_user(database, tenant):
    def make(email: str) -> int:
        with database.session() as session:
            user = User(workspace_id=tenant.workspace_id, email=email, external_id=email)
            session.add(user)
            session.flush()
            return user.id

    return make


@pytest.fixture
def stoppers() -> Iterator[list]:
    """Register schedulers, handles and databases here; they are stopped (or disposed of) after the test."""
    items: list = []
    yield items
    for item in reversed(items):
        if isinstance(item, Database):
            item.dispose()
        elif hasattr(item, "running"):
            if item.running:
                item.shutdown(wait=False)
        else:
            item.shutdown(wait=False)


@pytest.fixture
def manual_scheduler(database, settings, stoppers):
    """Start a scheduler whose jobs run only when the test processes them (``scheduler._process_jobs()``), in the
    test's own thread (APScheduler's debug executor). The scheduler's background thread is kept from processing
    by the lock guard, which holds only in the test's thread: what runs, and at which (travelled) time, is decided
    by the test alone."""

    def start(*, paused: bool = False):
        test_thread = threading.current_thread()
        scheduler = create_scheduler(
            database,
            executor=DebugExecutor(),
            secret_key=settings.secret_key,
            holds_lock=lambda: threading.current_thread() is test_thread,
        )
        scheduler.start(paused=paused)
        stoppers.append(scheduler)
        return scheduler

    return start
