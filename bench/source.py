"""Benchmark of SQL sources: N rows of a warehouse table into users, from PostgreSQL and from MariaDB.

    .venv/bin/python bench/source.py                                     # 1,000,000 rows, a fresh SQLite file
    .venv/bin/python bench/source.py --rows 1000000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

The service's database is ``--database-url`` (with a PostgreSQL URL, a scratch database is created beside the one
named and dropped at the end). The warehouses are a scratch database on ``--postgres-source-url``'s server and one
on ``--mariadb-url``'s server, both dropped at the end. For each warehouse, a table ``people`` (id, email, plan,
seats, updated_at) of N rows is read by a users model with ``updated_at`` as cursor, into a workspace with one
dynamic segment (``plan = pro``), so every chunk also moves segment membership and ``Segments``:

1. the first run: rows/s;
2. 1% of the rows changed (plan and cursor), then an incremental run: seconds (it reads and writes only those);
3. the peak RSS of this process after the runs of each warehouse.

Progress goes to stderr; stdout gets one line, a JSON object: ``rows_per_s``, ``incremental_s``, ``peak_rss_mb``
(PostgreSQL warehouse) and the same with a ``mariadb_`` prefix.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from connector.db import Database
from connector.migrate import upgrade
from connector.models import SegmentMembership, User
from connector.security import SecretBox
from connector.segments.service import create_segment
from connector.sources.config import ModelIn, SourceIn
from connector.sources.reader import engine_url
from connector.sources.runs import run_model
from connector.sources.service import create_model, create_source
from connector.tenancy import create_company, create_workspace
from connector.testing.scratch import create_postgres_database, drop_postgres_database, scratch_database

BOX = SecretBox("bench-secret-key")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextmanager
def postgres_warehouse(url: str, rows: int) -> Iterator[str]:
    name = f"connector_bench_wh_{uuid.uuid4().hex[:8]}"
    scratch = create_postgres_database(url, name)
    try:
        _run(
            scratch,
            "CREATE TABLE people (id BIGINT PRIMARY KEY, email VARCHAR(200), plan VARCHAR(20), seats INTEGER, "
            "updated_at BIGINT NOT NULL)",
            f"INSERT INTO people SELECT g, 'person' || g || '@example.com', "
            f"(ARRAY['free','starter','pro','enterprise'])[1 + g % 4], g % 50, g FROM generate_series(1, {rows}) g",
            "CREATE INDEX people_cursor ON people (updated_at, id)",
            "ANALYZE people",
        )
        yield scratch
    finally:
        drop_postgres_database(url, name)


@contextmanager
def mariadb_warehouse(url: str, rows: int) -> Iterator[str]:
    name = f"connector_bench_wh_{uuid.uuid4().hex[:8]}"
    _run(url, f"CREATE DATABASE {name}")
    scratch = url.rsplit("/", 1)[0] + "/" + name
    try:
        _run(
            scratch,
            "CREATE TABLE people (id BIGINT PRIMARY KEY, email VARCHAR(200), plan VARCHAR(20), seats INTEGER, "
            "updated_at BIGINT NOT NULL, INDEX people_cursor (updated_at, id))",
            # MariaDB's Sequence engine: seq_1_to_N is a table of the numbers 1..N.
            f"INSERT INTO people SELECT seq, CONCAT('person', seq, '@example.com'), "
            f"ELT(1 + seq % 4, 'free', 'starter', 'pro', 'enterprise'), seq % 50, seq FROM seq_1_to_{rows}",
        )
        yield scratch
    finally:
        _run(url, f"DROP DATABASE IF EXISTS {name}")


def _run(url: str, *statements: str) -> None:
    engine = create_engine(engine_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def measure(db: Database, label: str, warehouse_url: str, rows: int) -> dict[str, float]:
    with db.session() as session:
        company = create_company(session, f"Bench {label}")
        workspace = create_workspace(session, company, f"Bench {label}", slug=f"bench-{label}")
        segment = create_segment(
            session,
            workspace.id,
            name="Pro",
            subject_type="user",
            conditions={"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
        )
        source = create_source(session, workspace.id, BOX, SourceIn(name=label, url=warehouse_url))
        model = create_model(
            session,
            workspace.id,
            source.id,
            ModelIn(
                name="people",
                kind="users",
                query="SELECT id, email, plan, seats, updated_at FROM people",
                mapping={"external_id": "id", "email": "email"},
                cursor_column="updated_at",
            ),
        )
        model_id, segment_id, workspace_id = model.id, segment.id, workspace.id

    say(f"{label}: first run of {rows:,} rows …")
    started = time.perf_counter()
    first = run_model(db, model_id, BOX, "bench")
    first_s = time.perf_counter() - started
    assert first.status == "succeeded", first.error
    assert first.counts["created"] == rows, first.counts
    say(f"{label}: first run {first_s:.1f}s, {rows / first_s:,.0f} rows/s, peak RSS {peak_rss_mb()} MB")

    changed = max(rows // 100, 1)
    _run(
        warehouse_url,
        f"UPDATE people SET plan = 'pro', updated_at = updated_at + {rows} WHERE id % 100 = 0",
    )
    started = time.perf_counter()
    again = run_model(db, model_id, BOX, "bench")
    incremental_s = time.perf_counter() - started
    assert again.counts["rows_read"] == changed and again.counts["changed"] == changed, again.counts
    with db.session() as session:
        users = session.scalar(select(func.count()).select_from(User).where(User.workspace_id == workspace_id))
        members = session.scalar(
            select(func.count()).select_from(SegmentMembership).where(SegmentMembership.segment_id == segment_id)
        )
    say(f"{label}: incremental run of {changed:,} changed rows {incremental_s:.2f}s; {users:,} users, {members:,} pro")
    return {
        "rows_per_s": round(rows / first_s),
        "first_run_s": round(first_s, 2),
        "incremental_s": round(incremental_s, 2),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="The service's database (default: a fresh SQLite file)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-source-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--mariadb-url", default="mysql://root@127.0.0.1:3306/test")
    parser.add_argument("--skip-mariadb", action="store_true")
    args = parser.parse_args()

    figures: dict[str, float] = {"rows": args.rows}
    with scratch_database(args.database_url, "connector_bench_source") as url:
        say(f"service database: {url.split('@')[-1]}")
        upgrade(url)
        db = Database(url)
        try:
            say(f"filling a PostgreSQL warehouse with {args.rows:,} rows …")
            with postgres_warehouse(args.postgres_source_url, args.rows) as warehouse:
                figures.update(measure(db, "postgresql", warehouse, args.rows))
            if not args.skip_mariadb:
                say(f"filling a MariaDB warehouse with {args.rows:,} rows …")
                with mariadb_warehouse(args.mariadb_url, args.rows) as warehouse:
                    figures.update({f"mariadb_{k}": v for k, v in measure(db, "mariadb", warehouse, args.rows).items()})
        finally:
            db.dispose()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
