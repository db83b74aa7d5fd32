"""End to end, as a first-time user meets it: from the first ingest request to the last acknowledged record.

    .venv/bin/python bench/e2e.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

A new workspace gets, through the HTTP API (gunicorn), one segment and a HubSpot sync of every user with
``Segments`` as a multiple-checkbox property, to the bundled sandbox with no rate limit. Then the clock starts:
``--people`` people are sent by ``identify`` batches of ``--batch`` over HTTP, and one sync run is started from the
CLI (``connector syncs run``, a new process: its start, imports and the destination's preparation count). The clock
stops when the CLI returns, every record acknowledged. With a PostgreSQL URL a scratch database beside the one named
is used and dropped. Progress goes to stderr; stdout gets one line, a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import batches, gunicorn  # noqa: E402
from bench.sync import TOKEN, SandboxProcess  # noqa: E402
from connector.db import Database  # noqa: E402
from connector.migrate import upgrade  # noqa: E402
from connector.models import Role  # noqa: E402
from connector.tenancy import create_company, create_member, create_token, create_workspace  # noqa: E402
from connector.testing.scratch import scratch_database  # noqa: E402

SECRET_KEY = "e2e-bench-secret-key"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()

    with scratch_database(args.database_url) as url:
        upgrade(url)
        db = Database(url)
        with db.session() as session:
            company = create_company(session, "E2E Inc")
            workspace = create_workspace(session, company, "E2E", slug="e2e")
            member = create_member(session, company, "e2e@bench.example", roles={workspace: Role.WORKSPACE_ADMIN})
            token = create_token(session, member, "e2e")
        db.dispose()
        sandbox = SandboxProcess()
        os.environ["CONNECTOR_SECRET_KEY"] = SECRET_KEY  # gunicorn and the CLI inherit it
        try:
            with gunicorn(url, args.workers, 1) as base:
                api = requests.Session()
                api.headers["Authorization"] = f"Bearer {token}"
                figures = run(api, base + "/api/v1/workspaces/e2e", url, sandbox, args)
        finally:
            sandbox.stop()
    print(json.dumps(figures))


def run(api: requests.Session, base: str, database_url: str, sandbox: SandboxProcess, args) -> dict:
    def post(path: str, body: dict) -> dict:
        response = api.post(base + path, json=body, timeout=120)
        assert response.status_code in (200, 201), (path, response.status_code, response.text[:500])
        return response.json()

    post(
        "/segments?wait=true",
        {"name": "Pro", "conditions": {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}},
    )
    destination = post(
        "/destinations",
        {
            "name": "HubSpot",
            "type": "hubspot",
            "config": {
                "access_token": TOKEN,
                "base_url": sandbox.url,
                "rate_limit_requests": 1_000_000,
                "rate_limit_seconds": 1,
            },
        },
    )
    post(
        "/syncs",
        {
            "name": "Contacts",
            "destination_id": destination["id"],
            "subject_type": "users",
            "destination_object": "contacts",
            "mappings": [
                {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                {"source": {"kind": "attribute", "name": "plan"}, "destination": "plan"},
                {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multi_select"},
            ],
            "identity": {"destination": "email"},
        },
    )
    people = batches("identify", args.people, args.batch, args.people, random.Random(3))
    log(f"configured; sending {args.people:,} people in batches of {args.batch}, then one CLI run")

    started = time.perf_counter()
    for body in people:
        response = api.post(base + "/identify", data=body, headers={"Content-Type": "application/json"}, timeout=120)
        assert response.status_code == 200, response.text[:500]
    ingested = time.perf_counter()
    log(f"  ingested in {ingested - started:.2f} s")
    cli = [str(Path(sys.executable).parent / "connector"), "syncs", "run", "Contacts", "--workspace", "e2e"]
    env = dict(os.environ, CONNECTOR_DATABASE_URL=database_url, CONNECTOR_SECRET_KEY=SECRET_KEY)
    result = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=1800)
    finished = time.perf_counter()
    assert result.returncode == 0, result.stdout + result.stderr
    log(f"  CLI run in {finished - ingested:.2f} s: {result.stdout.strip()[-300:]}")
    contacts = requests.get(sandbox.url + "/__sandbox/records/contacts", timeout=60).json()
    received = len(contacts if isinstance(contacts, list) else contacts.get("results", contacts.get("records", [])))
    assert received == args.people, f"the sandbox holds {received} contacts"
    elapsed = finished - started
    return {
        "end_to_end_records_per_s": round(args.people / elapsed),
        "end_to_end_s": round(elapsed, 2),
        "ingest_s": round(ingested - started, 2),
        "cli_run_s": round(finished - ingested, 2),
        "people": args.people,
        "load_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    main()
