"""Benchmark of distributed syncs: ``connector worker`` processes on RabbitMQ, eight HubSpot portals.

    .venv/bin/python bench/workers.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Eight portals (eight sandboxes, each in a process of its own, each enforcing HubSpot's 190 requests / 10 s), eight
syncs of ``--records`` (20,000) people each, one per portal. Measured:

1. with one worker process, then with two: total records/s from enqueueing the eight runs to the last one
   finished, and that as a fraction of the summed ceilings (8 x 1,900 records/s at 100 records a request). Each
   run starts from an idle portal, so its first 190 requests may go at once (HubSpot's rolling window allows it):
   a 20,000-record run needs about 10 s at the ceiling, the time for its window to let the last requests through;
2. the slow-portal case, with two workers: one portal answers every request ``--slow-latency`` seconds late; how
   much later the seven others finish than in (1) (``slow_portal_others_slowdown``, 0.05 = 5% slower);
3. the portals' count of 429s (must be 0: the workers share each portal's budget through the database).

With a PostgreSQL URL, a scratch database is created next to the named one and dropped at the end; the default is
a fresh SQLite file. Progress goes to stderr; stdout gets one line, a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from kombu import Connection
from sqlalchemy import delete, insert, select, text

from connector.config import Settings
from connector.db import Database
from connector.migrate import upgrade
from connector.models import (
    Destination,
    RunStatus,
    Segment,
    SegmentKind,
    SubjectType,
    Sync,
    SyncRecord,
    SyncRun,
    SyncSegment,
    SyncWatermark,
    User,
)
from connector.operations.settings import OperationsSettings
from connector.security import SecretBox
from connector.tenancy import create_company, create_workspace
from connector.testing.scratch import scratch_database
from connector.workers.app import worker_queues
from connector.workers.dispatch import CeleryDispatcher

TOKEN = "bench-token"
SECRET_KEY = "bench-secret-key"
CEILING_REQUESTS, CEILING_SECONDS, BATCH = 190, 10.0, 100
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


# -- portals: sandboxes in processes of their own ----------------------------------------------------------------


def _sandbox_process(conn) -> None:
    from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox

    sandbox = HubSpotSandbox(
        port=0, token=TOKEN, shuffle_results=False, rate_limit=(CEILING_REQUESTS, CEILING_SECONDS)
    ).start()
    conn.send(sandbox.url)
    while True:
        command, argument = conn.recv()
        if command == "stop":
            sandbox.stop()
            conn.send(None)
            return
        if command == "latency":
            sandbox.set_faults(FaultPlan(latency_s=argument) if argument else None)
            conn.send(None)
        elif command == "stats":
            with sandbox._lock:
                conn.send({"rate_limited": sandbox._rate_limited, "requests": sum(sandbox._requests.values())})


class Portal:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_sandbox_process, args=(child,), daemon=True)
        self.process.start()
        self.url = self.conn.recv()

    def ask(self, command: str, argument=None):
        self.conn.send((command, argument))
        return self.conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.process.join(timeout=10)


# -- data --------------------------------------------------------------------------------------------------------


def seed(db: Database, portals: list[Portal], records: int) -> list[int]:
    """One workspace; per portal a segment of ``records`` new people and a sync of it to that portal."""
    with db.session() as session:
        workspace = create_workspace(session, create_company(session, "Bench"), "Bench", slug="bench")
        workspace_id = workspace.id
    sync_ids = []
    for k, portal in enumerate(portals):
        rows = [
            {"workspace_id": workspace_id, "email": f"p{k}u{i}@bench.example", "attributes": {"first_name": f"U{i}"}}
            for i in range(records)
        ]
        with db.session() as session:
            for start in range(0, records, 10_000):
                session.execute(insert(User), rows[start : start + 10_000])
            segment = Segment(
                workspace_id=workspace_id, name=f"portal {k}", subject_type=SubjectType.USER, kind=SegmentKind.MANUAL
            )
            session.add(segment)
            session.flush()
            session.execute(
                text(
                    "INSERT INTO segment_memberships (segment_id, subject_id, entered_at) "
                    "SELECT :segment, id, :now FROM users WHERE workspace_id = :ws AND email LIKE :pattern"
                ),
                {
                    "segment": segment.id,
                    "now": datetime.now(UTC).replace(tzinfo=None),
                    "ws": workspace_id,
                    "pattern": f"p{k}u%",
                },
            )
            destination = Destination(
                workspace_id=workspace_id,
                name=f"portal {k}",
                type="hubspot",
                config={
                    "base_url": portal.url,
                    "timeout_s": [5, 60],
                    "rate_limit_requests": CEILING_REQUESTS,
                    "rate_limit_seconds": CEILING_SECONDS,
                },
                secrets_encrypted=SecretBox(SECRET_KEY).encrypt({"access_token": TOKEN}),
            )
            session.add(destination)
            session.flush()
            sync = Sync(
                workspace_id=workspace_id,
                destination_id=destination.id,
                name=f"portal {k}",
                subject_type=SubjectType.USER,
                destination_object="contacts",
                mappings=[
                    {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                    {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
                ],
                identity={"source": {"kind": "field", "name": "email"}, "destination": "email"},
            )
            session.add(sync)
            session.flush()
            session.add(SyncSegment(sync_id=sync.id, segment_id=segment.id))
            sync_ids.append(sync.id)
        log(f"portal {k}: {records:,} people and their sync")
    if db.dialect == "postgresql":
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return sync_ids


# -- workers -----------------------------------------------------------------------------------------------------


@contextmanager
def workers(settings: Settings, count: int, concurrency: int, tmp: str) -> Iterator[None]:
    env = {
        **os.environ,
        "CONNECTOR_DATABASE_URL": settings.database_url,
        "CONNECTOR_SECRET_KEY": SECRET_KEY,
        "CONNECTOR_BROKER_URL": settings.operations.broker_url,
        "CONNECTOR_QUEUE_PREFIX": settings.operations.queue_prefix,
    }
    processes, logs = [], []
    for n in range(count):
        path = os.path.join(tmp, f"worker-{uuid.uuid4().hex[:6]}-{n}.log")
        logs.append(path)
        with open(path, "w") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "connector.cli", "worker", f"--concurrency={concurrency}", "--no-alerts"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + 60
    while not all("ready." in Path(p).read_text() for p in logs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not start; see {logs}")
        time.sleep(0.2)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def run_round(db: Database, dispatcher: CeleryDispatcher, sync_ids: list[int]) -> dict[int, tuple[float, int]]:
    """Forget what was sent and where each sync's last run stopped reading (so every record goes again), enqueue
    every sync, wait for all: per sync, the seconds from enqueueing to its finish and the records it sent."""
    with db.session() as session:
        session.execute(delete(SyncRecord))
        session.execute(delete(SyncWatermark))
        since = session.scalar(select(SyncRun.id).order_by(SyncRun.id.desc()).limit(1)) or 0
    started = datetime.now(UTC)
    for sync_id in sync_ids:
        dispatcher.run_sync(sync_id, "schedule")
    while True:
        with db.session() as session:
            runs = session.scalars(
                select(SyncRun).where(
                    SyncRun.id > since, SyncRun.status != RunStatus.RUNNING, SyncRun.dry_run.is_(False)
                )
            ).all()
        finished = {r.sync_id: r for r in runs if r.status != RunStatus.SKIPPED}
        if len(finished) == len(sync_ids):
            break
        time.sleep(0.5)
    for run in finished.values():
        if run.status != RunStatus.SUCCEEDED:
            raise RuntimeError(f"sync {run.sync_id}: run {run.id} {run.status.value}: {run.first_error}")
    return {s: ((r.finished_at - started).total_seconds(), r.added + r.changed) for s, r in finished.items()}


def figures(result: dict[int, tuple[float, int]], portals: int) -> tuple[float, float, float]:
    elapsed = max(t for t, _ in result.values())
    records = sum(n for _, n in result.values())
    rate = records / elapsed
    return elapsed, rate, rate / (portals * CEILING_REQUESTS * BATCH / CEILING_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--broker-url", default=BROKER_URL)
    parser.add_argument("--portals", type=int, default=8)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8, help="tasks at a time per worker")
    parser.add_argument("--slow-latency", type=float, default=1.0, help="seconds the slow portal adds per request")
    args = parser.parse_args()

    with (
        scratch_database(args.database_url, prefix="connector_bench_workers") as url,
        tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
    ):
        upgrade(url)
        db = Database(url)
        portals = [Portal() for _ in range(args.portals)]
        settings = replace(
            Settings(database_url=url, secret_key=SECRET_KEY),
            operations=OperationsSettings(broker_url=args.broker_url, queue_prefix=f"bench-{uuid.uuid4().hex[:8]}."),
        )
        try:
            started = time.monotonic()
            sync_ids = seed(db, portals, args.records)
            log(f"seeded in {time.monotonic() - started:.1f}s")
            dispatcher = CeleryDispatcher(db, settings)
            out: dict[str, float | int | str] = {
                "database": db.dialect,
                "portals": args.portals,
                "records_per_sync": args.records,
                "concurrency_per_worker": args.concurrency,
            }
            baseline = None
            for count in (1, 2):
                with workers(settings, count, args.concurrency, tmp):
                    time.sleep(CEILING_SECONDS + 1)  # every portal's window empty: each run starts from idle
                    result = run_round(db, dispatcher, sync_ids)
                elapsed, rate, fraction = figures(result, args.portals)
                log(f"{count} worker(s): {elapsed:.1f}s, {rate:,.0f} records/s, {fraction:.1%} of the summed ceilings")
                out[f"elapsed_s_{count}_worker{'s' if count > 1 else ''}"] = round(elapsed, 2)
                out[f"records_per_s_{count}_worker{'s' if count > 1 else ''}"] = round(rate, 1)
                out[f"fraction_of_ceiling_{count}_worker{'s' if count > 1 else ''}"] = round(fraction, 3)
                baseline = result

            portals[0].ask("latency", args.slow_latency)
            with workers(settings, 2, args.concurrency, tmp):
                time.sleep(CEILING_SECONDS + 1)
                slow = run_round(db, dispatcher, sync_ids)
            portals[0].ask("latency", 0)
            others = sync_ids[1:]
            before = max(baseline[s][0] for s in others)
            after = max(slow[s][0] for s in others)
            log(
                f"slow portal (+{args.slow_latency:g}s a request): the others took {after:.1f}s (was {before:.1f}s); "
                f"the slow one {slow[sync_ids[0]][0]:.1f}s"
            )
            out["slow_portal_latency_s"] = args.slow_latency
            out["slow_portal_elapsed_s"] = round(slow[sync_ids[0]][0], 2)
            out["slow_portal_others_elapsed_s"] = round(after, 2)
            out["slow_portal_others_slowdown"] = round(after / before - 1, 3)
            out["rate_limited_429s"] = sum(p.ask("stats")["rate_limited"] for p in portals)
        finally:
            for portal in portals:
                portal.stop()
            with Connection(args.broker_url) as connection:
                channel = connection.channel()
                for queue in worker_queues(settings):
                    try:
                        channel.queue_delete(settings.operations.queue_prefix + queue)
                    except Exception:
                        channel = connection.channel()
            db.dispose()
    print(json.dumps(out))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
