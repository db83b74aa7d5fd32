"""Benchmark: track events per second, in-process and through gunicorn on loopback.

    .venv/bin/python bench/ingest.py                                   # a fresh SQLite file in a temp dir
    .venv/bin/python bench/ingest.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

With a PostgreSQL URL, the URL's database is only used to create (and at the end drop) a scratch database next to
it, so any reachable server works and nothing of the named database is touched. The scratch database is migrated,
a workspace and a token are seeded, ``--users`` users are identified (timed as well), and then ``--events`` events
are posted to ``/track`` in batches of ``--batch``: once through the WSGI app in-process (Flask's test client, one
thread), once through ``gunicorn -w --workers`` from ``--clients`` client threads. Request bodies are encoded before
the clock starts. Progress goes to stderr; stdout gets one line, a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.segments import define_segments  # noqa: E402
from connector import create_app  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.db import Database  # noqa: E402
from connector.migrate import upgrade  # noqa: E402
from connector.models import Event, Role, User, Workspace  # noqa: E402
from connector.tenancy import create_company, create_member, create_token, create_workspace  # noqa: E402
from connector.testing.scratch import scratch_database  # noqa: E402

EVENT_NAMES = ["Page Viewed", "Signed Up", "Order Completed", "Product Added", "Trial Started", "Invite Sent"]
# With --segments: the events the twenty segments of bench/segments.py count, in the mix.
SEGMENT_EVENT_NAMES = ["purchase", "login", "purchase", "login"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed(db: Database) -> tuple[str, str]:
    with db.session() as session:
        company = create_company(session, "Bench Inc")
        workspace = create_workspace(session, company, "Bench", slug="bench")
        member = create_member(session, company, "bench@bench.example", roles={workspace: Role.WORKSPACE_ADMIN})
        return workspace.slug, create_token(session, member, "bench")


def batches(
    kind: str, count: int, size: int, users: int, rng: random.Random, names: list[str] = EVENT_NAMES
) -> list[bytes]:
    """Request bodies, encoded up front: ``count`` items in batches of ``size``."""
    now = datetime.now(UTC)
    bodies = []
    for start in range(0, count, size):
        items = []
        for _ in range(min(size, count - start)):
            user = rng.randrange(users)
            if kind == "identify":
                items.append(
                    {
                        "external_id": f"user-{start + len(items)}",
                        "email": f"user-{start + len(items)}@bench.example",
                        "attributes": {"plan": rng.choice(["free", "pro", "team"]), "seats": rng.randrange(1, 50)},
                        "tags": [rng.choice(["beta", "vip", "churn-risk"])],
                    }
                )
            else:
                items.append(
                    {
                        "external_id": f"user-{user}",
                        "name": rng.choice(names),
                        "message_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                        "occurred_at": (now - timedelta(seconds=rng.randrange(30 * 86400))).isoformat(),
                        "properties": {"value": rng.randrange(1000), "source": rng.choice(["ios", "web", "api"])},
                    }
                )
        bodies.append(json.dumps({"batch": items}).encode())
    return bodies


def run_inprocess(app, url: str, token: str, bodies: list[bytes], label: str) -> float:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    items = 0
    started = time.perf_counter()
    for index, body in enumerate(bodies, 1):
        response = client.post(url, data=body, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{label}: HTTP {response.status_code}: {response.get_data(as_text=True)[:500]}")
        items += len(response.json["results"])
        if index % 10 == 0 or index == len(bodies):
            elapsed = time.perf_counter() - started
            log(f"  {label} in-process: {items:,} items, {items / elapsed:,.0f}/s")
    return items / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(database_url: str, workers: int, threads: int) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, CONNECTOR_DATABASE_URL=database_url)
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-w", str(workers),
        "--threads", str(threads),
        "-b", f"127.0.0.1:{port}",
        "--log-level", "warning",
        "connector:create_app()",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass  # still booting
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_http(base: str, path: str, token: str, bodies: list[bytes], clients: int) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    done = {"items": 0}
    errors: list[str] = []
    started = time.perf_counter()

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    _, body = queue.pop(0)
                response = session.post(base + path, data=body, headers=headers, timeout=120)
                with lock:
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text[:500]}")
                        return
                    done["items"] += len(response.json()["results"])
                    if len(queue) % 10 == 0:
                        elapsed = time.perf_counter() - started
                        log(f"  gunicorn: {done['items']:,} items, {done['items'] / elapsed:,.0f}/s")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(errors[0])
    return done["items"] / (time.perf_counter() - started)


def db_workspace_id(db: Database, slug: str) -> int:
    with db.session() as session:
        return session.scalar(select(Workspace.id).where(Workspace.slug == slug))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--events", type=int, default=100_000, help="events per phase (in-process, gunicorn)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--users", type=int, default=20_000, help="users identified first; events pick among them")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    parser.add_argument("--clients", type=int, default=4, help="client threads posting to gunicorn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--segments",
        action="store_true",
        help="then track again with the 20 segments of bench/segments.py live (purchase and login events in the mix)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with scratch_database(args.database_url) as url:
        dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        log(f"database: fresh {dialect}; migrating")
        upgrade(url)
        db = Database(url)
        slug, token = seed(db)
        app = create_app(Settings(database_url=url), database=db)
        base_path = f"/api/v1/workspaces/{slug}"

        log(f"identifying {args.users:,} users")
        people = batches("identify", args.users, args.batch, args.users, rng)
        users_per_s = run_inprocess(app, base_path + "/identify", token, people, "identify")

        log(f"tracking {args.events:,} events in-process")
        inprocess = run_inprocess(
            app, base_path + "/track", token, batches("track", args.events, args.batch, args.users, rng), "track"
        )

        log(f"tracking {args.events:,} events through gunicorn -w {args.workers} --threads {args.threads}")
        bodies = batches("track", args.events, args.batch, args.users, rng)
        db.dispose()
        with gunicorn(url, args.workers, args.threads) as base:
            through_gunicorn = run_http(base, base_path + "/track", token, bodies, args.clients)

        with_segments = None
        if args.segments:
            log("defining the 20 segments of bench/segments.py (evaluated on the executor)")
            define_segments(db, db_workspace_id(db, slug))
            db.dispose()
            names = EVENT_NAMES + SEGMENT_EVENT_NAMES
            bodies = batches("track", args.events, args.batch, args.users, rng, names)
            log(f"tracking {args.events:,} events through gunicorn with the segments live")
            with gunicorn(url, args.workers, args.threads) as base:
                with_segments = run_http(base, base_path + "/track", token, bodies, args.clients)

        with db.session() as session:
            stored_events = session.scalar(select(func.count()).select_from(Event))
            stored_users = session.scalar(select(func.count()).select_from(User))
        db.dispose()
        phases = 3 if args.segments else 2
        if stored_events != phases * args.events:
            raise SystemExit(f"expected {phases * args.events} events stored, found {stored_events}")

    print(
        json.dumps(
            {
                "events_per_s_inprocess": round(inprocess),
                "events_per_s_gunicorn": round(through_gunicorn),
                "users_per_s_identify": round(users_per_s),
                **(
                    {"events_per_s_gunicorn_with_segments": round(with_segments), "segments_live": 20}
                    if with_segments is not None
                    else {}
                ),
                "load_1m": round(os.getloadavg()[0], 2),
                "events": args.events,
                "batch": args.batch,
                "users": stored_users,
                "stored_events": stored_events,
                "gunicorn": {"workers": args.workers, "threads": args.threads, "clients": args.clients},
                "database": dialect,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
