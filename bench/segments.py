"""Segment engine benchmark: full refresh, incremental latency, and a naive per-user baseline.

    .venv/bin/python bench/segments.py --users 100000
    .venv/bin/python bench/segments.py --users 1000000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

What it does, printing progress as it goes:

1. Builds a database: by default a temporary SQLite file (deleted at the end). With a PostgreSQL URL, the URL's
   database is used only to create a scratch database ``connector_bench_<random>`` next to it, which is migrated,
   filled, measured and dropped at the end (the given database is never written).
2. Generates N users (attributes, tags), N/20 accounts, ~10 events per user over 90 days (a fifth of them page
   views), a device for half the users and an order for a third — set-based ``INSERT … SELECT`` over a number
   series, so a million users load in minutes.
3. Defines 20 segments (16 user, 4 account) mixing every kind of leaf: attributes and built-in fields, account
   attributes, tags, events with counts, windows and property filters, page views, devices, objects, users
   aggregations, segment and account-segment references, and all/any/none groups.
4. Measures the full refresh of the 20 segments from empty membership (every member enters, history and
   ``Segments`` are written) and again with membership current (``full_refresh_steady_s``), p50/p95 of ingesting
   one event and reading the person's ``Segments`` back (the API's path: ``track`` + ``apply_changes`` in one
   transaction, then a read), and a naive baseline: load each of 10,000 users' data (and their accounts') and
   evaluate the same segments in Python, one subject at a time.

The last line is one JSON object: users, events, segments, full_refresh_s, full_refresh_steady_s,
incremental_p50_ms, incremental_p95_ms, naive_speedup (naive seconds per subject / SQL refresh seconds per subject)
and naive_mismatches (subjects on which the Python evaluation and the SQL disagree; 0 expected).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connector import create_app
from connector.computed import SEGMENTS, get_computed
from connector.config import Settings
from connector.db import Database
from connector.ingest.events import track
from connector.migrate import upgrade
from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    Company,
    ComputedValue,
    Device,
    Event,
    EventKind,
    ObjectRecord,
    ObjectType,
    Segment,
    SegmentMembership,
    SegmentMembershipEvent,
    SubjectType,
    User,
    UserTag,
    Workspace,
)
from connector.segments import conditions as c
from connector.segments.edges import EDGE_INTERVAL, refresh_window_edges
from connector.segments.incremental import apply_changes
from connector.segments.run import refresh_segments
from connector.segments.sliding import refresh_time_relative_segments
from connector.segments.validation import parse_conditions
from connector.tenancy import create_company, create_member, create_token, create_workspace
from connector.testing.scratch import scratch_database

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = 86_400


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the database ----------------------------------------------------------------------------------------------------


class Sql:
    """The few generator expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def series(self, n: int, body: str) -> str:
        """``body`` (a SELECT list and clauses using ``i``) over i = 1..n."""
        if self.pg:
            return f"SELECT {body.replace('FROM_SERIES', f'FROM generate_series(1, CAST({n} AS bigint)) AS s(i)')}"
        cte = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
        return cte + f"SELECT {body.replace('FROM_SERIES', 'FROM s')}"

    @staticmethod
    def pick(expression: str, values: list[str]) -> str:
        cases = " ".join(f"WHEN {k} THEN '{v}'" for k, v in enumerate(values))
        return f"(CASE ({expression}) % {len(values)} {cases} END)"

    def ago(self, seconds: str) -> str:
        """NOW minus an integer number of seconds, stored as the ORM stores timestamps."""
        if self.pg:
            return f"(CAST(:now AS timestamptz) - ({seconds}) * interval '1 second')"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :now, '-' || ({seconds}) || ' seconds') || '.000000')"

    def json(self, *pairs: str) -> str:
        return ("jsonb_build_object(" if self.pg else "json_object(") + ", ".join(pairs) + ")"

    def empty_json(self) -> str:
        return "'{}'::jsonb" if self.pg else "'{}'"

    def now(self) -> str:
        return NOW.isoformat() if self.pg else NOW.strftime("%Y-%m-%d %H:%M:%S")


def generate(db: Database, users: int) -> tuple[int, dict[str, int]]:
    """Fill a fresh database; returns the workspace id and the row counts."""
    sql = Sql(db.dialect)
    accounts = max(1, users // 20)
    now = sql.now()
    with db.session() as session:
        company = create_company(session, "Bench Inc")
        workspace_id = create_workspace(session, company, "Bench", slug="bench").id
    plans = ["free", "free", "free", "free", "free", "free", "pro", "pro", "pro", "enterprise"]
    countries = ["FR", "DE", "ES", "IT", "GB", "US", "CA"]
    domains = ["gmail.com", "example.com", "acme.com", "yahoo.com", "corp.example"]
    stamp = sql.ago("0")

    user_attributes = sql.json(
        "'plan'", sql.pick("i * 7", plans), "'country'", sql.pick("i", countries), "'ltv'", "(i * 37) % 1000"
    )
    user_columns = (
        f"i, :ws, 'u' || i, 'u' || i || '@' || {sql.pick('i', domains)}, {user_attributes}, "
        f"{sql.ago(f'(i * 7919) % {365 * DAY}')}, {stamp} FROM_SERIES"
    )
    account_attributes = sql.json(
        "'plan'", sql.pick("i * 7", ["free", "pro", "enterprise"]), "'employees'", "(i * 53) % 500"
    )
    account_columns = (
        f"i, :ws, 'a' || i, 'd' || i || '.example', 'Account ' || i, {account_attributes}, "
        f"{sql.ago(f'(i * 7919) % {365 * DAY}')}, {stamp} FROM_SERIES"
    )
    # Every fifth event is a page view; the others cycle through four track events, purchases carrying an amount.
    event_name = sql.pick("i / 5", ["purchase", "login", "view_item", "add_to_cart"])
    page_url = "'https://shop.example/' || " + sql.pick("i / 5", ["offers/", "p/", "p/", "blog/"]) + " || (i % 97)"
    amount = sql.json("'amount'", "(i * 7) % 300")
    event_columns = (
        f":ws, 1 + (i % {users}), CASE WHEN i % 5 = 0 THEN 'page' ELSE 'track' END, "
        f"CASE WHEN i % 5 = 0 THEN 'page' ELSE {event_name} END, "
        f"CASE WHEN i % 5 = 0 THEN {page_url} END, "
        f"CASE WHEN i % 5 <> 0 AND (i / 5) % 4 = 0 THEN {amount} ELSE {sql.empty_json()} END, "
        f"{sql.ago(f'(i * 104729) % {90 * DAY}')}, {stamp}, 'e' || i FROM_SERIES"
    )
    device_columns = (
        f":ws, i, {sql.pick('i / 2', ['ios', 'android', 'web'])}, 'd' || i, "
        f"{sql.ago(f'(i * 31) % {60 * DAY}')}, {stamp} FROM_SERIES WHERE i % 2 = 0"
    )
    order_fields = sql.json(
        "'status'", sql.pick("i / 3", ["paid", "paid", "refunded", "pending"]), "'amount'", "(i * 13) % 500"
    )
    order_columns = f":ws, :type_id, 'o' || i, {order_fields}, i, {stamp}, {stamp} FROM_SERIES WHERE i % 3 = 0"
    tag = "CASE WHEN i % 10 = 0 THEN 'vip' ELSE 'newsletter' END"
    steps = [
        (
            "users",
            "users (id, workspace_id, external_id, email, attributes, created_at, updated_at)",
            users,
            user_columns,
        ),
        (
            "accounts",
            "accounts (id, workspace_id, external_id, domain, name, attributes, created_at, updated_at)",
            accounts,
            account_columns,
        ),
        (
            "account links",
            "account_users (account_id, user_id, workspace_id)",
            users,
            f"1 + (i % {accounts}), i, :ws FROM_SERIES",
        ),
        (
            "tags",
            "user_tags (user_id, tag, workspace_id)",
            users,
            f"i, {tag}, :ws FROM_SERIES WHERE i % 10 = 0 OR i % 3 = 0",
        ),
        (
            "events",
            "events (workspace_id, user_id, kind, name, url, properties, occurred_at, received_at, message_id)",
            users * 10,
            event_columns,
        ),
        (
            "devices",
            "devices (workspace_id, user_id, platform, vendor_device_id, last_seen_at, created_at)",
            users,
            device_columns,
        ),
        (
            "orders",
            "objects (workspace_id, object_type_id, external_id, fields, user_id, created_at, updated_at)",
            users,
            order_columns,
        ),
    ]
    counts: dict[str, int] = {}
    with db.engine.begin() as conn:
        type_id = conn.execute(
            text("INSERT INTO object_types (workspace_id, name, created_at) VALUES (:ws, 'order', :now) RETURNING id"),
            {"ws": workspace_id, "now": NOW if sql.pg else now + ".000000"},
        ).scalar_one()
        for label, into, n, columns in steps:
            started = time.perf_counter()
            conn.execute(
                text(f"INSERT INTO {into} {sql.series(n, columns)}"),
                {"ws": workspace_id, "now": now, "type_id": type_id},
            )
            log(f"generated {label} ({time.perf_counter() - started:.1f} s)")
        if sql.pg:
            for table in ("users", "accounts"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
        for model in (User, Account, AccountUser, UserTag, Event, Device, ObjectRecord):
            counts[model.__tablename__] = conn.execute(select(func.count()).select_from(model)).scalar_one()
    analyse(db)
    return workspace_id, counts


def analyse(db: Database) -> None:
    """Statistics for the planner after a bulk load, as autovacuum would gather them soon after."""
    started = time.perf_counter()
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    log(f"analysed ({time.perf_counter() - started:.1f} s)")


# -- the segments ----------------------------------------------------------------------------------------------------


def window(amount: int, unit: str = "days") -> dict:
    return {"within_last": {"amount": amount, "unit": unit}}


def attribute(name: str, operator: str, value: Any = None, **extra) -> dict:
    node = {"type": "attribute", "name": name, "operator": operator, **extra}
    return node if value is None else {**node, "value": value}


class Api:
    """The HTTP API in process (Flask's test client: authentication, validation, the service, the JSON answer)."""

    def __init__(self, db: Database, workspace_id: int) -> None:
        with db.session() as session:
            workspace = session.get(Workspace, workspace_id)
            company = session.get(Company, workspace.company_id)
            member = create_member(session, company, "segments@bench.example", company_admin=True)
            token = create_token(session, member)
            self.slug = workspace.slug
        self.client = create_app(
            Settings(database_url=db.url, secret_key="bench-secret-key"), database=db
        ).test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(f"/api/v1/workspaces/{self.slug}{path}", json=body, headers=self.headers)
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    def get(self, path: str) -> dict:
        return self.client.get(f"/api/v1/workspaces/{self.slug}{path}", headers=self.headers).get_json()


def _references(tree: Any) -> set[int]:
    if isinstance(tree, dict):
        found = {tree["segment_id"]} if "segment_id" in tree else set()
        return found.union(*(_references(v) for v in tree.values()))
    if isinstance(tree, list):
        return set().union(*(_references(v) for v in tree))
    return set()


def define_segments(db: Database, workspace_id: int, timings: dict[str, Any] | None = None) -> list[int]:
    """Twenty segments over every kind of leaf, created through the API as a user would: each POST answers at once
    (``evaluation: pending``) and the segment is evaluated on the executor; a segment that references another is
    created once that one is evaluated (until then the API refuses the reference). ``timings`` gets the response
    times (ms) and the seconds from the first POST until every segment is evaluated."""
    ids: dict[str, int] = {}
    api = Api(db, workspace_id)
    responses: list[float] = []
    started = time.perf_counter()

    def wait_evaluated(segment_ids: set[int]) -> None:
        for segment_id in segment_ids:
            while (status := api.get(f"/segments/{segment_id}")["evaluation"]["status"]) != "done":
                assert status != "failed", api.get(f"/segments/{segment_id}")
                time.sleep(0.05)

    def add(name: str, tree: dict, subject_type: str = "user") -> None:
        wait_evaluated(_references(tree))
        before = time.perf_counter()
        answer = api.post("/segments", {"name": name, "subject_type": subject_type, "conditions": tree})
        responses.append((time.perf_counter() - before) * 1000)
        assert answer["evaluation"]["status"] == "pending", answer
        ids[name] = answer["id"]

    add("Pro", attribute("plan", "eq", "pro"))
    add("High value", attribute("ltv", "gt", 500))
    add("Southern Europe", attribute("country", "in", ["FR", "ES", "IT"]))
    add("Gmail", {"type": "attribute", "field": "email", "operator": "ends_with", "value": "@gmail.com"})
    add(
        "Signed up this month",
        {
            "type": "attribute",
            "field": "created_at",
            "operator": "within_last",
            "value": {"amount": 30, "unit": "days"},
        },
    )
    add("VIP", {"type": "tag", "value": "vip"})
    add("Bought this week", {"type": "event", "name": "purchase", "window": window(7)})
    add(
        "Frequent buyers",
        {"type": "event", "name": "purchase", "count": {"operator": "at_least", "value": 2}, "window": window(30)},
    )
    add(
        "Big spenders",
        {
            "type": "event",
            "name": "purchase",
            "window": window(90),
            "filters": [{"property": "amount", "operator": "gt", "value": 200}],
        },
    )
    add("Dormant", {"type": "event", "name": "login", "operator": "not_performed", "window": window(14)})
    add(
        "Offer viewers",
        {
            "type": "page_view",
            "url": {"operator": "contains", "value": "/offers/"},
            "count": {"operator": "at_least", "value": 1},
            "window": window(7),
        },
    )
    add("iOS", {"type": "device", "platform": "ios"})
    add("Active on a device", {"type": "device", "last_seen": window(30)})
    add(
        "Paid orders",
        {"type": "object", "object_type": "order", "filters": [{"field": "status", "operator": "eq", "value": "paid"}]},
    )
    add("At enterprise accounts", attribute("plan", "eq", "enterprise", of="account"))
    add(
        "Pro buyers",
        {
            "type": "all",
            "children": [
                {"type": "segment", "segment_id": ids["Pro"]},
                {"type": "segment", "segment_id": ids["Bought this week"]},
            ],
        },
    )
    add("Enterprise accounts", attribute("plan", "eq", "enterprise"), "account")
    add(
        "Accounts with recent buyers",
        {
            "type": "users",
            "quantifier": "any",
            "condition": {"type": "event", "name": "purchase", "window": window(30)},
        },
        "account",
    )
    add(
        "Accounts with 3+ pro users",
        {
            "type": "users",
            "quantifier": "at_least",
            "count": 3,
            "condition": {"type": "segment", "segment_id": ids["Pro"]},
        },
        "account",
    )
    add("Colleagues of buyers who did not buy", {"type": "all", "children": [
        {"type": "account_segment", "segment_id": ids["Accounts with recent buyers"]},
        {"type": "none", "children": [{"type": "event", "name": "purchase", "window": window(30)}]},
        {"type": "any", "children": [{"type": "tag", "value": "newsletter"}, attribute("plan", "ne", "free")]},
    ]})  # fmt: skip
    wait_evaluated(set(ids.values()))
    if timings is not None:
        timings["create_response_ms"] = responses
        timings["create_evaluated_s"] = time.perf_counter() - started
    return list(ids.values())


# -- measurements ----------------------------------------------------------------------------------------------------


def full_refresh(db: Database, workspace_id: int, from_empty: bool) -> tuple[float, datetime]:
    if from_empty:
        with db.session() as session:
            for model in (SegmentMembershipEvent, SegmentMembership, ComputedValue):
                session.execute(delete(model))
        analyse(db)
    with db.session() as session:
        names = dict(
            session.execute(select(Segment.id, Segment.name).where(Segment.workspace_id == workspace_id)).all()
        )
    started = last = time.perf_counter()

    def progress(segment_id: int) -> None:
        nonlocal last
        log(f"  {names[segment_id]}: {time.perf_counter() - last:.2f} s")
        last = time.perf_counter()

    with db.session() as session:
        evaluation = refresh_segments(session, workspace_id, progress=progress)
    elapsed = time.perf_counter() - started
    log(f"full refresh ({'from empty' if from_empty else 'steady'}): {elapsed:.2f} s, {evaluation.summary()}")
    if from_empty:
        analyse(db)
    return elapsed, evaluation.at


def incremental_latencies(db: Database, workspace_id: int, users: int, samples: int) -> list[float]:
    """Ingest one purchase for a random user (track + apply_changes in one transaction) and read Segments back."""
    rng = random.Random(7)
    latencies = []
    for n in range(samples):
        user_id = rng.randint(1, users)
        item = {"external_id": f"u{user_id}", "name": "purchase", "properties": {"amount": 250}}
        started = time.perf_counter()
        with db.session() as session:
            result = track(session, workspace_id, [item])
            apply_changes(session, workspace_id, result.changes)
        with db.session() as session:
            names = get_computed(session, SubjectType.USER, [user_id], [SEGMENTS])[user_id][SEGMENTS]
        latencies.append(time.perf_counter() - started)
        assert "Bought this week" in names, names
        if (n + 1) % 50 == 0:
            log(f"  {n + 1} ingestions, p50 so far {statistics.median(latencies) * 1000:.1f} ms")
    return latencies


def window_edges(db: Database, workspace_id: int, users: int, probes: int, ticks: int) -> dict[str, Any]:
    """Membership following window edges, in real time: ``probes`` people without a recent purchase buy with
    ``occurred_at`` 10-80 s short of 7 days ago (ingested as the API does: "Bought this week" takes them in), then
    the edges job runs every ``EDGE_INTERVAL`` (as the scheduler runs it); each probe's lag is from the instant its
    purchase left the window to the end of the run that took it out. Before that, the sliding refresh as it was (every
    time-relative segment evaluated whole) is timed once for comparison."""
    with db.session() as session:
        started = time.perf_counter()
        refresh_time_relative_segments(session, workspace_id)
        whole_s = time.perf_counter() - started
    log(f"sliding refresh of every time-relative segment, whole (as before): {whole_s:.2f} s")
    with db.session() as session:
        recent = select(Event.user_id).where(
            Event.workspace_id == workspace_id,
            Event.name == "purchase",
            Event.occurred_at >= datetime.now(UTC) - timedelta(days=7, minutes=5),
        )
        candidates = session.scalars(select(User.id).where(User.workspace_id == workspace_id, User.id.not_in(recent)))
        chosen = random.Random(11).sample(list(candidates), probes)
    now = datetime.now(UTC)
    edges = {}
    with db.session() as session:
        for n, user_id in enumerate(chosen):
            at = now - timedelta(days=7) + timedelta(seconds=10 + 70 * n / probes)
            item = {"external_id": f"u{user_id}", "name": "purchase", "occurred_at": at.isoformat()}
            apply_changes(session, workspace_id, track(session, workspace_id, [item]).changes)
            edges[user_id] = at + timedelta(days=7)
    bought = _members_of(db, workspace_id, "Bought this week", chosen)
    assert bought == set(chosen), f"{len(bought)} of {len(chosen)} probes entered"
    lags: list[float] = []
    durations: list[float] = []
    subjects: list[int] = []
    for _ in range(ticks):
        time.sleep(max(0.0, EDGE_INTERVAL.total_seconds() - (durations[-1] if durations else 0.0)))
        started = time.perf_counter()
        with db.session() as session:
            result = refresh_window_edges(session, workspace_id)
        durations.append(time.perf_counter() - started)
        subjects.append(result.subjects)
        ended = datetime.now(UTC)
        still = _members_of(db, workspace_id, "Bought this week", [u for u in chosen if u in edges])
        for user_id in [u for u in edges if u not in still]:
            lags.append((ended - edges.pop(user_id)).total_seconds())
        log(f"  edges run: {durations[-1]:.2f} s, {result.subjects} subjects read, {len(edges)} probes still in")
    assert not edges, f"{len(edges)} probes never left"
    return {
        "window_edge_lag_p95_s": round(percentile(lags, 95), 1),
        "window_edge_lag_max_s": round(max(lags), 1),
        "sliding_refresh_s": round(percentile(durations, 95), 3),
        "sliding_refresh_subjects_max": max(subjects),
        "sliding_refresh_whole_s": round(whole_s, 2),
    }


def _members_of(db: Database, workspace_id: int, name: str, user_ids: list[int]) -> set[int]:
    with db.session() as session:
        segment_id = session.scalar(
            select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.name == name)
        )
        query = select(SegmentMembership.subject_id).where(
            SegmentMembership.segment_id == segment_id, SegmentMembership.subject_id.in_(user_ids)
        )
        return set(session.scalars(query))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- the naive baseline ----------------------------------------------------------------------------------------------


class Naive:
    """Evaluate segment trees in Python for one subject at a time, loading each subject's data with its own
    queries: what the engine replaces."""

    def __init__(self, session, workspace_id: int, segments: list[Segment], now: datetime) -> None:
        self.session = session
        self.now = now
        self.workspace_id = workspace_id
        self.segments = {s.id: s for s in segments}
        self.trees = {s.id: parse_conditions(s.conditions, s.subject_type) for s in segments}
        self.type_names = dict(session.execute(select(ObjectType.id, ObjectType.name)).all())
        self._users: dict[int, dict] = {}
        self._accounts: dict[int, dict] = {}

    # data, one subject at a time

    def user(self, user_id: int) -> dict:
        if user_id not in self._users:
            s = self.session
            row = s.get(User, user_id)
            self._users[user_id] = {
                "type": SubjectType.USER,
                "fields": {"email": row.email, "external_id": row.external_id, "created_at": row.created_at},
                "attributes": row.attributes or {},
                "tags": set(s.scalars(select(UserTag.tag).where(UserTag.user_id == user_id))),
                "events": s.execute(
                    select(Event.kind, Event.name, Event.url, Event.properties, Event.occurred_at).where(
                        Event.user_id == user_id
                    )
                ).all(),
                "devices": s.execute(
                    select(Device.platform, Device.last_seen_at).where(Device.user_id == user_id)
                ).all(),
                "objects": s.execute(
                    select(ObjectRecord.object_type_id, ObjectRecord.fields).where(ObjectRecord.user_id == user_id)
                ).all(),
                "accounts": list(s.scalars(select(AccountUser.account_id).where(AccountUser.user_id == user_id))),
                "memo": {},
            }
        return self._users[user_id]

    def account(self, account_id: int) -> dict:
        if account_id not in self._accounts:
            s = self.session
            row = s.get(Account, account_id)
            self._accounts[account_id] = {
                "type": SubjectType.ACCOUNT,
                "fields": {
                    "domain": row.domain,
                    "name": row.name,
                    "external_id": row.external_id,
                    "created_at": row.created_at,
                },
                "attributes": row.attributes or {},
                "tags": set(s.scalars(select(AccountTag.tag).where(AccountTag.account_id == account_id))),
                "objects": s.execute(
                    select(ObjectRecord.object_type_id, ObjectRecord.fields).where(
                        ObjectRecord.account_id == account_id
                    )
                ).all(),
                "users": list(s.scalars(select(AccountUser.user_id).where(AccountUser.account_id == account_id))),
                "memo": {},
            }
        return self._accounts[account_id]

    # evaluation

    def in_segment(self, segment_id: int, subject: dict) -> bool:
        memo = subject["memo"]
        if segment_id not in memo:
            memo[segment_id] = self.matches(self.trees[segment_id], subject)
        return memo[segment_id]

    def matches(self, node, subject: dict) -> bool:
        if isinstance(node, c.Group):
            results = (self.matches(child, subject) for child in node.children)
            return all(results) if node.type == "all" else any(results) if node.type == "any" else not any(results)
        if isinstance(node, c.AttributeCondition):
            owners = [self.account(a) for a in subject["accounts"]] if node.of == "account" else [subject]
            return any(self.compare(self.value_of(node, o), node) for o in owners)
        if isinstance(node, c.TagCondition):
            return (node.value in subject["tags"]) == (node.operator == "has")
        if isinstance(node, c.EventCondition):
            n = sum(
                1
                for kind, name, _, props, at in subject["events"]
                if kind == EventKind.TRACK
                and name == node.name
                and in_window(at, node.window, self.now)
                and all(self.compare((props or {}).get(f.property, MISSING), f) for f in node.filters)
            )
            return counted(n, node.count) == (node.operator == "performed")
        if isinstance(node, c.PageViewCondition):
            n = sum(
                1
                for kind, _, url, _, at in subject["events"]
                if kind == EventKind.PAGE and in_window(at, node.window, self.now) and url_matches(url, node.url)
            )
            return counted(n, node.count) == (node.operator == "viewed")
        if isinstance(node, c.DeviceCondition):
            found = any(
                (node.platform is None or platform == node.platform) and in_window(seen, node.last_seen, self.now)
                for platform, seen in subject["devices"]
            )
            return found == (node.operator == "has")
        if isinstance(node, c.ObjectCondition):
            n = sum(
                1
                for type_id, fields in subject["objects"]
                if self.type_names.get(type_id) == node.object_type
                and all(self.compare((fields or {}).get(f.field, MISSING), f) for f in node.filters)
            )
            return counted(n, node.count) == (node.operator == "has")
        if isinstance(node, c.SegmentCondition):
            return self.in_segment(node.segment_id, subject) == (node.operator == "in")
        if isinstance(node, c.AccountSegmentCondition):
            found = any(self.in_segment(node.segment_id, self.account(a)) for a in subject["accounts"])
            return found == (node.operator == "in")
        if isinstance(node, c.UsersCondition):
            results = [self.matches(node.condition, self.user(u)) for u in subject["users"]]
            n = sum(results)
            return {
                "any": n > 0,
                "none": n == 0,
                "all": bool(results) and n == len(results),
                "at_least": n >= (node.count or 0),
                "at_most": n <= (node.count or 0),
            }[node.quantifier]
        raise NotImplementedError(type(node).__name__)

    @staticmethod
    def value_of(node, owner: dict) -> Any:
        if node.field is not None:
            return owner["fields"].get(node.field, MISSING)
        return owner["attributes"].get(node.name, MISSING)

    def compare(self, value: Any, node) -> bool:
        op = node.operator
        if op in ("exists", "not_exists"):
            return (value is not MISSING and value is not None) == (op == "exists")
        kind = node.value_type
        if kind == "date":
            value = value if isinstance(value, datetime) else c.parse_date(value) if isinstance(value, str) else None
            if value is None:
                return False
            if op == "within_last":
                return self.now - c.Duration.model_validate(node.value).as_timedelta() <= value <= self.now
            raise NotImplementedError(op)
        if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            return False
        if kind == "string" and not isinstance(value, str):
            return False
        if kind == "boolean" and not isinstance(value, bool):
            return False
        expected = node.value
        return {
            "eq": lambda: value == expected,
            "ne": lambda: value != expected,
            "in": lambda: value in expected,
            "not_in": lambda: value not in expected,
            "gt": lambda: value > expected,
            "gte": lambda: value >= expected,
            "lt": lambda: value < expected,
            "lte": lambda: value <= expected,
            "contains": lambda: expected in value,
            "starts_with": lambda: value.startswith(expected),
            "ends_with": lambda: value.endswith(expected),
        }[op]()


MISSING = object()


def in_window(at: datetime, w, now: datetime) -> bool:
    if w is None:
        return True
    start, end, inclusive = w.bounds(now)
    return start <= at <= end if inclusive else start <= at < end


def counted(n: int, count) -> bool:
    return {"at_least": n >= count.value, "at_most": n <= count.value, "exactly": n == count.value}[count.operator]


def url_matches(url: str | None, match) -> bool:
    if match is None:
        return True
    if url is None:
        return False
    if match.operator == "equals":
        return url == match.value
    if match.operator == "contains":
        return match.value in url
    if match.operator == "starts_with":
        return url.startswith(match.value)
    pattern = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in match.value)
    return re.fullmatch(pattern, url, re.DOTALL) is not None


def naive_baseline(db: Database, workspace_id: int, users: int, sample: int, now: datetime) -> tuple[float, int, int]:
    """Seconds and subjects for the per-subject evaluation of every segment, and how many subjects it disagrees
    with the stored (SQL) membership on."""
    rng = random.Random(11)
    user_ids = sorted(rng.sample(range(1, users + 1), min(sample, users)))
    with db.session() as session:
        segments = list(session.scalars(select(Segment).where(Segment.workspace_id == workspace_id)))
        stored = set(session.execute(select(SegmentMembership.segment_id, SegmentMembership.subject_id)).all())
        started = time.perf_counter()
        naive = Naive(session, workspace_id, segments, now)
        results: dict[tuple[SubjectType, int], set[int]] = {}
        for user_id in user_ids:
            subject = naive.user(user_id)
            results[(SubjectType.USER, user_id)] = {
                s.id for s in segments if s.subject_type == SubjectType.USER and naive.in_segment(s.id, subject)
            }
            for account_id in subject["accounts"]:
                key = (SubjectType.ACCOUNT, account_id)
                if key not in results:
                    account = naive.account(account_id)
                    results[key] = {
                        s.id
                        for s in segments
                        if s.subject_type == SubjectType.ACCOUNT and naive.in_segment(s.id, account)
                    }
        elapsed = time.perf_counter() - started
    by_type = {s.id: s.subject_type for s in segments}
    mismatches = sum(
        1
        for (subject_type, subject_id), found in results.items()
        if found != {sid for sid in by_type if by_type[sid] == subject_type and (sid, subject_id) in stored}
    )
    return elapsed, len(results), mismatches


# -- main ------------------------------------------------------------------------------------------------------------


def measure(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    workspace_id, counts = generate(db, args.users)
    log(f"rows: {counts}")
    timings: dict[str, Any] = {}
    segment_ids = define_segments(db, workspace_id, timings)
    responses = timings["create_response_ms"]
    log(
        f"defined {len(segment_ids)} segments through the API: answers p50 {statistics.median(responses):.0f} ms, "
        f"max {max(responses):.0f} ms; all evaluated {timings['create_evaluated_s']:.1f} s after the first"
    )

    from_empty, _ = full_refresh(db, workspace_id, from_empty=True)
    steady, evaluated_at = full_refresh(db, workspace_id, from_empty=False)
    # Before any ingestion, so both evaluations see the same data at the same instant.
    log(f"naive baseline over {args.naive_users} users")
    naive_s, naive_subjects, mismatches = naive_baseline(db, workspace_id, args.users, args.naive_users, evaluated_at)
    log(f"naive: {naive_s:.1f} s for {naive_subjects} subjects, {mismatches} disagreements with the SQL")
    log(f"incremental: {args.samples} single-event ingestions")
    latencies = incremental_latencies(db, workspace_id, args.users, args.samples)
    log(f"window edges: {args.edge_probes} probes, {args.edge_runs} runs of the edges job")
    edges = window_edges(db, workspace_id, args.users, args.edge_probes, args.edge_runs)
    subjects = counts["users"] + counts["accounts"]
    return {
        "users": counts["users"],
        "accounts": counts["accounts"],
        "events": counts["events"],
        "segments": len(segment_ids),
        "database": db.dialect,
        "full_refresh_s": round(from_empty, 3),
        "full_refresh_steady_s": round(steady, 3),
        "incremental_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "incremental_p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "naive_s_per_subject": naive_s / naive_subjects,
        "sql_s_per_subject": from_empty / subjects,
        "naive_speedup": round((naive_s / naive_subjects) / (from_empty / subjects), 1),
        "naive_mismatches": mismatches,
        **edges,
        "create_response_ms": round(percentile(responses, 95), 1),
        "create_response_max_ms": round(max(responses), 1),
        "create_evaluated_s": round(timings["create_evaluated_s"], 2),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--samples", type=int, default=200, help="incremental ingestions measured")
    parser.add_argument("--naive-users", type=int, default=10_000)
    parser.add_argument("--edge-probes", type=int, default=50, help="people whose purchase leaves a window")
    parser.add_argument("--edge-runs", type=int, default=5, help="runs of the edges job, 30 s apart")
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
