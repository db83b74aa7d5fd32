"""Scheduled syncs really run through the sync engine, and a tick during a running sync is skipped and recorded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from sqlalchemy import select

from connector.models import RunStatus, SyncRun
from connector.scheduling import create_scheduler, reconcile_jobs
from connector.scheduling.jobs import sync_job_id
from connector.syncs import claim_run

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
EVERY_15_MINUTES = {"kind": "interval", "minutes": 15}


def runs_of(database, sync_id: int) -> list[SyncRun]:
    with database.session() as session:
        return list(session.scalars(select(SyncRun).where(SyncRun.sync_id == sync_id).order_by(SyncRun.id)))


@pytest.fixture
def start(database, settings, stoppers):
    def start_scheduler(**options):
        scheduler = create_scheduler(database, secret_key=settings.secret_key, **options)
        scheduler.start()
        stoppers.append(scheduler)
        return scheduler

    return start_scheduler


def test_scheduled_sync_runs_the_sync_engine(database, manual_scheduler, make_sync, make_user, tmp_path):
    make_user("ada@example.com")
    sync_id = make_sync(EVERY_15_MINUTES)
    with time_machine.travel(T0, tick=False) as traveller:
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        traveller.move_to(T0 + timedelta(minutes=15))
        scheduler._process_jobs()

    [run] = runs_of(database, sync_id)
    assert (run.status, run.trigger, run.added) == (RunStatus.SUCCEEDED, "schedule", 1)
    [line] = (tmp_path / "files" / "people.jsonl").read_text().splitlines()
    assert json.loads(line)["identity"] == "ada@example.com"


def test_tick_while_a_run_is_in_progress_is_skipped_and_recorded(database, manual_scheduler, make_sync, make_user):
    make_user("ada@example.com")
    sync_id = make_sync(EVERY_15_MINUTES)
    with time_machine.travel(T0, tick=False) as traveller:
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        traveller.move_to(T0 + timedelta(minutes=15))
        with database.session() as session:  # a run started from the API, still going
            manual = claim_run(session, sync_id, "manual")
        scheduler._process_jobs()

    runs = runs_of(database, sync_id)
    assert [(r.status, r.trigger) for r in runs] == [(RunStatus.RUNNING, "manual"), (RunStatus.SKIPPED, "schedule")]
    assert f"run {manual.id} of this sync is in progress" in runs[1].first_error


class SlowReceiver:
    """A webhook endpoint on 127.0.0.1 that holds every request until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests += 1
                receiver.release.wait(30)
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    receiver = SlowReceiver()
    yield receiver
    receiver.close()


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_tick_while_the_previous_scheduled_run_is_still_going_reaches_the_sync_lock(
    database, start, make_sync, make_user, slow_receiver
):
    make_user("ada@example.com")
    sync_id = make_sync(EVERY_15_MINUTES, destination=("webhook", {"url": slow_receiver.url, "secret": "s3cret"}))
    scheduler = start()  # real threads, real time
    reconcile_jobs(scheduler, database)
    job_id = sync_job_id(sync_id)

    scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))  # first tick: the run blocks in its POST
    assert wait_for(lambda: slow_receiver.requests == 1)
    scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))  # second tick while the first is still going
    assert wait_for(lambda: len(runs_of(database, sync_id)) == 2)
    slow_receiver.release.set()
    assert wait_for(lambda: runs_of(database, sync_id)[0].status != RunStatus.RUNNING)

    first, second = runs_of(database, sync_id)
    assert (first.status, first.trigger) == (RunStatus.SUCCEEDED, "schedule")
    # The sync engine's lease, not APScheduler's instance count, turned the tick away, and said so in the history.
    assert (second.status, second.trigger) == (RunStatus.SKIPPED, "schedule")
    assert f"run {first.id} of this sync is in progress" in second.first_error
