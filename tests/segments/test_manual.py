"""Manual segments: explicit members by id, email or external id, from JSON and from CSV uploads."""

from __future__ import annotations

import io

import pytest

from connector.models import Segment, utcnow
from tests.segments.factories import Data
from tests.segments.support import PRO, count_rows, history, members, segments_of

PROBLEM = "application/problem+json"


@pytest.fixture
def data(database, tenant) -> Data:
    return Data(database, workspace_id=tenant.workspace_id, now=utcnow())


@pytest.fixture
def people(data):
    return {
        "ann": data.user(email="ann@x.com", external_id="u-ann"),
        "bob": data.user(email="bob@x.com", external_id="u-bob"),
        "cat": data.user(email="cat@x.com", external_id="u-cat"),
    }


def manual_segment(client, tenant, name="VIPs", subject_type="user") -> int:
    response = client.post(
        tenant.url("/segments"),
        headers=tenant.headers,
        json={"name": name, "kind": "manual", "subject_type": subject_type},
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["member_count"] == 0
    return response.get_json()["id"]


def test_add_by_id_email_and_external_id_and_report_unknown(client, tenant, database, people):
    segment = manual_segment(client, tenant)

    response = client.post(
        tenant.url(f"/segments/{segment}/members"),
        headers=tenant.headers,
        json={"add": [{"id": people["ann"]}, {"email": "BOB@x.com"}, {"external_id": "u-cat"}, {"email": "who@x.com"}]},
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["added"] == 3 and body["member_count"] == 3
    assert body["unknown"] == [
        {"field": "body.add[3]", "value": "who@x.com", "reason": "no user with this email in this workspace"}
    ]
    assert members(database, segment) == set(people.values())
    assert segments_of(database, people["bob"]) == ["VIPs"]


def test_remove_and_readd_keeps_history(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    url = tenant.url(f"/segments/{segment}/members")
    client.post(url, headers=tenant.headers, json={"add": [{"id": people["ann"]}]})
    removed = client.post(url, headers=tenant.headers, json={"remove": [{"email": "ann@x.com"}]}).get_json()
    assert removed["removed"] == 1 and segments_of(database, people["ann"]) == []
    client.post(url, headers=tenant.headers, json={"add": [{"id": people["ann"]}, {"id": people["ann"]}]})

    assert history(database, segment) == [(people["ann"], c) for c in ("entered", "exited", "entered")]


def test_adding_a_member_twice_changes_nothing(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    url = tenant.url(f"/segments/{segment}/members")
    client.post(url, headers=tenant.headers, json={"add": [{"id": people["ann"]}]})
    again = client.post(url, headers=tenant.headers, json={"add": [{"external_id": "u-ann"}]}).get_json()
    assert again["added"] == 0
    assert len(history(database, segment)) == 1


def test_people_of_another_workspace_are_unknown(client, tenant, other_tenant, database):
    theirs = Data(database, workspace_id=other_tenant.workspace_id).user(email="ann@x.com")
    segment = manual_segment(client, tenant)
    body = client.post(
        tenant.url(f"/segments/{segment}/members"),
        headers=tenant.headers,
        json={"add": [{"id": theirs}, {"email": "ann@x.com"}]},
    ).get_json()
    assert body["added"] == 0 and body["unknown_count"] == 2
    assert members(database, segment) == set()


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({}, "body.add[0]"),
        ({"id": 1, "email": "a@x.com"}, "body.add[0]"),
        ({"id": "seven"}, "body.add[0].id"),
        ({"id": 2**64}, "body.add[0].id"),
        ({"email": ""}, "body.add[0].email"),
        ({"email": "a\x00b@x.com"}, "body.add[0].email"),
        ({"external_id": "\ud800"}, "body.add[0].external_id"),
        ({"phone": "123"}, "body.add[0]"),
        ("ann@x.com", "body.add[0]"),
    ],
)
def test_malformed_references_are_refused_and_nothing_changes(client, tenant, database, people, item, field):
    segment = manual_segment(client, tenant)
    response = client.post(
        tenant.url(f"/segments/{segment}/members"),
        headers=tenant.headers,
        json={"add": [item, {"id": people["ann"]}]},
    )
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert field in [e["field"] for e in response.get_json()["errors"]]
    assert members(database, segment) == set()


def test_dynamic_segment_members_cannot_be_edited(client, tenant, people):
    response = client.post(tenant.url("/segments"), headers=tenant.headers, json={"name": "Pro", "conditions": PRO})
    segment = response.get_json()["id"]
    response = client.post(
        tenant.url(f"/segments/{segment}/members"), headers=tenant.headers, json={"add": [{"id": people["ann"]}]}
    )
    assert response.status_code == 409 and response.mimetype == PROBLEM


def test_csv_upload_with_header_reports_unknown_rows(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    csv_text = "email,id\nann@x.com,\n,{bob}\nnobody@x.com,\n\n,999999\n".format(bob=people["bob"])

    response = client.post(
        tenant.url(f"/segments/{segment}/members/upload"),
        headers=tenant.headers,
        data=csv_text,
        content_type="text/csv",
    )

    body = response.get_json()
    assert response.status_code == 200, body
    assert body["added"] == 2
    assert [(u["row"], u["value"]) for u in body["unknown"]] == [(4, "nobody@x.com"), (6, 999999)]
    assert members(database, segment) == {people["ann"], people["bob"]}


def test_csv_upload_without_header_as_multipart_file(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    content = f"ann@x.com\n{people['cat']}\nnot-a-reference\n".encode()

    response = client.post(
        tenant.url(f"/segments/{segment}/members/upload"),
        headers=tenant.headers,
        data={"file": (io.BytesIO(content), "people.csv")},
        content_type="multipart/form-data",
    )

    body = response.get_json()
    assert body["added"] == 2
    assert [u["row"] for u in body["unknown"]] == [3]
    assert members(database, segment) == {people["ann"], people["cat"]}


def test_csv_upload_can_remove(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    url = tenant.url(f"/segments/{segment}/members")
    client.post(url, headers=tenant.headers, json={"add": [{"id": i} for i in people.values()]})
    body = client.post(
        url + "/upload?mode=remove", headers=tenant.headers, data="external_id\nu-ann\nu-bob\n", content_type="text/csv"
    ).get_json()
    assert body["removed"] == 2
    assert members(database, segment) == {people["cat"]}


def test_bad_csv_is_refused_and_nothing_changes(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    url = tenant.url(f"/segments/{segment}/members/upload")
    not_utf8 = client.post(
        url, headers=tenant.headers, data=b"ann@x.com\n\x81\x8d\x8f\x90\x9d\x00\xff\n", content_type="text/csv"
    )
    assert not_utf8.status_code == 422 and not_utf8.mimetype == PROBLEM
    assert not_utf8.get_json()["errors"][0]["field"] == "body.file"
    no_file = client.post(url, headers=tenant.headers, data={"other": "x"}, content_type="multipart/form-data")
    assert no_file.status_code == 422
    assert members(database, segment) == set()


def test_create_a_list_from_an_upload(client, tenant, database, people):
    response = client.post(
        tenant.url("/segments/upload?name=Webinar%20attendees"),
        headers=tenant.headers,
        data="email\nann@x.com\ncat@x.com\nghost@x.com\n",
        content_type="text/csv",
    )

    body = response.get_json()
    assert response.status_code == 201, body
    assert body["segment"]["kind"] == "manual" and body["segment"]["member_count"] == 2
    assert body["unknown_count"] == 1
    assert segments_of(database, people["cat"]) == ["Webinar attendees"]

    taken = client.post(
        tenant.url("/segments/upload?name=Webinar%20attendees"),
        headers=tenant.headers,
        data="email\nbob@x.com\n",
        content_type="text/csv",
    )
    assert taken.status_code == 409 and taken.get_json()["errors"][0]["field"] == "query.name"
    assert count_rows(database, Segment) == 1


def test_upload_that_is_not_csv_creates_no_list(client, tenant, database):
    response = client.post(
        tenant.url("/segments/upload?name=Broken"),
        headers=tenant.headers,
        data=b"\x81\x8d\x8f\x90\x9d\x00\xff",
        content_type="text/csv",
    )
    assert response.status_code == 422
    assert count_rows(database, Segment) == 0


def test_manual_segments_never_change_by_themselves(client, tenant, database, people):
    segment = manual_segment(client, tenant)
    client.post(
        tenant.url(f"/segments/{segment}/members"), headers=tenant.headers, json={"add": [{"id": people["ann"]}]}
    )

    client.post(
        tenant.url("/identify"),
        headers=tenant.headers,
        json={"batch": [{"external_id": "u-ann", "attributes": {"plan": "pro"}}, {"email": "new@x.com"}]},
    )
    client.post(tenant.url("/segments/refresh"), headers=tenant.headers)

    assert members(database, segment) == {people["ann"]}


def test_account_lists_take_ids_and_external_ids(client, tenant, database, data):
    acme = data.account(external_id="acme")
    globex = data.account(external_id="globex")
    segment = manual_segment(client, tenant, "Key accounts", "account")
    body = client.post(
        tenant.url(f"/segments/{segment}/members"),
        headers=tenant.headers,
        json={"add": [{"id": acme}, {"external_id": "globex"}, {"email": "x@acme.com"}]},
    ).get_json()
    assert body["added"] == 2
    assert body["unknown"][0]["reason"] == "accounts have no email; use id or external_id"
    assert members(database, segment) == {acme, globex}
    assert segments_of(database, acme, "account") == ["Key accounts"]
