"""A body that is not JSON, or not sent as JSON, is a 400 "the body is not valid JSON" on every JSON endpoint,
and nothing is written."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import func, select

from connector.models import Segment, User

BAD_BODIES = [
    ("application/json", "{not json"),
    ("application/json", ""),
    ("application/json", '{"batch": [1, 2'),
    ("text/plain", '{"batch": []}'),
    ("application/x-www-form-urlencoded", "batch=1"),
]


def json_endpoints(app) -> list[tuple[str, str]]:
    """(method, URL rule) of every view that takes a JSON body, ids in paths filled with 1."""
    found = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if "body" not in inspect.signature(view).parameters:
            continue
        url = rule.rule.replace("<workspace>", "acme")
        for argument in rule.arguments - {"workspace"}:
            url = url.replace(f"<int:{argument}>", "1").replace(f"<{argument}>", "1")
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            found.append((method, url))
    return found


@pytest.mark.parametrize(("content_type", "data"), BAD_BODIES, ids=["broken", "empty", "truncated", "text", "form"])
def test_every_json_endpoint_refuses_a_body_that_is_not_json_with_400(client, app, tenant, content_type, data):
    endpoints = json_endpoints(app)
    assert len(endpoints) >= 15
    for method, url in endpoints:
        response = client.open(url, method=method, data=data, headers={**tenant.headers, "Content-Type": content_type})
        assert response.status_code == 400, (method, url, response.get_json())
        assert response.content_type == "application/problem+json"
        problem = response.get_json()
        assert problem["detail"].startswith("the body is not valid JSON")
        assert problem["errors"][0]["field"] == "body"


def test_wrong_content_type_is_named_and_nothing_is_written(client, tenant, database):
    response = client.post(
        tenant.url("/identify"),
        data='{"batch": [{"external_id": "u1"}]}',
        headers={**tenant.headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert "Content-Type must be application/json, got text/plain" in response.get_json()["detail"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_valid_json_of_the_wrong_shape_stays_a_422(client, tenant, database):
    response = client.post(tenant.url("/segments"), json=[1, 2], headers=tenant.headers)
    assert response.status_code == 422
    response = client.post(
        tenant.url("/segments"), data="null", headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Segment)) == 0


def test_csv_uploads_are_not_held_to_json(client, tenant):
    response = client.post(
        tenant.url("/imports/users"), data="external_id\nu1\n", headers=tenant.headers, content_type="text/csv"
    )
    assert response.status_code == 200, response.get_json()


def test_a_stranger_with_a_broken_body_still_gets_401(client, tenant):
    response = client.post(tenant.url("/segments"), data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 401
