"""Benchmark of destination preparation under transient faults, and of the setup requests a run with one change
spends, against the HubSpot sandbox (real hubspot-api-client, real HTTP).

    .venv/bin/python bench/preparation.py                          # a fresh SQLite file
    .venv/bin/python bench/preparation.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/preparation.py --whole-preparation      # the old way: the preparation retried as one unit

1. ``--runs`` first runs (each of a new sync, so each prepares: property group, property reads and creates) with
   the sandbox failing 30% of every request with a 5xx (seeded), the production retry policy's attempts and
   deadline (its waits shortened to milliseconds, which changes nothing but the time taken): how many runs failed
   before sending a record (``first_runs_failed_before_sending``), and the setup requests made;
2. then, without faults, one user changed and the sync run again by a fresh ``Database`` (as a new CLI process
   would): the setup requests it made (``setup_requests_one_change``, must be 0) and all its requests.

Progress goes to stderr; stdout gets one line, a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sqlalchemy import insert, select

from connector.db import Database
from connector.destinations.hubspot import HubSpotDestination
from connector.migrate import upgrade
from connector.models import User
from connector.security import SecretBox
from connector.syncs.connections import DestinationIn, create_destination
from connector.syncs.definitions import SyncIn, create_sync
from connector.syncs.engine import run_sync
from connector.syncs.retry import RetryPolicy
from connector.tenancy import create_company, create_workspace
from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox
from connector.testing.scratch import scratch_database

TOKEN = "bench-token"
SECRET_KEY = "bench-secret-key"
PROPERTIES = "/crm/v3/properties/"
MAPPINGS = [
    {"source": {"kind": "field", "name": "email"}, "destination": "email"},
    {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
    {"source": {"kind": "attribute", "name": "plan"}, "destination": "plan"},
    {"source": {"kind": "attribute", "name": "score"}, "destination": "score", "format": "number"},
    {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multi_select"},
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup_requests(sandbox: HubSpotSandbox) -> int:
    return sum(n for key, n in sandbox.stats()["requests"].items() if PROPERTIES in key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--whole-preparation", action="store_true", help="retry the preparation as one unit")
    args = parser.parse_args()
    if args.whole_preparation:
        HubSpotDestination.retries_each_request = False

    policy = RetryPolicy()
    retry = RetryPolicy(attempts=policy.attempts, deadline_s=policy.deadline_s, initial_wait_s=0.001, max_wait_s=0.005)
    with scratch_database(args.database_url, "connector_bench") as url, HubSpotSandbox(port=0, token=TOKEN) as sandbox:
        upgrade(url)
        db = Database(url)
        box = SecretBox(SECRET_KEY)
        with db.session() as session:
            workspace = create_workspace(session, create_company(session, "Bench"), "Bench", slug="bench")
            workspace_id = workspace.id
            session.execute(
                insert(User),
                [
                    {
                        "workspace_id": workspace_id,
                        "email": f"p{i}@bench.example",
                        "attributes": {"first_name": f"P{i}", "plan": "pro", "score": i},
                    }
                    for i in range(args.users)
                ],
            )
            destination = create_destination(
                session,
                workspace_id,
                box,
                DestinationIn(name="hubspot", type="hubspot", config={"access_token": TOKEN, "base_url": sandbox.url}),
            )
            syncs = [
                create_sync(
                    session,
                    workspace_id,
                    SyncIn(
                        name=f"contacts {n}",
                        destination_id=destination.id,
                        subject_type="users",
                        destination_object="contacts",
                        mappings=[*MAPPINGS[:2], {**MAPPINGS[2], "destination": f"plan_{n}"}, *MAPPINGS[3:]],
                        identity={"destination": "email"},
                    ),
                ).id
                for n in range(args.runs)
            ]

        sandbox.set_faults(FaultPlan(rate_5xx=args.fault_rate, seed=args.seed))
        failed = 0
        started = time.monotonic()
        for n, sync_id in enumerate(syncs, start=1):
            outcome = run_sync(db, sync_id, secret_key=SECRET_KEY, retry=retry)
            delivered = outcome.counts.added + outcome.counts.changed
            if delivered == 0:
                failed += 1
            log(f"first run {n}/{len(syncs)}: {outcome.status.value} ({delivered} delivered)")
        faulty_s = time.monotonic() - started
        faults = sum(sandbox.stats()["faults"].values())
        faulty_setup = setup_requests(sandbox)
        sandbox.set_faults()

        # A clean first run, then one change, run by a fresh Database (nothing of this process's state).
        clean = syncs[0]
        run_sync(db, clean, secret_key=SECRET_KEY, retry=retry)
        with db.session() as session:
            user = session.get(User, session.scalar(select(User.id).where(User.workspace_id == workspace_id)))
            user.attributes = {**user.attributes, "plan": "team"}
        db.dispose()
        before = sandbox.stats()["requests"]
        fresh = Database(url)
        started = time.monotonic()
        outcome = run_sync(fresh, clean, secret_key=SECRET_KEY, retry=retry)
        one_change_s = time.monotonic() - started
        after = sandbox.stats()["requests"]
        fresh.dispose()
        requests = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        log(f"one change: {outcome.status.value}, requests {requests}")

    print(
        json.dumps(
            {
                "retry": "whole preparation" if args.whole_preparation else "each request",
                "fault_rate": args.fault_rate,
                "first_runs": len(syncs),
                "first_runs_failed_before_sending": failed,
                "first_runs_failed_fraction": round(failed / max(len(syncs), 1), 3),
                "faults_injected": faults,
                "setup_requests_under_faults": faulty_setup,
                "first_runs_s": round(faulty_s, 2),
                "setup_requests_one_change": sum(n for k, n in requests.items() if PROPERTIES in k),
                "requests_one_change": sum(requests.values()),
                "one_change_run_s": round(one_change_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
