"""Benchmark of the sync engine against the HubSpot sandbox (real hubspot-api-client, real HTTP).

    .venv/bin/python bench/sync.py                                   # 100,000 users, a fresh SQLite file
    .venv/bin/python bench/sync.py --users 1000000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

With a PostgreSQL URL, the URL's database is only used to create (and at the end drop) a scratch database next to
it: nothing of the named database is touched. Measures, on one workspace of N users (half of them in a segment,
so ``Segments`` has values):

1. a first full run with the sandbox unlimited: records/s;
2. the same sync again, nothing changed: seconds and requests the sandbox received (must be 0); then again after
   1% of the users changed (a mapped attribute of every hundredth user): seconds;
3. with the sandbox enforcing 190 requests / 10 s (rolling, like HubSpot), a sync of a subset of the users
   (``--limited-records``, default 40,000, about 21 s), from an idle start as any sync begins: records/s as a
   fraction of the ceiling, 1,900 records/s at 100 records a request. The limiter sends one window's worth at
   once and then paces at the ceiling, so the figure is the sustained rate (the opening burst only moves work
   earlier: the window must drain before the next request either way). The figure is for the whole run, with its
   fixed costs (claiming the lease, the duplicate-identity query, the first page, the requests that prepare the
   destination's fields); ``limited_fraction_while_sending`` counts from the first acknowledged batch to the last.
   The sandbox's count of 429s must stay 0;
4. the peak RSS of this process (the sandbox runs in a child process, so its memory is not counted).

Progress goes to stderr; stdout gets one line, a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import insert, literal, select, text, update

from connector.db import Database
from connector.migrate import upgrade
from connector.models import (
    ComputedValue,
    Destination,
    Segment,
    SegmentKind,
    SegmentMembership,
    SubjectType,
    Sync,
    SyncSegment,
    User,
)
from connector.models.base import JSONType, UTCDateTime
from connector.security import SecretBox
from connector.syncs.engine import run_sync
from connector.tenancy import create_company, create_workspace
from connector.testing.scratch import scratch_database

TOKEN = "bench-token"
SECRET_KEY = "bench-secret-key"
CEILING_REQUESTS, CEILING_SECONDS = 190, 10.0
SEED_CHUNK = 20_000
PLANS = ("free", "starter", "pro", "enterprise")


# -- the sandbox, in a child process ---------------------------------------------------------------------------


def _sandbox_process(conn) -> None:
    from connector.testing.hubspot_sandbox import HubSpotSandbox

    sandbox = HubSpotSandbox(port=0, token=TOKEN, shuffle_results=False).start()
    conn.send(sandbox.url)
    while True:
        command, argument = conn.recv()
        if command == "stop":
            sandbox.stop()
            conn.send(None)
            return
        if command == "rate_limit":
            sandbox.set_rate_limit(argument)
            conn.send(None)
        elif command == "requests":
            with sandbox._lock:
                conn.send(sum(sandbox._requests.values()))
        elif command == "rate_limited":
            with sandbox._lock:
                conn.send(sandbox._rate_limited)


class SandboxProcess:
    """The HubSpot sandbox in a child process, driven over a pipe (its stats of a million records stay there)."""

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


# -- seeding ---------------------------------------------------------------------------------------------------


def _users(workspace_id: int, count: int) -> Iterator[dict]:
    for i in range(count):
        yield {
            "workspace_id": workspace_id,
            "email": f"user{i:07d}@bench.example",
            "external_id": f"u{i}",
            "attributes": {"first_name": f"User {i}", "plan": PLANS[i % len(PLANS)], "score": i % 1000},
        }


def seed(db: Database, users: int, limited: int) -> dict:
    """A workspace with ``users`` users; segment "Paying" holds every other one, "Limited subset" the first
    ``limited`` (for the rate-limited measurement)."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    with db.session() as session:
        workspace = create_workspace(session, create_company(session, "Bench"), "Bench", slug=slug)
        workspace_id = workspace.id
        segments = {}
        for name in ("Paying", "Limited subset"):
            segment = Segment(
                workspace_id=workspace_id, name=name, subject_type=SubjectType.USER, kind=SegmentKind.MANUAL
            )
            session.add(segment)
            session.flush()
            segments[name] = segment.id
    started = time.monotonic()
    if db.dialect == "postgresql":
        _copy_users(db, workspace_id, users)
    else:
        batch: list[dict] = []
        for row in _users(workspace_id, users):
            batch.append(row)
            if len(batch) >= SEED_CHUNK:
                with db.session() as session:
                    session.execute(insert(User), batch)
                batch = []
        if batch:
            with db.session() as session:
                session.execute(insert(User), batch)
    with db.session() as session:
        first_id = session.scalar(select(User.id).where(User.workspace_id == workspace_id).order_by(User.id).limit(1))
    with db.session() as session:
        # Set-based: memberships and the Segments property straight from the ids.
        for name, low, high, step in (
            ("Paying", 0, users, 2),
            ("Limited subset", 0, limited, 1),
        ):
            session.execute(
                text(
                    "INSERT INTO segment_memberships (segment_id, subject_id, entered_at) "
                    "SELECT :segment_id, id, :now FROM users WHERE workspace_id = :ws "
                    "AND id >= :low AND id < :high AND (id - :first) % :step = 0"
                ),
                {
                    "segment_id": segments[name],
                    "now": datetime.now(UTC).replace(tzinfo=None),
                    "ws": workspace_id,
                    "low": first_id + low,
                    "high": first_id + high,
                    "first": first_id,
                    "step": step,
                },
            )
        # The Segments property of the "Paying" members, set-based too.
        members = select(
            literal(SubjectType.USER.value),
            SegmentMembership.subject_id,
            literal("Segments"),
            literal(workspace_id),
            literal(["Paying"], type_=JSONType),
            literal(datetime.now(UTC), type_=UTCDateTime()),
        ).where(SegmentMembership.segment_id == segments["Paying"])
        session.execute(
            insert(ComputedValue).from_select(
                ["subject_type", "subject_id", "name", "workspace_id", "value", "updated_at"], members
            )
        )
    if db.dialect == "postgresql":
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return {"workspace_id": workspace_id, "segments": segments, "seed_s": time.monotonic() - started}


def _copy_users(db: Database, workspace_id: int, users: int) -> None:
    now = datetime.now(UTC)
    raw = db.engine.raw_connection()
    try:
        with (
            raw.cursor() as cursor,
            cursor.copy(
                "COPY users (workspace_id, email, external_id, attributes, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            for row in _users(workspace_id, users):
                copy.write_row(
                    (workspace_id, row["email"], row["external_id"], json.dumps(row["attributes"]), now, now)
                )
        raw.commit()
    finally:
        raw.close()


def make_sync(db: Database, workspace_id: int, name: str, url: str, segment_ids=(), rate_limit=None) -> int:
    config = {"base_url": url, "timeout_s": [5, 60]}
    if rate_limit:
        config.update(rate_limit_requests=rate_limit[0], rate_limit_seconds=rate_limit[1])
    else:
        config.update(rate_limit_requests=1_000_000, rate_limit_seconds=1.0)
    with db.session() as session:
        destination = Destination(
            workspace_id=workspace_id,
            name=name,
            type="hubspot",
            config=config,
            secrets_encrypted=SecretBox(SECRET_KEY).encrypt({"access_token": TOKEN}),
        )
        session.add(destination)
        session.flush()
        sync = Sync(
            workspace_id=workspace_id,
            destination_id=destination.id,
            name=name,
            subject_type=SubjectType.USER,
            destination_object="contacts",
            mappings=[
                {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
                {"source": {"kind": "attribute", "name": "plan"}, "destination": "plan"},
                {"source": {"kind": "attribute", "name": "score"}, "destination": "score", "format": "number"},
                {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multi_select"},
            ],
            identity={"source": {"kind": "field", "name": "email"}, "destination": "email"},
        )
        session.add(sync)
        session.flush()
        session.add_all(SyncSegment(sync_id=sync.id, segment_id=s) for s in segment_ids)
        return sync.id


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def change_one_percent(db: Database, workspace_id: int) -> int:
    """Every hundredth user gets another plan (a mapped attribute), in one statement; how many."""
    with db.session() as session:
        first_id = session.scalar(select(User.id).where(User.workspace_id == workspace_id).order_by(User.id).limit(1))
        users = session.execute(
            select(User.id, User.attributes).where(User.workspace_id == workspace_id, (User.id - first_id) % 100 == 0)
        ).all()
        session.execute(
            update(User),
            [{"id": user_id, "attributes": {**attributes, "plan": "changed"}} for user_id, attributes in users],
        )
    return len(users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--database-url", default=None, help="default: a temporary SQLite file; PostgreSQL: a scratch database beside"
    )
    parser.add_argument(
        "--limited-records",
        type=int,
        default=40_000,
        help="users synced under the 190/10 s limit (default 40,000: about 21 s)",
    )
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    limited = min(args.limited_records, args.users)

    with scratch_database(args.database_url, prefix="connector_bench_sync") as url:
        upgrade(url)
        measure(args, url, limited)


def measure(args: argparse.Namespace, url: str, limited: int) -> None:
    db = Database(url)
    sandbox = SandboxProcess()
    try:
        log(f"database: {db.dialect}; users: {args.users:,}; workers: {args.workers}")
        seeded = seed(db, args.users, limited)
        log(f"seeded {args.users:,} users in {seeded['seed_s']:.1f}s")
        ws = seeded["workspace_id"]

        full = make_sync(db, ws, "bench-full", sandbox.url)
        outcome = run_sync(db, full, "bench", secret_key=SECRET_KEY, workers=args.workers)
        assert outcome.status.value == "succeeded", outcome
        assert outcome.counts.added == args.users, outcome.counts
        unlimited_rate = args.users / outcome.elapsed_s
        log(
            f"first run, sandbox unlimited: {args.users:,} records in {outcome.elapsed_s:.1f}s = "
            f"{unlimited_rate:,.0f} records/s"
        )

        before = sandbox.ask("requests")
        rerun = run_sync(db, full, "bench", secret_key=SECRET_KEY, workers=args.workers)
        rerun_requests = sandbox.ask("requests") - before
        assert rerun.counts.unchanged == args.users and rerun.counts.planned == 0, rerun.counts
        log(f"unchanged re-run: {rerun.elapsed_s:.2f}s, {rerun_requests} requests")

        changed = change_one_percent(db, ws)
        one_percent = run_sync(db, full, "bench", secret_key=SECRET_KEY, workers=args.workers)
        assert one_percent.counts.changed == changed, one_percent.counts
        assert one_percent.counts.unchanged == args.users - changed, one_percent.counts
        log(f"re-run after 1% changed ({changed:,} users): {one_percent.elapsed_s:.2f}s")

        sandbox.ask("rate_limit", (CEILING_REQUESTS, CEILING_SECONDS))
        ceiling = CEILING_REQUESTS * 100 / CEILING_SECONDS
        limited_sync = make_sync(
            db,
            ws,
            "bench-limited",
            sandbox.url,
            [seeded["segments"]["Limited subset"]],
            (CEILING_REQUESTS, CEILING_SECONDS),
        )
        acks: list[tuple[float, int]] = []
        limited_run = run_sync(
            db,
            limited_sync,
            "bench",
            secret_key=SECRET_KEY,
            workers=args.workers,
            progress=lambda counts: acks.append((time.monotonic(), counts.added)),
        )
        assert limited_run.counts.added == limited, limited_run.counts
        # Without the run's fixed costs (claiming it, the duplicate check, the first page, preparing the fields):
        # from the first acknowledged batch to the last.
        (first_at, first_added), (last_at, last_added) = acks[0], acks[-1]
        sending_rate = (last_added - first_added) / (last_at - first_at) if last_at > first_at else float("nan")
        if limited < 2 * CEILING_REQUESTS * 100:
            log(
                "note: the rate-limited subset fits in the opening burst; the fraction says little below "
                f"{2 * CEILING_REQUESTS * 100:,} records"
            )
        refused = sandbox.ask("rate_limited")
        limited_rate = limited / limited_run.elapsed_s
        fraction = limited_rate / ceiling
        log(
            f"rate-limited (190 requests / 10 s): {limited:,} records in {limited_run.elapsed_s:.1f}s = "
            f"{limited_rate:,.0f} records/s = {fraction:.1%} of the ceiling ({ceiling:,.0f}/s); while sending "
            f"(first to last acknowledged batch): {sending_rate / ceiling:.1%}; 429s from the sandbox: {refused}"
        )

        result = {
            "database": db.dialect,
            "records": args.users,
            "workers": args.workers,
            "seed_s": round(seeded["seed_s"], 2),
            "unlimited_s": round(outcome.elapsed_s, 2),
            "unlimited_records_per_s": round(unlimited_rate),
            "limited_records": limited,
            "limited_s": round(limited_run.elapsed_s, 2),
            "limited_records_per_s": round(limited_rate),
            "limited_fraction_of_ceiling": round(fraction, 4),
            "limited_fraction_while_sending": round(sending_rate / ceiling, 4),
            "limited_429s": refused,
            "unchanged_rerun_s": round(rerun.elapsed_s, 3),
            "unchanged_rerun_requests": rerun_requests,
            "one_percent_changed_s": round(one_percent.elapsed_s, 3),
            "one_percent_changed_records": changed,
            "load_1m": round(os.getloadavg()[0], 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        print(json.dumps(result))
    finally:
        sandbox.stop()
        db.dispose()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("CONNECTOR_SECRET_KEY", SECRET_KEY)
    main()
