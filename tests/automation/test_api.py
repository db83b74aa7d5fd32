"""The automation API: CRUD in the OpenAPI document, problem+json naming the field, 409 on segments in use,
tenant walls and roles."""

from __future__ import annotations

import csv
import io

import pytest

from connector.models import Role
from tests.automation.support import PRO, ingest, make_segment, process, user_id
from tests.conftest import make_tenant

SEQUENCE = {"name": "Welcome", "channels": ["email", "sms"], "steps": [{"name": "hello", "delay_minutes": 0}]}


@pytest.fixture
def pro(database, tenant) -> int:
    return make_segment(database, tenant.workspace_id, "Pro", PRO)


def post(client, tenant, path, body, status=201):
    response = client.post(tenant.url(path), headers=tenant.headers, json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def test_operations_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in (
        "/api/v1/workspaces/{workspace}/sequences",
        "/api/v1/workspaces/{workspace}/enrolments",
        "/api/v1/workspaces/{workspace}/messages",
        "/api/v1/workspaces/{workspace}/segments/{segment_id}/action",
        "/api/v1/workspaces/{workspace}/playbooks/{playbook_id}/firings",
        "/api/v1/workspaces/{workspace}/views/{view_id}/export.csv",
    ):
        assert path in paths


def test_sequences_are_created_read_updated_and_deleted(client, tenant):
    created = post(
        client,
        tenant,
        "/sequences",
        {**SEQUENCE, "webhook_url": "https://hooks.example/x", "webhook_secret": "s3cret-value"},
    )
    assert created["webhook_secret"] == "********"
    url = tenant.url(f"/sequences/{created['id']}")
    assert client.get(url, headers=tenant.headers).json["name"] == "Welcome"
    updated = client.put(url, headers=tenant.headers, json={**SEQUENCE, "name": "Hello"})
    assert updated.status_code == 200 and updated.json["name"] == "Hello"
    assert [s["name"] for s in client.get(tenant.url("/sequences"), headers=tenant.headers).json["data"]] == ["Hello"]
    assert client.delete(url, headers=tenant.headers).status_code == 204
    assert client.get(url, headers=tenant.headers).status_code == 404


def test_bad_input_is_problem_json_naming_the_field(client, tenant):
    response = client.post(tenant.url("/sequences"), headers=tenant.headers, json={**SEQUENCE, "channels": ["fax"]})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.json["errors"]] == ["body.channels[0]"]

    post(client, tenant, "/sequences", SEQUENCE)
    taken = client.post(tenant.url("/sequences"), headers=tenant.headers, json=SEQUENCE)
    assert taken.status_code == 409
    assert taken.json["errors"][0]["field"] == "name"


def test_enrol_and_exit_through_the_api(client, database, tenant):
    ingest(database, tenant.workspace_id, {"external_id": "ann"})
    ann = user_id(database, tenant.workspace_id, "ann")
    sequence = post(client, tenant, "/sequences", SEQUENCE)["id"]
    answer = post(client, tenant, f"/sequences/{sequence}/enrolments", {"user_ids": [ann], "fallback_channel": "email"})
    assert answer["enrolled"] == [ann]
    [enrolment] = client.get(tenant.url(f"/enrolments?sequence_id={sequence}"), headers=tenant.headers).json["data"]
    assert (enrolment["source"], enrolment["state"], enrolment["channel"]) == ("api", "active", "email")
    exited = post(client, tenant, f"/enrolments/{enrolment['id']}/exit", None, status=200)
    assert exited["state"] == "exited"
    assert client.post(tenant.url(f"/enrolments/{enrolment['id']}/exit"), headers=tenant.headers).status_code == 409


def test_a_segment_action_shows_its_next_run_and_its_runs(client, tenant, pro):
    sequence = post(client, tenant, "/sequences", SEQUENCE)["id"]
    body = {"sequence_id": sequence, "time": "09:00", "timezone": "Europe/Berlin", "fallback_channel": "email"}
    response = client.put(tenant.url(f"/segments/{pro}/action"), headers=tenant.headers, json=body)
    assert response.status_code == 200, response.json
    shown = client.get(tenant.url(f"/segments/{pro}/action"), headers=tenant.headers).json
    assert shown["enabled"] is True and shown["next_run_at"] is not None and shown["runs"] == []
    bad = client.put(tenant.url(f"/segments/{pro}/action"), headers=tenant.headers, json={**body, "time": "25:00"})
    assert (bad.status_code, bad.json["errors"][0]["field"]) == (422, "body.time")


def test_playbooks_and_their_firings(client, database, tenant, pro):
    playbook = post(
        client,
        tenant,
        "/playbooks",
        {
            "name": "Tag pros",
            "trigger": {"kind": "enters", "segment_id": pro},
            "actions": [{"type": "add_tag", "tag": "pro"}],
        },
    )
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    process(database, playbook["id"])
    firings = client.get(tenant.url(f"/playbooks/{playbook['id']}/firings"), headers=tenant.headers).json["data"]
    assert [(f["trigger"], f["status"]) for f in firings] == [("enters", "succeeded")]
    paused = post(client, tenant, f"/playbooks/{playbook['id']}/pause", None, status=200)
    assert paused["enabled"] is False
    resumed = post(client, tenant, f"/playbooks/{playbook['id']}/resume?catch_up=false", None, status=200)
    assert resumed["enabled"] is True


def test_a_self_triggering_playbook_is_refused_with_the_field(client, tenant, pro):
    response = client.post(
        tenant.url("/playbooks"),
        headers=tenant.headers,
        json={
            "name": "Loop",
            "trigger": {"kind": "exits", "segment_id": pro},
            "actions": [{"type": "set_attribute", "name": "plan", "value": "pro"}],
        },
    )
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "body.actions[0].name"


def test_views_read_as_pages_counts_and_csv(client, database, tenant, pro):
    ingest(database, tenant.workspace_id, *({"external_id": f"u{i}", "attributes": {"plan": "pro"}} for i in range(3)))
    view = post(
        client,
        tenant,
        "/views",
        {"name": "Pros", "conditions": {"type": "segment", "segment_id": pro}, "columns": ["external_id", "Segments"]},
    )
    url = tenant.url(f"/views/{view['id']}")
    page = client.get(url + "/rows?limit=2", headers=tenant.headers).json
    assert [r["external_id"] for r in page["data"]] == ["u0", "u1"]
    rest = client.get(url + f"/rows?limit=2&cursor={page['next_cursor']}", headers=tenant.headers).json
    assert [r["external_id"] for r in rest["data"]] == ["u2"] and rest["next_cursor"] is None
    assert client.get(url + "/count", headers=tenant.headers).json == {"count": 3}
    exported = client.get(url + "/export.csv", headers=tenant.headers)
    assert exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows == [["external_id", "Segments"], ["u0", '["Pro"]'], ["u1", '["Pro"]'], ["u2", '["Pro"]']]
    assert client.get(url + "/rows?cursor=nonsense", headers=tenant.headers).status_code == 422


def test_deleting_a_segment_used_by_automation_is_refused_naming_the_users(client, tenant, pro):
    sequence = post(client, tenant, "/sequences", SEQUENCE)["id"]
    body = {"sequence_id": sequence, "time": "09:00", "timezone": "UTC", "fallback_channel": "email"}
    client.put(tenant.url(f"/segments/{pro}/action"), headers=tenant.headers, json=body)
    post(
        client,
        tenant,
        "/views",
        {"name": "Pros", "conditions": {"type": "segment", "operator": "not_in", "segment_id": pro}},
    )
    post(
        client,
        tenant,
        "/playbooks",
        {"name": "Tag", "trigger": {"kind": "enters", "segment_id": pro}, "actions": [{"type": "add_tag", "tag": "x"}]},
    )
    response = client.delete(tenant.url(f"/segments/{pro}"), headers=tenant.headers)
    assert response.status_code == 409
    assert sorted(u["kind"] for u in response.json["usages"]) == ["playbook", "segment_action", "view"]


def test_other_workspaces_see_nothing_and_viewers_only_read(client, database, tenant, other_tenant, pro):
    sequence = post(client, tenant, "/sequences", SEQUENCE)["id"]
    playbook = post(
        client,
        tenant,
        "/playbooks",
        {"name": "Tag", "trigger": {"kind": "enters", "segment_id": pro}, "actions": [{"type": "add_tag", "tag": "x"}]},
    )["id"]
    # Another company's token on our workspace: 404; our ids under its own workspace: 404.
    assert client.get(tenant.url(f"/sequences/{sequence}"), headers=other_tenant.headers).status_code == 404
    assert client.get(other_tenant.url(f"/playbooks/{playbook}"), headers=other_tenant.headers).status_code == 404
    # A playbook of theirs may not name our segment.
    response = client.post(
        other_tenant.url("/playbooks"),
        headers=other_tenant.headers,
        json={
            "name": "x",
            "trigger": {"kind": "enters", "segment_id": pro},
            "actions": [{"type": "add_tag", "tag": "x"}],
        },
    )
    assert (response.status_code, response.json["errors"][0]["field"]) == (422, "body.trigger.segment_id")

    viewer = make_tenant(database, "viewerco", role=Role.VIEWER)
    assert client.get(viewer.url("/playbooks"), headers=viewer.headers).status_code == 200
    assert client.post(viewer.url("/sequences"), headers=viewer.headers, json=SEQUENCE).status_code == 403


def test_message_events_are_ingested_over_the_api(client, database, tenant):
    ingest(database, tenant.workspace_id, {"external_id": "ann"})
    body = {"batch": [{"external_id": "ann", "kind": "opened", "message_id": "m-1"}]}
    assert post(client, tenant, "/messages", body, status=200) == {"recorded": 1, "duplicates": 0}
    bad = client.post(
        tenant.url("/messages"), headers=tenant.headers, json={"batch": [{"external_id": "zed", "kind": "opened"}]}
    )
    assert (bad.status_code, bad.json["errors"][0]["field"]) == (422, "body.batch[0]")
