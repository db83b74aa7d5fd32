"""Demo data: a workspace a newcomer can explore at once.

Everything is created through the public HTTP API (in-process), exactly as a client would: people, accounts,
events and page views, devices, segments of every kind, a HubSpot destination pointed at the local sandbox, and a
sync of demo segments scheduled every minute with ``Segments`` mapped to a multiple-checkbox property. The data is
generated from a fixed seed, relative to now, so the time-window segments have members.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.config import Settings
from connector.db import Database
from connector.models import Role

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.example"
# The demo admin's web UI password: a demo on a laptop, never a production workspace.
DEMO_PASSWORD = "demo-password"
SANDBOX_TOKEN = "sandbox-token"
TOKEN_FILE = Path("var") / "demo-token"

FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton"]
PLANS = ["free", "free", "free", "pro", "pro", "enterprise"]
COUNTRIES = ["FR", "DE", "US", "GB", "ES"]
PLATFORMS = ["ios", "android", "web"]


class DemoError(RuntimeError):
    """The API refused a demo request (a bug in the demo or the API)."""


def seed_demo(
    db: Database,
    settings: Settings,
    *,
    sandbox_url: str | None = "http://127.0.0.1:8010",
    users: int = 300,
    echo: Callable[[str], Any] = print,
    token_file: Path | None = TOKEN_FILE,
) -> str:
    """Seed the demo workspace and return its admin API token."""
    from connector import create_app, logins
    from connector.tenancy import create_company, create_member, create_token, create_workspace

    with db.session() as session:
        company = create_company(session, "Demo Company")
        workspace = create_workspace(session, company, "Demo", slug=DEMO_SLUG, time_zone="Europe/Paris")
        member = create_member(session, company, DEMO_EMAIL, "Demo Admin", roles={workspace: Role.WORKSPACE_ADMIN})
        logins.set_password(session, member, DEMO_PASSWORD)
        token = create_token(session, member, "demo")

    client = create_app(settings, database=db).test_client()
    api = _Api(client, token)
    rng = random.Random(7)
    now = datetime.now(UTC)

    accounts = _seed_accounts(api, rng)
    _seed_users(api, rng, users, accounts)
    _seed_activity(api, rng, users, now)
    segments = _seed_segments(api)
    echo(f"demo: {users} people, {len(accounts)} accounts, {len(segments)} segments in workspace '{DEMO_SLUG}'")
    if sandbox_url:
        sync_id = _seed_sync(api, sandbox_url, segments)
        api.post(f"/syncs/{sync_id}/runs")
        echo(f"demo: HubSpot sync {sync_id} runs every minute into the sandbox at {sandbox_url}")

    if token_file is not None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
    echo(f"demo: API token (shown once; also in {token_file}): {token}")
    echo(f"demo: web login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
    return token


class _Api:
    def __init__(self, client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body: dict | None = None) -> dict:
        response = self.client.post(f"/api/v1/workspaces/{DEMO_SLUG}{path}", json=body, headers=self.headers)
        if response.status_code >= 400:
            raise DemoError(f"POST {path}: {response.status_code} {response.get_data(as_text=True)[:500]}")
        return response.get_json(silent=True) or {}

    def batch(self, path: str, items: list[dict]) -> None:
        for start in range(0, len(items), 1000):
            self.post(path, {"batch": items[start : start + 1000]})


def _seed_accounts(api: _Api, rng: random.Random) -> list[str]:
    names = ["Initech", "Globex", "Umbrella", "Hooli", "Stark", "Wayne", "Acme", "Vandelay", "Soylent", "Tyrell"]
    items = [
        {
            "external_id": f"acct-{i}",
            "name": name,
            "domain": f"{name.lower()}.example",
            "attributes": {"plan": rng.choice(PLANS), "employees": rng.randint(5, 5000)},
        }
        for i, name in enumerate(names)
    ]
    api.batch("/group", items)
    return [item["external_id"] for item in items]


def _seed_users(api: _Api, rng: random.Random, count: int, accounts: list[str]) -> None:
    items = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        items.append(
            {
                "external_id": f"user-{i}",
                "email": f"{first.lower()}.{last.lower()}.{i}@demo.example",
                "attributes": {
                    "first_name": first,
                    "last_name": last,
                    "plan": rng.choice(PLANS),
                    "country": rng.choice(COUNTRIES),
                    "lifetime_value": round(rng.uniform(0, 5000), 2),
                },
                "tags": ["newsletter"] if rng.random() < 0.4 else [],
                "accounts": [rng.choice(accounts)],
            }
        )
    api.batch("/identify", items)


def _seed_activity(api: _Api, rng: random.Random, count: int, now: datetime) -> None:
    events, pages, devices = [], [], []
    for i in range(count):
        user = f"user-{i}"
        for n in range(rng.randint(0, 6)):
            at = now - timedelta(days=rng.uniform(0, 14))
            events.append(
                {
                    "external_id": user,
                    "name": "login",
                    "occurred_at": at.isoformat(),
                    "message_id": f"demo-login-{i}-{n}",
                }
            )
        if rng.random() < 0.15:
            at = now - timedelta(days=rng.uniform(0, 10))
            events.append(
                {
                    "external_id": user,
                    "name": "purchase",
                    "occurred_at": at.isoformat(),
                    "message_id": f"demo-purchase-{i}",
                    "properties": {"amount": rng.randint(20, 900)},
                }
            )
        views = rng.choice([0, 0, 1, 3, 6, 8]) if i % 3 == 0 else 0
        for n in range(views):
            at = now - timedelta(days=rng.uniform(0, 6.5))
            pages.append(
                {
                    "external_id": user,
                    "url": "https://shop.demo.example/offers/premium",
                    "title": "Premium offer",
                    "occurred_at": at.isoformat(),
                    "message_id": f"demo-page-{i}-{n}",
                }
            )
        if rng.random() < 0.6:
            devices.append(
                {"external_id": user, "platform": rng.choice(PLATFORMS), "vendor_device_id": f"demo-device-{i}"}
            )
    api.batch("/track", events)
    api.batch("/page", pages)
    api.batch("/device", devices)


def _seed_segments(api: _Api) -> dict[str, int]:
    week = {"within_last": {"amount": 7, "unit": "days"}}
    definitions = [
        {
            "name": "Premium intent",
            "description": "Viewed the premium offer 5+ times this week and did not buy this week",
            "subject_type": "user",
            "kind": "dynamic",
            "conditions": {
                "type": "all",
                "children": [
                    {
                        "type": "page_view",
                        "operator": "viewed",
                        "url": {"operator": "contains", "value": "/offers/premium"},
                        "count": {"operator": "at_least", "value": 5},
                        "window": week,
                    },
                    {"type": "event", "name": "purchase", "operator": "not_performed", "window": week},
                ],
            },
        },
        {
            "name": "Paying customers",
            "subject_type": "user",
            "kind": "dynamic",
            "conditions": {"type": "attribute", "name": "plan", "operator": "in", "value": ["pro", "enterprise"]},
        },
        {
            "name": "Active this week",
            "subject_type": "user",
            "kind": "dynamic",
            "conditions": {
                "type": "event",
                "name": "login",
                "operator": "performed",
                "count": {"operator": "at_least", "value": 2},
                "window": week,
            },
        },
        {
            "name": "Mobile users",
            "subject_type": "user",
            "kind": "dynamic",
            "conditions": {
                "type": "any",
                "children": [
                    {"type": "device", "operator": "has", "platform": "ios"},
                    {"type": "device", "operator": "has", "platform": "android"},
                ],
            },
        },
        {"name": "Beta testers", "subject_type": "user", "kind": "manual"},
        {
            "name": "Large accounts",
            "subject_type": "account",
            "kind": "dynamic",
            "conditions": {"type": "attribute", "name": "employees", "operator": "gte", "value": 1000},
        },
    ]
    ids = {d["name"]: api.post("/segments?wait=true", d)["id"] for d in definitions}
    api.post(
        f"/segments/{ids['Beta testers']}/members", {"add": [{"external_id": f"user-{i}"} for i in range(0, 40, 4)]}
    )
    ids["Engaged payers"] = api.post(
        "/segments?wait=true",
        {
            "name": "Engaged payers",
            "subject_type": "user",
            "kind": "dynamic",
            "conditions": {
                "type": "all",
                "children": [
                    {"type": "segment", "operator": "in", "segment_id": ids["Paying customers"]},
                    {"type": "segment", "operator": "in", "segment_id": ids["Active this week"]},
                ],
            },
        },
    )["id"]
    return ids


def _seed_sync(api: _Api, sandbox_url: str, segments: dict[str, int]) -> int:
    destination = api.post(
        "/destinations",
        {
            "name": "HubSpot (sandbox)",
            "type": "hubspot",
            "config": {"access_token": SANDBOX_TOKEN, "base_url": sandbox_url},
        },
    )
    sync = api.post(
        "/syncs",
        {
            "name": "HubSpot contacts",
            "destination_id": destination["id"],
            "subject_type": "user",
            "destination_object": "contacts",
            "segment_ids": [segments[n] for n in ("Premium intent", "Paying customers", "Beta testers")],
            "mappings": [
                {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
                {"source": {"kind": "attribute", "name": "last_name"}, "destination": "lastname"},
                {"source": {"kind": "attribute", "name": "plan"}, "destination": "connector_plan"},
                {
                    "source": {"kind": "computed", "name": "Segments"},
                    "destination": "connector_segments",
                    "as": "multi_select",
                },
            ],
            "identity": {"destination": "email"},
            "mode": "mirror",
            "schedule": {"kind": "interval", "minutes": 1},
        },
    )
    return sync["id"]
