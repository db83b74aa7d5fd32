"""The segments API over real HTTP (Flask's test client) on a real database, both backends."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import insert

from connector.models import Destination, Segment, Sync, SyncSegment, User, utcnow
from tests.segments.factories import Data
from tests.segments.support import PRO, count_rows, members, segments_of

PROBLEM = "application/problem+json"


@pytest.fixture
def data(database, tenant) -> Data:
    return Data(database, workspace_id=tenant.workspace_id, now=utcnow())


def create(client, tenant, **body):
    body.setdefault("subject_type", "user")
    response = client.post(tenant.url("/segments?wait=true"), headers=tenant.headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def test_created_segment_is_evaluated_before_the_answer(client, tenant, data, database):
    ann = data.user(email="ann@acme.com", attributes={"plan": "pro"})
    data.user(email="bob@acme.com", attributes={"plan": "free"})

    segment = create(client, tenant, name="Pro", description="Paying", conditions=PRO)

    assert segment["member_count"] == 1
    assert segment["kind"] == "dynamic"
    assert segment["created_by"] == tenant.member_id
    assert segment["last_evaluated_at"] is not None
    assert members(database, segment["id"]) == {ann}
    assert segments_of(database, ann) == ["Pro"]


def test_list_get_update_and_delete(client, tenant, data, database):
    ann = data.user(attributes={"plan": "pro"})
    pro = create(client, tenant, name="Pro", conditions=PRO)
    create(client, tenant, name="Anyone", conditions={"type": "all", "children": []})

    listed = client.get(tenant.url("/segments"), headers=tenant.headers).get_json()["data"]
    assert [(s["name"], s["member_count"]) for s in listed] == [("Anyone", 1), ("Pro", 1)]

    got = client.get(tenant.url(f"/segments/{pro['id']}"), headers=tenant.headers).get_json()
    assert got["conditions"]["name"] == "plan"

    renamed = client.patch(tenant.url(f"/segments/{pro['id']}"), headers=tenant.headers, json={"name": "Paying"})
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "Paying"
    assert segments_of(database, ann) == ["Anyone", "Paying"]

    redefined = client.patch(
        tenant.url(f"/segments/{pro['id']}?wait=true"),
        headers=tenant.headers,
        json={"conditions": {**PRO, "value": "enterprise"}},
    )
    assert redefined.get_json()["member_count"] == 0
    assert segments_of(database, ann) == ["Anyone"]

    deleted = client.delete(tenant.url(f"/segments/{pro['id']}"), headers=tenant.headers)
    assert deleted.status_code == 204
    assert client.get(tenant.url(f"/segments/{pro['id']}"), headers=tenant.headers).status_code == 404


def test_invalid_tree_names_the_bad_node_and_writes_nothing(client, tenant, database):
    conditions = {
        "type": "all",
        "children": [PRO, {"type": "event", "name": "purchase", "count": {"operator": "at_least", "value": -1}}],
    }
    response = client.post(
        tenant.url("/segments"), headers=tenant.headers, json={"name": "Bad", "conditions": conditions}
    )
    assert_problem(response, 422, "body.conditions.children[1].count.value")
    assert count_rows(database, Segment) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "conditions": PRO}, "body.name"),
        ({"name": "x" * 201, "conditions": PRO}, "body.name"),
        ({"name": "No tree"}, "body.conditions"),
        ({"name": "Manual with tree", "kind": "manual", "conditions": PRO}, "body.conditions"),
        ({"name": "Bad type", "subject_type": "robot", "conditions": PRO}, "body.subject_type"),
        ({"name": "List tree", "conditions": [PRO]}, "body.conditions"),
        ({"name": "Group", "conditions": PRO, "group_id": 999}, "body.group_id"),
        ({"name": "Huge group", "conditions": PRO, "group_id": 2**70}, "body.group_id"),
        ({"name": "Extra", "conditions": PRO, "colour": "red"}, "body.colour"),
        ({"name": "Events on accounts", "subject_type": "account", "conditions": {"type": "event", "name": "x"}},
         "body.conditions.type"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_its_field(client, tenant, database, body, field):
    response = client.post(tenant.url("/segments"), headers=tenant.headers, json=body)
    assert_problem(response, 422, field)
    assert count_rows(database, Segment) == 0


def test_duplicate_name_is_a_conflict(client, tenant):
    create(client, tenant, name="Pro", conditions=PRO)
    response = client.post(tenant.url("/segments"), headers=tenant.headers, json={"name": "Pro", "conditions": PRO})
    assert_problem(response, 409, "body.name")


def test_reference_to_missing_or_foreign_or_wrong_type_segment(client, tenant, other_tenant):
    foreign = create(client, other_tenant, name="Theirs", conditions=PRO)
    accounts = create(client, tenant, name="Accounts", subject_type="account", conditions={"type": "all"})
    for segment_id in (foreign["id"], 10**6, accounts["id"]):
        tree = {"type": "any", "children": [PRO, {"type": "segment", "segment_id": segment_id}]}
        response = client.post(
            tenant.url("/segments"), headers=tenant.headers, json={"name": "Ref", "conditions": tree}
        )
        assert_problem(response, 422, "body.conditions.children[1].segment_id")


def test_cycle_is_refused_naming_it(client, tenant, database):
    a = create(client, tenant, name="A", conditions=PRO)
    b = create(client, tenant, name="B", conditions={"type": "segment", "segment_id": a["id"]})
    tree = {"type": "all", "children": [PRO, {"type": "segment", "segment_id": b["id"]}]}

    response = client.patch(tenant.url(f"/segments/{a['id']}"), headers=tenant.headers, json={"conditions": tree})

    body = assert_problem(response, 422, "body.conditions.children[1].segment_id")
    assert "A -> B -> A" in body["errors"][0]["reason"]
    with database.session() as session:
        assert session.get(Segment, a["id"]).conditions == PRO | {"value_type": "string", "field": None, "of": None}


def test_delete_and_type_change_refused_while_used(client, tenant, database):
    used = create(client, tenant, name="Used", conditions=PRO)
    create(client, tenant, name="User of it", conditions={"type": "segment", "segment_id": used["id"]})
    with database.engine.begin() as conn:
        destination = conn.execute(
            insert(Destination.__table__).values(workspace_id=tenant.workspace_id, name="Hub", type="hubspot")
        ).inserted_primary_key[0]
        sync = conn.execute(
            insert(Sync.__table__).values(
                workspace_id=tenant.workspace_id,
                destination_id=destination,
                name="To HubSpot",
                subject_type="user",
                destination_object="contacts",
            )
        ).inserted_primary_key[0]
        conn.execute(insert(SyncSegment.__table__).values(sync_id=sync, segment_id=used["id"]))

    response = client.delete(tenant.url(f"/segments/{used['id']}"), headers=tenant.headers)
    body = assert_problem(response, 409)
    assert {(u["kind"], u["name"]) for u in body["usages"]} == {("segment", "User of it"), ("sync", "To HubSpot")}

    response = client.patch(
        tenant.url(f"/segments/{used['id']}"),
        headers=tenant.headers,
        json={"subject_type": "account", "conditions": {"type": "all"}},
    )
    assert_problem(response, 409)
    with database.session() as session:
        assert session.get(Segment, used["id"]).subject_type == "user"


def test_other_workspaces_segments_are_not_found(client, tenant, other_tenant):
    theirs = create(client, other_tenant, name="Theirs", conditions=PRO)
    for method, suffix in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("get", "/members"),
        ("get", "/history"),
        ("get", "/members.csv"),
        ("post", "/refresh"),
        ("get", "/explain?subject_id=1"),
    ]:
        kwargs = {"json": {"name": "Mine"}} if method == "patch" else {}
        response = getattr(client, method)(
            tenant.url(f"/segments/{theirs['id']}{suffix}"), headers=tenant.headers, **kwargs
        )
        assert_problem(response, 404)


def test_out_of_range_ids_are_refused_not_crashed(client, tenant):
    assert client.get(tenant.url(f"/segments/{2**64}"), headers=tenant.headers).status_code == 422
    response = client.get(tenant.url(f"/segments/history?subject_type=user&subject_id={2**64}"), headers=tenant.headers)
    assert_problem(response, 422, "query.subject_id")


def test_refresh_one_and_all(client, tenant, data, database):
    pro = create(client, tenant, name="Pro", conditions=PRO)
    ann = data.user(attributes={"plan": "pro"})  # written behind the engine's back

    answer = client.post(tenant.url(f"/segments/{pro['id']}/refresh"), headers=tenant.headers).get_json()
    assert answer["entered"] == 1
    assert members(database, pro["id"]) == {ann}
    refreshed = client.get(tenant.url(f"/segments/{pro['id']}"), headers=tenant.headers).get_json()
    assert refreshed["updated_at"] == pro["updated_at"]
    assert refreshed["last_evaluated_at"] > pro["last_evaluated_at"]

    data.user(attributes={"plan": "pro"})
    answer = client.post(tenant.url("/segments/refresh"), headers=tenant.headers).get_json()
    assert answer["segments"] == 1 and answer["entered"] == 1


def test_preview_counts_samples_and_diffs_without_saving(client, tenant, data, database):
    users = [data.user(email=f"u{i}@x.com", attributes={"plan": "pro" if i < 25 else "free"}) for i in range(30)]
    saved = create(client, tenant, name="Pro", conditions=PRO)
    history_before = count_rows(database, Segment)

    response = client.post(
        tenant.url("/segments/preview"),
        headers=tenant.headers,
        json={"subject_type": "user", "conditions": {**PRO, "value": "free"}, "segment_id": saved["id"]},
    )

    preview = response.get_json()
    assert preview["count"] == 5
    assert [s["id"] for s in preview["sample"]] == users[25:]
    assert preview["would_add"] == 5 and preview["would_remove"] == 25
    assert members(database, saved["id"]) == set(users[:25])
    assert count_rows(database, Segment) == history_before

    big = client.post(tenant.url("/segments/preview"), headers=tenant.headers, json={"conditions": PRO}).get_json()
    assert big["count"] == 25 and len(big["sample"]) == 20


def test_preview_of_a_bad_tree_is_a_422(client, tenant):
    response = client.post(
        tenant.url("/segments/preview"), headers=tenant.headers, json={"conditions": {"type": "nonsense"}}
    )
    assert_problem(response, 422, "body.conditions.type")


def test_explain_says_why(client, tenant, data):
    ann = data.user(attributes={"plan": "pro"})
    data.event(ann, "purchase", at=utcnow() - timedelta(days=2))
    tree = {
        "type": "all",
        "children": [
            PRO,
            {"type": "event", "name": "purchase", "window": {"within_last": {"amount": 1, "unit": "days"}}},
        ],
    }
    segment = create(client, tenant, name="Recent pro buyers", conditions=tree)

    answer = client.get(tenant.url(f"/segments/{segment['id']}/explain?subject_id={ann}"), headers=tenant.headers)

    body = answer.get_json()
    assert body["member"] is False
    assert [c["matched"] for c in body["explanation"]["children"]] == [True, False]


def test_members_search_and_cursor_pages(client, tenant, data):
    ids = [data.user(email=f"{name}@x.com", external_id=f"ext-{name}") for name in ("ann", "anna", "bob", "carl")]
    segment = create(client, tenant, name="All", conditions={"type": "all"})
    url = tenant.url(f"/segments/{segment['id']}/members")

    first = client.get(url + "?limit=3", headers=tenant.headers).get_json()
    assert [m["id"] for m in first["data"]] == ids[:3]
    second = client.get(url + f"?limit=3&cursor={first['next_cursor']}", headers=tenant.headers).get_json()
    assert [m["id"] for m in second["data"]] == ids[3:] and second["next_cursor"] is None

    found = client.get(url + "?search=AN", headers=tenant.headers).get_json()["data"]
    assert [m["email"] for m in found] == ["ann@x.com", "anna@x.com"]
    by_external = client.get(url + "?search=ext-b", headers=tenant.headers).get_json()["data"]
    assert [m["id"] for m in by_external] == [ids[2]]
    percent = client.get(url + "?search=%25", headers=tenant.headers).get_json()["data"]
    assert percent == []

    assert_problem(client.get(url + "?cursor=not-a-cursor", headers=tenant.headers), 422, "query.cursor")
    assert_problem(client.get(url + "?search=a%00b", headers=tenant.headers), 422, "query.search")


def test_export_streams_members_with_chosen_attributes(client, tenant, data):
    ann = data.user(email="ann@x.com", attributes={"plan": "pro", "country": "FR", "seats": 3, "beta": True})
    bob = data.user(email="bob@x.com", attributes={"plan": "pro", "tags": ["a", "b"]})
    segment = create(client, tenant, name="Pro users", conditions=PRO)

    response = client.get(
        tenant.url(f"/segments/{segment['id']}/members.csv?attributes=country,seats,beta,tags"), headers=tenant.headers
    )

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["id", "external_id", "email", "entered_at", "country", "seats", "beta", "tags"]
    assert [(r[0], r[2], r[4:]) for r in rows[1:]] == [
        (str(ann), "ann@x.com", ["FR", "3", "true", ""]),
        (str(bob), "bob@x.com", ["", "", "", '["a","b"]']),
    ]


def test_export_refuses_bad_attribute_lists(client, tenant):
    segment = create(client, tenant, name="All", conditions={"type": "all"})
    url = tenant.url(f"/segments/{segment['id']}/members.csv")
    assert_problem(client.get(url + "?attributes=a,,b", headers=tenant.headers), 422, "query.attributes")
    many = ",".join(f"a{i}" for i in range(51))
    assert_problem(client.get(url + f"?attributes={many}", headers=tenant.headers), 422, "query.attributes")


def test_history_per_segment_and_per_subject(client, tenant, data):
    ann = data.user(attributes={"plan": "pro"})
    pro = create(client, tenant, name="Pro", conditions=PRO)
    for plan in ("free", "pro"):
        client.post(
            tenant.url("/identify"),
            headers=tenant.headers,
            json={"batch": [{"external_id": _external_id(data, ann), "attributes": {"plan": plan}}]},
        )

    page = client.get(tenant.url(f"/segments/{pro['id']}/history?limit=2"), headers=tenant.headers).get_json()
    assert [e["change"] for e in page["data"]] == ["entered", "exited"]
    rest = client.get(
        tenant.url(f"/segments/{pro['id']}/history?limit=2&cursor={page['next_cursor']}"), headers=tenant.headers
    ).get_json()
    assert [e["change"] for e in rest["data"]] == ["entered"] and rest["next_cursor"] is None

    since = page["data"][0]["at"]
    recent = client.get(
        tenant.url(f"/segments/{pro['id']}/history"), headers=tenant.headers, query_string={"since": since}
    ).get_json()
    assert [e["change"] for e in recent["data"]] == ["entered"]

    mine = client.get(
        tenant.url("/segments/history"),
        headers=tenant.headers,
        query_string={"subject_type": "user", "subject_id": ann},
    ).get_json()["data"]
    assert [(e["segment"], e["change"]) for e in mine] == [("Pro", "entered"), ("Pro", "exited"), ("Pro", "entered")]


def _external_id(data: Data, user_id: int) -> str:
    with data.database.session() as session:
        return session.get(User, user_id).external_id


def test_segment_groups_crud(client, tenant):
    response = client.post(tenant.url("/segment-groups"), headers=tenant.headers, json={"name": "Lifecycle"})
    assert response.status_code == 201
    group = response.get_json()
    assert_problem(client.post(tenant.url("/segment-groups"), headers=tenant.headers, json={"name": "Lifecycle"}), 409)

    segment = create(client, tenant, name="Pro", conditions=PRO, group_id=group["id"])
    got = client.get(tenant.url(f"/segment-groups/{group['id']}"), headers=tenant.headers).get_json()
    assert [s["id"] for s in got["segments"]] == [segment["id"]]

    renamed = client.patch(
        tenant.url(f"/segment-groups/{group['id']}"), headers=tenant.headers, json={"name": "Stages"}
    )
    assert renamed.get_json()["name"] == "Stages"
    listed = client.get(tenant.url("/segment-groups"), headers=tenant.headers).get_json()["data"]
    assert [(g["name"], g["segment_count"]) for g in listed] == [("Stages", 1)]

    assert client.delete(tenant.url(f"/segment-groups/{group['id']}"), headers=tenant.headers).status_code == 204
    assert client.get(tenant.url(f"/segments/{segment['id']}"), headers=tenant.headers).get_json()["group_id"] is None


def test_viewer_may_read_but_not_write(client, database, tenant):
    from connector.models import Role
    from tests.conftest import make_tenant

    viewer = make_tenant(database, "viewer-co", role=Role.VIEWER)
    assert client.get(viewer.url("/segments"), headers=viewer.headers).status_code == 200
    response = client.post(viewer.url("/segments"), headers=viewer.headers, json={"name": "X", "conditions": PRO})
    assert_problem(response, 403)
