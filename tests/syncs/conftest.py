"""Fixtures for the sync engine: a HubSpot sandbox over real HTTP, seeded subjects and segments, destinations and
syncs made through the API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, insert, select

from connector.models import ComputedValue, Segment, SegmentKind, SegmentMembership, SubjectType, User
from connector.syncs.retry import RetryPolicy
from connector.testing.hubspot_sandbox import HubSpotSandbox

SANDBOX_TOKEN = "sandbox-token-3f9a0c1e7b"


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(port=0, token=SANDBOX_TOKEN) as server:
        yield server


@pytest.fixture
def sandbox(_sandbox_server: HubSpotSandbox) -> HubSpotSandbox:
    """The HubSpot sandbox over HTTP on a free port, empty: no records, counters, faults or rate limit."""
    _sandbox_server.set_rate_limit(None)
    _sandbox_server.reset()
    return _sandbox_server


# Retries in milliseconds: the policy is the production one, only its waits are short.
FAST_RETRY = RetryPolicy(attempts=8, deadline_s=30.0, initial_wait_s=0.005, max_wait_s=0.02)


def seed_users(database, workspace_id: int, rows: Iterable[dict]) -> list[int]:
    """Insert users (email, external_id, attributes) in one statement; their ids in order."""
    rows = list(rows)
    with database.session() as session:
        session.execute(
            insert(User),
            [
                {
                    "workspace_id": workspace_id,
                    "email": r.get("email"),
                    "external_id": r.get("external_id"),
                    "attributes": r.get("attributes", {}),
                }
                for r in rows
            ],
        )
        ids = session.scalars(select(User.id).where(User.workspace_id == workspace_id).order_by(User.id)).all()
    return list(ids[-len(rows) :]) if rows else []


def make_segment(database, workspace_id: int, name: str, subject_type=SubjectType.USER) -> int:
    with database.session() as session:
        segment = Segment(workspace_id=workspace_id, name=name, subject_type=subject_type, kind=SegmentKind.MANUAL)
        session.add(segment)
        session.flush()
        return segment.id


def set_members(database, workspace_id: int, segment_id: int, subject_ids: Iterable[int]) -> None:
    """Make exactly ``subject_ids`` the members of a segment, and refresh the ``Segments`` computed values the way
    the segment engine materialises them (sorted names; no row for a subject in no segment)."""
    subject_ids = list(subject_ids)
    with database.session() as session:
        segment = session.get(Segment, segment_id)
        session.execute(delete(SegmentMembership).where(SegmentMembership.segment_id == segment_id))
        if subject_ids:
            session.execute(
                insert(SegmentMembership), [{"segment_id": segment_id, "subject_id": s} for s in subject_ids]
            )
        refresh_segments_property(session, workspace_id, segment.subject_type)


def refresh_segments_property(session, workspace_id: int, subject_type=SubjectType.USER) -> None:
    rows = session.execute(
        select(SegmentMembership.subject_id, Segment.name)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(Segment.workspace_id == workspace_id, Segment.subject_type == subject_type)
    ).all()
    names: dict[int, list[str]] = {}
    for subject_id, name in rows:
        names.setdefault(subject_id, []).append(name)
    session.execute(
        delete(ComputedValue).where(
            ComputedValue.workspace_id == workspace_id,
            ComputedValue.subject_type == subject_type,
            ComputedValue.name == "Segments",
        )
    )
    if names:
        session.execute(
            insert(ComputedValue),
            [
                {
                    "subject_type": subject_type,
                    "subject_id": subject_id,
                    "name": "Segments",
                    "workspace_id": workspace_id,
                    "value": sorted(values),
                }
                for subject_id, values in names.items()
            ],
        )


def rename_segment(database, workspace_id: int, segment_id: int, name: str) -> None:
    with database.session() as session:
        segment = session.get(Segment, segment_id)
        segment.name = name
        session.flush()
        refresh_segments_property(session, workspace_id, segment.subject_type)


@dataclass
class SyncSetup:
    destination_id: int
    sync_id: int


def writes(stats: dict) -> dict[str, int]:
    """The sandbox's requests that could change something (a dry run reads properties, and writes nothing)."""
    return {route: n for route, n in stats["requests"].items() if not route.startswith("GET ")}


def hubspot_config(sandbox: HubSpotSandbox, **extra) -> dict:
    return {"access_token": SANDBOX_TOKEN, "base_url": sandbox.url, **extra}


CONTACT_MAPPINGS = [
    {"source": {"kind": "field", "name": "email"}, "destination": "email"},
    {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
    {"source": {"kind": "attribute", "name": "plan"}, "destination": "plan"},
    {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multi_select"},
]


def create_sync(client, tenant, sandbox, *, config=None, name="contacts", **sync) -> SyncSetup:
    """A HubSpot destination on the sandbox and a contacts sync, both made through the API."""
    response = client.post(
        tenant.url("/destinations"),
        json={"name": f"hubspot-{name}", "type": "hubspot", "config": config or hubspot_config(sandbox)},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.get_json()
    destination_id = response.get_json()["id"]
    body = {
        "name": name,
        "destination_id": destination_id,
        "subject_type": "users",
        "destination_object": "contacts",
        "mappings": CONTACT_MAPPINGS,
        "identity": {"destination": "email"},
        **sync,
    }
    response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return SyncSetup(destination_id, response.get_json()["id"])
