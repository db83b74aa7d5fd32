"""Benchmark: enter-triggered playbook firings per second, and the delay from membership change to firing.

    .venv/bin/python bench/automation.py                                   # a fresh SQLite file, 100,000 people
    .venv/bin/python bench/automation.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

With a PostgreSQL URL, a scratch database is created beside the URL's (and dropped at the end). ``--people`` users
are written on the free plan, then a segment ``plan = pro``, a sequence and a playbook "enters Pro -> enrol in the
sequence" are made, and the scheduler is started in this process (``start_scheduler``: the real job store, lock and
``automation:process`` job). Then ONE ingestion (``identify`` + the incremental segment update, one transaction)
moves every person to the pro plan, so all of them enter the segment at once; the clock runs until every
enter-triggered firing is recorded.

Figures: ``firings_per_s`` = people / (membership change committed -> last firing recorded), so the wait for the
scheduler's next tick (every second) and the settle time (1 s) count against it; ``firing_delay_p95_s`` = 95th
percentile of (firing recorded - membership change committed); ``until_all_fired_s`` = commit to the last firing.
Progress goes to stderr; stdout gets one line, a JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.automation import playbooks, sequences  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.db import Database  # noqa: E402
from connector.ingest.users import identify  # noqa: E402
from connector.migrate import upgrade  # noqa: E402
from connector.models import Enrolment, FiringStatus, PlaybookFiring, User, utcnow  # noqa: E402
from connector.scheduling import start_scheduler  # noqa: E402
from connector.segments import service as segment_service  # noqa: E402
from connector.segments.incremental import apply_changes  # noqa: E402
from connector.tenancy import create_company, create_workspace  # noqa: E402
from connector.testing.scratch import scratch_database  # noqa: E402

SECRET = "bench-secret-key"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed(db: Database, people: int) -> tuple[int, int]:
    with db.session() as session:
        company = create_company(session, "Bench Inc")
        workspace_id = create_workspace(session, company, "Bench", slug="bench").id
    channels = ["email", "sms", None, "push"]
    with db.engine.begin() as connection:
        for start in range(0, people, 10_000):
            rows = [
                {
                    "workspace_id": workspace_id,
                    "external_id": f"u{i}",
                    "default_channel": channels[i % 4],
                    "attributes": {"plan": "free"},
                }
                for i in range(start, min(start + 10_000, people))
            ]
            connection.execute(insert(User.__table__), rows)
    with db.session() as session:
        segment = segment_service.create_segment(
            session,
            workspace_id,
            name="Pro",
            subject_type="user",
            conditions={"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
        )
        sequence = sequences.save_sequence(
            session,
            workspace_id,
            {"name": "Welcome", "channels": ["email", "sms"], "steps": [{"name": "hello", "delay_minutes": 60}]},
            SECRET,
        )
        playbook = playbooks.save_playbook(
            session,
            workspace_id,
            {
                "name": "Welcome pros",
                "trigger": {"kind": "enters", "segment_id": segment.id},
                "actions": [{"type": "enrol", "sequence_id": sequence.id, "fallback_channel": "email"}],
            },
            SECRET,
        )
        workspace_id, playbook_id = workspace_id, playbook.id
    if db.dialect == "postgresql":
        # Statistics as a running database has them (autovacuum analyzes a table after bulk loading it).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    return workspace_id, playbook_id


def measure(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    log(f"seeding {args.people:,} people")
    workspace_id, playbook_id = seed(db, args.people)
    handle = start_scheduler(db, Settings(database_url=db.url, secret_key=SECRET))
    try:
        if not handle.wait_until_active(60):
            raise SystemExit("the scheduler did not become active")
        log("scheduler active; moving everyone to the pro plan in one ingestion")
        items = [{"external_id": f"u{i}", "attributes": {"plan": "pro"}} for i in range(args.people)]
        started = time.monotonic()
        with db.session() as session:
            result = identify(session, workspace_id, items)
            evaluation = apply_changes(session, workspace_id, result.changes)
        committed_at = utcnow()
        log(f"ingestion committed in {time.monotonic() - started:.1f}s ({evaluation.counts if evaluation else {}})")
        deadline = time.monotonic() + args.timeout
        fired = 0
        while time.monotonic() < deadline:
            with db.session() as session:
                fired = session.scalar(select(func.count()).where(PlaybookFiring.playbook_id == playbook_id))
            log(f"  {fired:,} of {args.people:,} firings recorded")
            if fired >= args.people:
                break
            time.sleep(1.0)
    finally:
        handle.shutdown()
    with db.session() as session:
        created = list(
            session.scalars(select(PlaybookFiring.created_at).where(PlaybookFiring.playbook_id == playbook_id))
        )
        succeeded = session.scalar(
            select(func.count()).where(
                PlaybookFiring.playbook_id == playbook_id, PlaybookFiring.status == FiringStatus.SUCCEEDED
            )
        )
        enrolled = session.scalar(select(func.count()).select_from(Enrolment))
    if len(created) < args.people:
        log(f"only {len(created):,} firings after {args.timeout}s")
    delays = sorted((at - committed_at).total_seconds() for at in created)
    last = max(created)
    span = max((last - committed_at).total_seconds(), 1e-3)
    return {
        "people": args.people,
        "firings": len(created),
        "succeeded": succeeded,
        "enrolled": enrolled,
        "firings_per_s": round(len(created) / span, 1),
        "until_all_fired_s": round((last - committed_at).total_seconds(), 2),
        "firing_delay_p50_s": round(_percentile(delays, 0.50), 2),
        "firing_delay_p95_s": round(_percentile(delays, 0.95), 2),
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every firing")
    args = parser.parse_args(argv)
    with scratch_database(args.database_url, prefix="connector_bench") as url:
        upgrade(url)
        db = Database(url)
        try:
            result = measure(db, args)
        finally:
            db.dispose()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
