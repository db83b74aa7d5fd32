"""Shared segment benchmark: first evaluation in the target, and the latency of a device added on either side.

    .venv/bin/python bench/shared.py --users 100000
    .venv/bin/python bench/shared.py --users 1000000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

What it does, printing progress as it goes:

1. Builds a database (a temporary SQLite file, or a scratch PostgreSQL database next to the one named, dropped at the
   end) with two workspaces of one company, ``Project A`` (source) and ``Project B`` (target), N users each. Every
   user has one device, iOS or Android alternately, and 30% of the target's devices (``--shared``) have the vendor
   id of a source user's device (so about 30% of the target's users can match someone).
2. Defines segment ``VIP`` in the source (half the source users) and measures sharing it with the target: the
   stand-in is created and evaluated whole, in SQL, by device id (``first_evaluation_s``).
3. Measures ``--samples`` single-device ingestions in the target before anything is shared (the baseline: the
   ingestion path alone, ``baseline_device_add_p95_ms``); then as many after sharing, each giving a non-matching
   target user the device id of a source VIP (the API's path: ``record_devices`` + ``apply_changes`` in one
   transaction), checking the user entered (``device_add_p50_ms`` / ``device_add_p95_ms``); and as many in the
   source, each giving a VIP a device id some target user has (``source_device_add_p95_ms``).

The last line is one JSON object with, among others, ``first_evaluation_s`` and ``device_add_p95_ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connector.db import Database
from connector.ingest.devices import record_devices
from connector.migrate import upgrade
from connector.models import Device, Member, SegmentMembership, SegmentShare, User
from connector.segments import service, sharing
from connector.segments.incremental import apply_changes
from connector.tenancy import create_company, create_member, create_workspace
from connector.testing.scratch import scratch_database

NOW = datetime.now(UTC).replace(microsecond=0)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def series(pg: bool, n: int, body: str) -> str:
    """``SELECT body`` over i = 1..n (``body`` says FROM_SERIES where the series goes)."""
    if pg:
        return f"SELECT {body.replace('FROM_SERIES', f'FROM generate_series(1, CAST({n} AS bigint)) AS s(i)')}"
    cte = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
    return cte + f"SELECT {body.replace('FROM_SERIES', 'FROM s')}"


def generate(db: Database, users: int, shared_percent: int) -> dict[str, int]:
    pg = db.dialect == "postgresql"
    with db.session() as session:
        company = create_company(session, "Bench Apps")
        source = create_workspace(session, company, "Project A", slug="project-a")
        target = create_workspace(session, company, "Project B", slug="project-b")
        member = create_member(session, company, "admin@bench.example", company_admin=True)
        ids = {"source": source.id, "target": target.id, "member": member.id}
    stamp = "CAST(:now AS timestamptz)" if pg else ":now"
    plan = "CASE WHEN i % 2 = 0 THEN 'vip' ELSE 'free' END"
    attributes = f"jsonb_build_object('plan', {plan})" if pg else f"json_object('plan', {plan})"
    platform = "CASE WHEN i % 2 = 0 THEN 'ios' ELSE 'android' END"
    # Target user i's device: the vendor id of source user i's device for shared_percent of them, else its own.
    target_vendor = f"CASE WHEN (i * 7) % 100 < {shared_percent} THEN 'src-' || i ELSE 'tgt-' || i END"
    steps = [
        ("source users", "users (id, workspace_id, external_id, attributes, created_at, updated_at)",
         f"i, :src, 's' || i, {attributes}, {stamp}, {stamp} FROM_SERIES"),
        ("target users", "users (id, workspace_id, external_id, attributes, created_at, updated_at)",
         f"i + {users}, :tgt, 't' || i, {attributes}, {stamp}, {stamp} FROM_SERIES"),
        ("source devices", "devices (workspace_id, user_id, platform, vendor_device_id, last_seen_at, created_at)",
         f":src, i, {platform}, 'src-' || i, {stamp}, {stamp} FROM_SERIES"),
        ("target devices", "devices (workspace_id, user_id, platform, vendor_device_id, last_seen_at, created_at)",
         f":tgt, i + {users}, {platform}, {target_vendor}, {stamp}, {stamp} FROM_SERIES"),
    ]  # fmt: skip
    params = {"src": ids["source"], "tgt": ids["target"], "now": NOW.isoformat() if pg else NOW.strftime("%F %T")}
    for label, into, body in steps:
        started = time.perf_counter()
        with db.session() as session:
            session.execute(text(f"INSERT INTO {into} {series(pg, users, body)}"), params)
        log(f"{label}: {users} rows in {time.perf_counter() - started:.1f} s")
    if pg:
        # Ids were given explicitly: move the sequences past them.
        with db.session() as session:
            for table in ("users", "devices"):
                session.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
    with db.session() as session:
        session.execute(text("ANALYZE"))
    return ids


def first_evaluation(db: Database, ids: dict[str, int]) -> tuple[float, int, int]:
    with db.session() as session:
        vip = service.create_segment(
            session,
            ids["source"],
            name="VIP",
            subject_type="user",
            conditions={"type": "attribute", "name": "plan", "operator": "eq", "value": "vip"},
        )
        vip_id = vip.id
    log("segment VIP defined in the source; sharing it with the target")
    started = time.perf_counter()
    with db.session() as session:
        member = session.get(Member, ids["member"])
        sharing.set_sharing(session, member, service.get_segment(session, ids["source"], vip_id), [ids["target"]])
    elapsed = time.perf_counter() - started
    with db.session() as session:
        proxy_id = session.scalar(select(SegmentShare.proxy_segment_id).where(SegmentShare.source_segment_id == vip_id))
        members = session.scalar(select(func.count()).where(SegmentMembership.segment_id == proxy_id))
    return elapsed, proxy_id, members


def is_member(db: Database, segment_id: int, user_id: int) -> bool:
    with db.session() as session:
        return session.get(SegmentMembership, {"segment_id": segment_id, "subject_id": user_id}) is not None


def device_adds(db: Database, workspace_id: int, items: list[tuple[str, str, str]], check) -> list[float]:
    """Ingest one device per item (external id, platform, vendor id) as the API does; ``check(i)`` after each."""
    latencies = []
    for n, (external_id, platform, vendor_id) in enumerate(items):
        started = time.perf_counter()
        with db.session() as session:
            result = record_devices(
                session,
                workspace_id,
                [{"external_id": external_id, "platform": platform, "vendor_device_id": vendor_id}],
            )
            apply_changes(session, workspace_id, result.changes)
        latencies.append(time.perf_counter() - started)
        check(n)
        if (n + 1) % 50 == 0:
            log(f"  {n + 1} device ingestions, p50 so far {statistics.median(latencies) * 1000:.1f} ms")
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    n = args.users
    ids = generate(db, n, args.shared)
    # The same ingestion before anything is shared: what a device add costs here without shared segments.
    rng = random.Random(5)
    log(f"baseline: {args.samples} single-device ingestions in the target before sharing")
    plain = [(f"t{rng.randint(1, n)}", "ios", f"plain-{i}") for i in range(args.samples)]
    baseline = device_adds(db, ids["target"], plain, lambda i: None)
    first_s, proxy_id, members = first_evaluation(db, ids)
    log(f"first evaluation: {first_s:.2f} s, {members} target members")

    rng = random.Random(11)
    # Target users whose device is their own and who are not members; each gets a source VIP's device id.
    with db.session() as session:
        candidates = session.execute(
            select(User.id, User.external_id)
            .join(Device, Device.user_id == User.id)
            .where(User.workspace_id == ids["target"], Device.vendor_device_id.like("tgt-%"))
            .order_by(User.id)
            .limit(20 * args.samples)
        ).all()
    picked = rng.sample(candidates, args.samples)
    vips = [2 * rng.randint(1, n // 2) for _ in picked]  # even source users are VIPs
    items = [(ext, "ios" if v % 2 == 0 else "android", f"src-{v}") for (_, ext), v in zip(picked, vips, strict=True)]

    def entered(i: int) -> None:
        assert is_member(db, proxy_id, picked[i][0]), f"target user {picked[i][0]} did not enter"

    log(f"target side: {args.samples} single-device ingestions")
    target_latencies = device_adds(db, ids["target"], items, entered)

    # Source VIPs get the device id of a target user that matched nobody: that user enters.
    with db.session() as session:
        lonely = session.execute(
            select(User.id, Device.platform, Device.vendor_device_id)
            .join(Device, Device.user_id == User.id)
            .where(User.workspace_id == ids["target"], Device.vendor_device_id.like("tgt-%"))
            .order_by(User.id.desc())
            .limit(20 * args.samples)
        ).all()
    lonely = rng.sample([r for r in lonely if r.id not in {p[0] for p in picked}], args.samples)
    source_items = [(f"s{2 * rng.randint(1, n // 2)}", r.platform.value, r.vendor_device_id) for r in lonely]

    def matched(i: int) -> None:
        assert is_member(db, proxy_id, lonely[i].id), f"target user {lonely[i].id} did not enter"

    log(f"source side: {args.samples} single-device ingestions")
    source_latencies = device_adds(db, ids["source"], source_items, matched)
    return {
        "users_per_workspace": n,
        "shared_device_percent": args.shared,
        "database": db.dialect,
        "target_members": members,
        "first_evaluation_s": round(first_s, 3),
        "baseline_device_add_p50_ms": round(statistics.median(baseline) * 1000, 2),
        "baseline_device_add_p95_ms": round(percentile(baseline, 95) * 1000, 2),
        "device_add_p50_ms": round(statistics.median(target_latencies) * 1000, 2),
        "device_add_p95_ms": round(percentile(target_latencies, 95) * 1000, 2),
        "source_device_add_p50_ms": round(statistics.median(source_latencies) * 1000, 2),
        "source_device_add_p95_ms": round(percentile(source_latencies, 95) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="users in each workspace")
    parser.add_argument("--shared", type=int, default=30, help="percent of target devices that a source user has")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--samples", type=int, default=200, help="device ingestions measured on each side")
    args = parser.parse_args(argv)

    with scratch_database(args.database_url, prefix="connector_bench") as url:
        log(f"database {url.split('@')[-1]}")
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
