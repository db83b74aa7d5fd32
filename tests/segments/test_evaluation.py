"""Saving a dynamic definition answers at once; the segment is evaluated on the executor
(``connector.segments.evaluation``) and usable in other conditions only once evaluated."""

from __future__ import annotations

import time

import pytest

from connector.models import Segment, utcnow
from connector.segments import evaluation, service
from tests.segments.factories import Data
from tests.segments.support import PRO, segments_of

PROBLEM = "application/problem+json"


@pytest.fixture
def data(database, tenant) -> Data:
    return Data(database, workspace_id=tenant.workspace_id, now=utcnow())


def evaluated(client, tenant, segment_id: int, timeout: float = 20.0) -> dict:
    """The segment once its evaluation is over (done or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        segment = client.get(tenant.url(f"/segments/{segment_id}"), headers=tenant.headers).get_json()
        if segment["evaluation"]["status"] in ("done", "failed") or time.monotonic() > deadline:
            return segment
        time.sleep(0.05)


def test_creating_a_dynamic_segment_answers_pending_and_the_executor_evaluates_it(client, tenant, data, database):
    ann = data.user(email="ann@acme.com", attributes={"plan": "pro"})
    data.user(email="bob@acme.com", attributes={"plan": "free"})

    response = client.post(tenant.url("/segments"), headers=tenant.headers, json={"name": "Pro", "conditions": PRO})

    assert response.status_code == 201
    answer = response.get_json()
    assert answer["evaluation"] == {"status": "pending", "progress": 0.0}
    assert answer["member_count"] == 0
    done = evaluated(client, tenant, answer["id"])
    assert done["evaluation"] == {"status": "done", "progress": 1.0}
    assert done["member_count"] == 1
    assert done["last_evaluated_at"] is not None
    assert segments_of(database, ann) == ["Pro"]


def test_redefining_a_segment_answers_pending_and_the_new_definition_is_evaluated(client, tenant, data, database):
    ann = data.user(email="ann@acme.com", attributes={"plan": "pro"})
    created = client.post(
        tenant.url("/segments?wait=true"), headers=tenant.headers, json={"name": "Pro", "conditions": PRO}
    ).get_json()
    assert (created["evaluation"]["status"], created["member_count"]) == ("done", 1)

    response = client.patch(
        tenant.url(f"/segments/{created['id']}"),
        headers=tenant.headers,
        json={"conditions": {**PRO, "value": "enterprise"}},
    )

    assert response.status_code == 200
    assert response.get_json()["evaluation"]["status"] == "pending"
    done = evaluated(client, tenant, created["id"])
    assert (done["evaluation"]["status"], done["member_count"]) == ("done", 0)
    assert segments_of(database, ann) == []


def test_a_segment_is_usable_in_conditions_only_once_evaluated(client, tenant, data, database):
    data.user(email="ann@acme.com", attributes={"plan": "pro"})
    with database.session() as session:
        pending = service.create_segment(
            session, tenant.workspace_id, name="Pro", subject_type="user", conditions=PRO, evaluate=False
        )
        pending_id = pending.id
    referencing = {"name": "Uses Pro", "conditions": {"type": "segment", "segment_id": pending_id}}

    refused = client.post(tenant.url("/segments"), headers=tenant.headers, json=referencing)

    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    error = refused.get_json()["errors"][0]
    assert error["field"] == "body.conditions.segment_id"
    assert "not evaluated yet (pending)" in error["reason"]
    with database.session() as session:
        assert session.get(Segment, pending_id).evaluation == "pending"  # nothing else was written

    assert evaluation.evaluate(database, tenant.workspace_id, pending_id) == "done"
    accepted = client.post(tenant.url("/segments?wait=true"), headers=tenant.headers, json=referencing)
    assert accepted.status_code == 201
    assert accepted.get_json()["member_count"] == 1


def test_an_evaluation_of_a_segment_already_evaluated_does_nothing(tenant, data, database):
    with database.session() as session:
        segment = service.create_segment(session, tenant.workspace_id, name="Pro", subject_type="user", conditions=PRO)
        segment_id = segment.id
        assert segment.evaluation == "done"
    assert evaluation.evaluate(database, tenant.workspace_id, segment_id) is None
    assert evaluation.evaluate(database, tenant.workspace_id + 1, segment_id) is None  # another workspace's


def test_an_evaluation_that_fails_says_so_with_the_reason(client, tenant, data, database):
    with database.session() as session:
        segment = service.create_segment(
            session, tenant.workspace_id, name="Pro", subject_type="user", conditions=PRO, evaluate=False
        )
        segment_id = segment.id
        # A definition the engine cannot compile (saved by hand, past the service's validation).
        segment.conditions = {"type": "no-such-condition"}

    assert evaluation.evaluate(database, tenant.workspace_id, segment_id) == "failed"
    got = client.get(tenant.url(f"/segments/{segment_id}"), headers=tenant.headers).get_json()
    assert got["evaluation"]["status"] == "failed" and got["evaluation"]["error"]


def test_a_segment_left_pending_by_a_stopped_process_is_evaluated_by_a_refresh(client, tenant, data, database):
    data.user(email="ann@acme.com", attributes={"plan": "pro"})
    with database.session() as session:
        segment = service.create_segment(
            session, tenant.workspace_id, name="Pro", subject_type="user", conditions=PRO, evaluate=False
        )
        segment_id = segment.id  # pending, and nothing will evaluate it

    response = client.post(tenant.url(f"/segments/{segment_id}/refresh"), headers=tenant.headers)

    assert response.status_code == 200
    got = client.get(tenant.url(f"/segments/{segment_id}"), headers=tenant.headers).get_json()
    assert (got["evaluation"]["status"], got["member_count"]) == ("done", 1)
