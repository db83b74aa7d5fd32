"""The syncs API: definitions validated against the workspace and the destination type, runs and their history."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from connector.models import SubjectType, Sync, SyncRecord, SyncSegment
from connector.syncs.locks import claim_run
from tests.syncs.conftest import CONTACT_MAPPINGS, create_sync, make_segment, seed_users, set_members, writes


@pytest.fixture
def destination_id(client, tenant, sandbox) -> int:
    response = client.post(
        tenant.url("/destinations"),
        json={"name": "crm", "type": "hubspot", "config": {"access_token": "t", "base_url": sandbox.url}},
        headers=tenant.headers,
    )
    return response.get_json()["id"]


def sync_body(destination: int, **overrides) -> dict:
    body = {
        "name": "contacts",
        "destination_id": destination,
        "subject_type": "users",
        "destination_object": "contacts",
        "mappings": CONTACT_MAPPINGS,
        "identity": {"destination": "email"},
    }
    body.update(overrides)
    return body


def fields_of(response) -> set[str]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    return {e["field"] for e in response.get_json()["errors"]}


def test_a_sync_is_created_and_read_back(client, tenant, database, destination_id):
    segment_id = make_segment(database, tenant.workspace_id, "Paying")
    body = sync_body(
        destination_id,
        segment_ids=[segment_id],
        schedule={"kind": "cron", "expression": "0  9 * * 1-5", "timezone": "Europe/Paris"},
        mode="mirror",
    )
    response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    sync = response.get_json()
    assert sync["subject_type"] == "user"
    assert sync["segment_ids"] == [segment_id]
    assert sync["identity"] == {"destination": "email"}
    assert sync["mode"] == "mirror" and sync["mirror_action"] == "clear"
    assert sync["schedule"] == {"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"}
    assert sync["status"] == "never_run" and sync["last_run"] is None and sync["next_run_time"] is None
    assert sync["mappings"][3]["as"] == "multi_select"

    read = client.get(tenant.url(f"/syncs/{sync['id']}"), headers=tenant.headers).get_json()
    assert read == sync
    listed = client.get(tenant.url("/syncs"), headers=tenant.headers).get_json()["data"]
    assert [s["id"] for s in listed] == [sync["id"]]
    with database.session() as session:
        assert session.scalars(select(SyncSegment.segment_id)).all() == [segment_id]


BAD_DEFINITIONS = [
    ({"subject_type": "people"}, {"body.subject_type"}),
    ({"destination_object": "deals"}, {"body.destination_object"}),
    ({"destination_id": 999}, {"body.destination_id"}),
    ({"destination_id": 2**64}, {"body.destination_id"}),
    ({"identity": {"destination": "phone"}}, {"body.identity.destination"}),
    ({"identity": {"destination": "segments"}}, {"body.identity.destination"}),
    ({"mappings": []}, {"body.mappings"}),
    (
        {"mappings": [*CONTACT_MAPPINGS, {"source": {"kind": "attribute", "name": "x"}, "destination": "plan"}]},
        {"body.mappings[4].destination"},
    ),
    (
        {"mappings": [*CONTACT_MAPPINGS, {"source": {"kind": "field", "name": "domain"}, "destination": "d"}]},
        {"body.mappings[4].source.name"},
    ),
    ({"mode": "replace"}, {"body.mode"}),
    ({"mirror_action": "clear"}, {"body.mirror_action"}),
    ({"mode": "mirror", "mappings": CONTACT_MAPPINGS[:3]}, {"body.mirror_action"}),
    ({"schedule": {"kind": "cron", "expression": "0 25 * * *"}}, {"body.schedule.expression"}),
    ({"schedule": {"kind": "cron", "expression": "0 9 * *"}}, {"body.schedule.expression"}),
    ({"schedule": {"kind": "cron", "expression": "0 9 * * *", "timezone": "Mars/Olympus"}}, {"body.schedule.timezone"}),
    ({"schedule": {"kind": "interval", "minutes": 0}}, {"body.schedule.minutes"}),
    ({"schedule": {"kind": "interval", "minutes": "5"}}, {"body.schedule.minutes"}),
    ({"schedule": {"kind": "hourly"}}, {"body.schedule.kind"}),
    ({"schedule": {"kind": "manual", "minutes": 5}}, {"body.schedule.minutes"}),
    ({"segment_ids": [0]}, {"body.segment_ids"}),
    ({"enabled": "sometimes"}, {"body.enabled"}),
    ({"surprise": 1}, {"body.surprise"}),
    ({"name": "a\x00b"}, {"body.name"}),
    (
        {"mappings": [*CONTACT_MAPPINGS, {"source": {"kind": "constant", "value": "x\x00"}, "destination": "c"}]},
        {"body.mappings[4].source.value"},
    ),
]


def test_bad_definitions_are_refused_naming_the_field(client, tenant, database, destination_id):
    for overrides, fields in BAD_DEFINITIONS:
        body = sync_body(destination_id, **overrides)
        response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
        assert fields <= fields_of(response), overrides
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Sync)) == 0


def test_segments_must_be_of_the_workspace_and_of_the_subject_type(
    client, tenant, other_tenant, database, destination_id
):
    accounts = make_segment(database, tenant.workspace_id, "Big accounts", SubjectType.ACCOUNT)
    foreign = make_segment(database, other_tenant.workspace_id, "Theirs")
    mine = make_segment(database, tenant.workspace_id, "Mine")
    response = client.post(
        tenant.url("/syncs"),
        json=sync_body(destination_id, segment_ids=[mine, accounts, foreign]),
        headers=tenant.headers,
    )
    errors = {e["field"]: e["reason"] for e in response.get_json()["errors"]}
    assert set(errors) == {"body.segment_ids[1]", "body.segment_ids[2]"}
    assert "accounts" in errors["body.segment_ids[1]"]
    assert "no such segment" in errors["body.segment_ids[2]"]


def test_a_destination_of_another_workspace_cannot_be_used(client, tenant, other_tenant, destination_id):
    response = client.post(other_tenant.url("/syncs"), json=sync_body(destination_id), headers=other_tenant.headers)
    assert fields_of(response) == {"body.destination_id"}


def test_mirror_mode_may_remove_instead_of_clear_without_a_segments_field(client, tenant, destination_id):
    body = sync_body(destination_id, mode="mirror", mirror_action="remove", mappings=CONTACT_MAPPINGS[:3])
    response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert response.status_code == 201
    assert response.get_json()["mirror_action"] == "remove"
    # Leaving mirror mode drops its action.
    response = client.patch(
        tenant.url(f"/syncs/{response.get_json()['id']}"), json={"mode": "upsert"}, headers=tenant.headers
    )
    assert response.get_json()["mirror_action"] is None


def test_bodies_that_are_not_sync_definitions_are_refused(client, tenant, database, destination_id):
    for body in ([1, 2], "sync", None, {"name": 5}):
        response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
        assert response.status_code == 422, body
        assert response.content_type == "application/problem+json"
    response = client.post(
        tenant.url("/syncs"), data="{not json", headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Sync)) == 0


def test_accounts_sync_maps_account_fields(client, tenant, destination_id):
    body = sync_body(
        destination_id,
        name="companies",
        subject_type="accounts",
        destination_object="companies",
        mappings=[
            {"source": {"kind": "field", "name": "domain"}, "destination": "domain"},
            {"source": {"kind": "field", "name": "name"}, "destination": "name"},
            {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multiline"},
        ],
        identity={"destination": "domain"},
    )
    response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["subject_type"] == "account"


def test_changing_what_records_mean_forgets_them(client, tenant, database, sandbox, settings):
    from connector.syncs import run_sync
    from tests.syncs.conftest import FAST_RETRY

    seed_users(database, tenant.workspace_id, [{"email": f"p{i}@example.com"} for i in range(3)])
    setup = create_sync(client, tenant, sandbox)
    run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    def records() -> int:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(SyncRecord))

    assert records() == 3
    response = client.patch(
        tenant.url(f"/syncs/{setup.sync_id}"), json={"name": "renamed", "enabled": False}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "renamed" and response.get_json()["enabled"] is False
    assert records() == 3  # a name is not what was delivered
    response = client.patch(
        tenant.url(f"/syncs/{setup.sync_id}"),
        json={"mappings": [CONTACT_MAPPINGS[0], CONTACT_MAPPINGS[3]], "identity": {"destination": "email"}},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert records() == 3  # new mappings change payloads: the next run sends the difference
    response = client.patch(
        tenant.url(f"/syncs/{setup.sync_id}"), json={"destination_object": "companies"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.get_json()
    assert records() == 0
    response = client.patch(tenant.url(f"/syncs/{setup.sync_id}"), json={"mode": None}, headers=tenant.headers)
    assert fields_of(response) == {"body.mode"}


def test_runs_are_listed_newest_first_and_paginated(client, tenant, database, sandbox, settings):
    seed_users(database, tenant.workspace_id, [{"email": "a@example.com"}, {"email": None}])
    setup = create_sync(client, tenant, sandbox)
    for _ in range(3):
        response = client.post(tenant.url(f"/syncs/{setup.sync_id}/runs?wait=true"), headers=tenant.headers)
        assert response.status_code == 200, response.get_json()
    first = client.get(tenant.url(f"/syncs/{setup.sync_id}/runs?limit=2"), headers=tenant.headers).get_json()
    assert [r["id"] for r in first["data"]] == [3, 2]
    second = client.get(
        tenant.url(f"/syncs/{setup.sync_id}/runs?limit=2&cursor={first['next_cursor']}"), headers=tenant.headers
    ).get_json()
    assert [r["id"] for r in second["data"]] == [1] and second["next_cursor"] is None
    run = client.get(tenant.url(f"/syncs/{setup.sync_id}/runs/1"), headers=tenant.headers).get_json()
    assert run["status"] == "partial"  # one user has no email: invalid
    assert run["counts"]["added"] == 1 and run["counts"]["invalid"] == 1
    errors = client.get(tenant.url(f"/syncs/{setup.sync_id}/runs/1/errors"), headers=tenant.headers).get_json()
    assert errors["data"][0]["kind"] == "invalid"
    assert "no value for the identity field email" in errors["data"][0]["reason"]

    sync = client.get(tenant.url(f"/syncs/{setup.sync_id}"), headers=tenant.headers).get_json()
    assert sync["last_run"]["id"] == 3 and sync["status"] == "partial"

    for cursor in ("garbage!!", "eyJiZWZvcmUiOiAieCJ9", "W10"):
        response = client.get(tenant.url(f"/syncs/{setup.sync_id}/runs?cursor={cursor}"), headers=tenant.headers)
        assert fields_of(response) == {"query.cursor"}
    assert client.get(tenant.url(f"/syncs/{setup.sync_id}/runs/99"), headers=tenant.headers).status_code == 404
    response = client.get(tenant.url(f"/syncs/{setup.sync_id}/runs?limit=0"), headers=tenant.headers)
    assert fields_of(response) == {"query.limit"}


def test_a_run_started_over_the_api_goes_on_in_the_background(client, tenant, database, sandbox):
    seed_users(database, tenant.workspace_id, [{"email": f"bg{i}@example.com"} for i in range(150)])
    setup = create_sync(client, tenant, sandbox)
    response = client.post(tenant.url(f"/syncs/{setup.sync_id}/runs"), headers=tenant.headers)
    assert response.status_code == 202
    run = response.get_json()
    assert run["status"] == "running" and run["trigger"] == "api"
    assert response.headers["Location"].endswith(f"/syncs/{setup.sync_id}/runs/{run['id']}")
    deadline = time.monotonic() + 30
    while run["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.get(response.headers["Location"], headers=tenant.headers).get_json()
    assert run["status"] == "succeeded"
    assert run["counts"]["added"] == 150
    assert len(sandbox.records("contacts")) == 150


def test_a_second_run_while_one_is_going_is_refused_and_recorded(client, tenant, database, sandbox):
    setup = create_sync(client, tenant, sandbox)
    with database.session() as session:  # another process holds the lease
        holder = claim_run(session, setup.sync_id, "schedule")
    response = client.post(tenant.url(f"/syncs/{setup.sync_id}/runs"), headers=tenant.headers)
    assert response.status_code == 409
    assert f"run {holder.id}" in response.get_json()["detail"]
    assert response.get_json()["run"]["status"] == "skipped"
    sync = client.get(tenant.url(f"/syncs/{setup.sync_id}"), headers=tenant.headers).get_json()
    assert sync["status"] == "running"
    assert sync["last_run"]["status"] == "skipped"
    assert client.get(tenant.url("/syncs"), headers=tenant.headers).get_json()["data"][0]["status"] == "running"
    # While it runs, the sync can be renamed, but not deleted or pointed elsewhere.
    renamed = client.patch(tenant.url(f"/syncs/{setup.sync_id}"), json={"name": "n"}, headers=tenant.headers)
    assert renamed.status_code == 200
    response = client.patch(
        tenant.url(f"/syncs/{setup.sync_id}"), json={"destination_object": "companies"}, headers=tenant.headers
    )
    assert response.status_code == 409
    assert client.delete(tenant.url(f"/syncs/{setup.sync_id}"), headers=tenant.headers).status_code == 409


def test_dry_run_shows_the_plan_and_sends_nothing(client, tenant, database, sandbox):
    ids = seed_users(
        database,
        tenant.workspace_id,
        [{"email": f"d{i}@example.com", "attributes": {"plan": "pro"}} for i in range(25)],
    )
    segment_id = make_segment(database, tenant.workspace_id, "Pro")
    set_members(database, tenant.workspace_id, segment_id, ids[:5])
    setup = create_sync(client, tenant, sandbox)
    response = client.post(tenant.url(f"/syncs/{setup.sync_id}/dry-run"), headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    plan = response.get_json()
    assert plan["dry_run"] is True and plan["status"] == "succeeded"
    assert plan["counts"]["planned"] == 25 and plan["counts"]["added"] == 25
    assert len(plan["samples"]) == 10
    assert plan["samples"][0] == {
        "subject_id": ids[0],
        "change": "added",
        "identity": "d0@example.com",
        "properties": {"email": "d0@example.com", "firstname": None, "plan": "pro", "segments": "Pro"},
    }
    assert writes(sandbox.stats()) == {}
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(SyncRecord)) == 0
    # A dry run is in the history, but it is not the sync's last run.
    sync = client.get(tenant.url(f"/syncs/{setup.sync_id}"), headers=tenant.headers).get_json()
    assert sync["last_run"] is None


def test_syncs_stay_behind_the_workspace_wall(client, tenant, other_tenant, sandbox):
    setup = create_sync(client, tenant, sandbox)
    for method, path in [
        ("get", f"/syncs/{setup.sync_id}"),
        ("patch", f"/syncs/{setup.sync_id}"),
        ("delete", f"/syncs/{setup.sync_id}"),
        ("post", f"/syncs/{setup.sync_id}/runs"),
        ("post", f"/syncs/{setup.sync_id}/dry-run"),
        ("get", f"/syncs/{setup.sync_id}/runs"),
        ("get", f"/syncs/{setup.sync_id}/runs/1"),
        ("get", f"/syncs/{setup.sync_id}/runs/1/errors"),
    ]:
        response = getattr(client, method)(other_tenant.url(path), json={}, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path, response.get_json())
    assert client.get(other_tenant.url("/syncs"), headers=other_tenant.headers).get_json() == {"data": []}


def test_a_sync_shows_when_the_scheduler_runs_it_next(client, tenant, database, sandbox):
    from sqlalchemy import text

    setup = create_sync(client, tenant, sandbox, schedule={"kind": "interval", "minutes": 15})
    with database.session() as session:
        session.execute(
            text("INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES (:id, :at, :state)"),
            {"id": f"sync:{setup.sync_id}", "at": 1_900_000_000.0, "state": b"not read here"},
        )
    sync = client.get(tenant.url(f"/syncs/{setup.sync_id}"), headers=tenant.headers).get_json()
    assert sync["next_run_time"] == "2030-03-17T17:46:40+00:00"
    listed = client.get(tenant.url("/syncs"), headers=tenant.headers).get_json()["data"]
    assert listed[0]["next_run_time"] == sync["next_run_time"]
