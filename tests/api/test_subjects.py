from connector.directory import RECENT_EVENTS
from connector.models import Account, ComputedValue, Segment, SegmentKind, SegmentMembership, SubjectType
from tests.ingest.helpers import ok, post_batch, rows


def seed_users(client, tenant, n=5):
    items = [
        {
            "external_id": f"u{i}",
            "email": f"user{i}@example.com",
            "attributes": {"plan": "pro" if i % 2 else "free", "seats": i, "vip": i == 3},
            "tags": ["even"] if i % 2 == 0 else ["odd"],
        }
        for i in range(n)
    ]
    body = ok(post_batch(client, tenant, "identify", items))
    return {f"u{i}": r["id"] for i, r in enumerate(body["results"])}


def add_segment(database, tenant, name, member_ids, subject_type=SubjectType.USER):
    with database.session() as session:
        segment = Segment(
            workspace_id=tenant.workspace_id, name=name, subject_type=subject_type, kind=SegmentKind.MANUAL
        )
        session.add(segment)
        session.flush()
        session.add_all(SegmentMembership(segment_id=segment.id, subject_id=i) for i in member_ids)
        return segment.id


def external_ids(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [u["external_id"] for u in response.json["data"]]


def test_users_page_by_id_with_an_opaque_cursor(client, tenant):
    seed_users(client, tenant, 7)
    seen, cursor = [], None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(tenant.url("/users" + query), headers=tenant.headers).json
        seen += [u["external_id"] for u in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"u{i}" for i in range(7)]


def test_user_list_shape(client, tenant):
    seed_users(client, tenant, 1)
    (user,) = client.get(tenant.url("/users"), headers=tenant.headers).json["data"]
    assert set(user) == {"id", "external_id", "email", "attributes", "tags", "created_at", "updated_at"}
    assert user["tags"] == ["even"]
    assert user["attributes"] == {"plan": "free", "seats": 0, "vip": False}


def test_users_filter_by_attribute_tag_email_and_external_id(client, tenant):
    seed_users(client, tenant, 6)
    get = lambda query: external_ids(client.get(tenant.url("/users" + query), headers=tenant.headers))  # noqa: E731
    assert get("?attribute=plan:pro") == ["u1", "u3", "u5"]
    assert get("?attribute=plan:pro&attribute=seats:3") == ["u3"]
    assert get("?attribute=vip:true") == ["u3"]
    assert get("?attribute=missing:x") == []
    assert get("?tag=even") == ["u0", "u2", "u4"]
    assert get("?email=USER4@example.com") == ["u4"]
    assert get("?external_id=u2") == ["u2"]


def test_users_filter_by_segment_membership(client, database, tenant):
    ids = seed_users(client, tenant, 5)
    trial = add_segment(database, tenant, "Trial", [ids["u0"], ids["u1"], ids["u2"]])
    add_segment(database, tenant, "Churn risk", [ids["u1"], ids["u4"]])
    get = lambda query: external_ids(client.get(tenant.url("/users" + query), headers=tenant.headers))  # noqa: E731
    assert get("?segment=Trial") == ["u0", "u1", "u2"]
    assert get(f"?segment={trial}") == ["u0", "u1", "u2"]
    assert get("?segment=Trial&segment=Churn%20risk") == ["u1"]
    assert get("?not_segment=Trial") == ["u3", "u4"]
    assert get("?segment=Trial&not_segment=Churn%20risk&attribute=plan:free") == ["u0", "u2"]


def test_unknown_segment_is_422_naming_the_parameter(client, database, tenant, other_tenant):
    seed_users(client, tenant, 1)
    add_segment(database, other_tenant, "Theirs", [])
    add_segment(database, tenant, "Accounts only", [], SubjectType.ACCOUNT)
    for query, field in (
        ("?segment=Nope", "query.segment"),
        ("?not_segment=Theirs", "query.not_segment"),
        ("?segment=Accounts%20only", "query.segment"),
        ("?segment=999999", "query.segment"),
    ):
        response = client.get(tenant.url("/users" + query), headers=tenant.headers)
        assert response.status_code == 422, query
        assert response.content_type == "application/problem+json"
        assert response.json["errors"][0]["field"] == field


def test_bad_list_parameters_are_422(client, tenant):
    for query in (
        "?limit=0",
        "?limit=1001",
        "?cursor=nonsense!",
        "?attribute=noseparator",
        "?cursor=eyJhZnRlciI6IngifQ",
    ):
        response = client.get(tenant.url("/users" + query), headers=tenant.headers)
        assert response.status_code == 422, query
        assert response.content_type == "application/problem+json"


def test_one_user_with_everything_known_about_it(client, database, tenant):
    ids = seed_users(client, tenant, 2)
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "accounts": ["acme"]}]))
    ok(post_batch(client, tenant, "device", [{"external_id": "u1", "platform": "ios", "vendor_device_id": "d1"}]))
    events = [
        {"external_id": "u1", "name": f"e{i}", "occurred_at": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
        for i in range(RECENT_EVENTS + 5)
    ]
    ok(post_batch(client, tenant, "track", events))
    with database.session() as session:
        session.add(
            ComputedValue(
                subject_type=SubjectType.USER,
                subject_id=ids["u1"],
                name="Segments",
                value=["Paying", "Trial"],
                workspace_id=tenant.workspace_id,
            )
        )
    for ref, by in ((ids["u1"], "id"), ("u1", "external_id"), ("USER1@example.com", "email")):
        response = client.get(tenant.url(f"/users/{ref}?by={by}"), headers=tenant.headers)
        assert response.status_code == 200, (ref, by)
        user = response.json
        assert user["id"] == ids["u1"]
    assert [a["external_id"] for a in user["accounts"]] == ["acme"]
    assert [d["vendor_device_id"] for d in user["devices"]] == ["d1"]
    assert len(user["events"]) == RECENT_EVENTS
    assert user["events"][0]["name"] == f"e{RECENT_EVENTS + 4}"  # newest first
    assert user["computed"]["Segments"] == ["Paying", "Trial"]
    assert user["segments"] == ["Paying", "Trial"]
    other = client.get(tenant.url(f"/users/{ids['u0']}"), headers=tenant.headers).json
    assert other["segments"] == [] and "Segments" not in other["computed"]


def test_user_events_page_newest_first(client, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "track",
            [
                {"external_id": "u1", "name": "a" if i % 2 else "b", "occurred_at": f"2024-01-0{1 + i % 3}T00:00:00Z"}
                for i in range(7)
            ]
            + [{"external_id": "u1", "name": "page", "occurred_at": "2024-01-05T00:00:00Z"}],
        )
    )
    seen, cursor = [], None
    while True:
        query = "?by=external_id&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(tenant.url("/users/u1/events" + query), headers=tenant.headers).json
        seen += [(e["occurred_at"], e["id"]) for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8
    assert seen == sorted(seen, reverse=True)
    names = client.get(tenant.url("/users/u1/events?by=external_id&name=a"), headers=tenant.headers).json["data"]
    assert {e["name"] for e in names} == {"a"} and len(names) == 3
    bad = client.get(tenant.url("/users/u1/events?by=external_id&cursor=eyJhdCI6MX0"), headers=tenant.headers)
    assert bad.status_code == 422


def test_unknown_users_and_bad_refs(client, tenant):
    seed_users(client, tenant, 1)
    for path in (
        "/users/999999",
        "/users/nobody?by=external_id",
        "/users/x@y.io?by=email",
        "/users/abc",
        "/users/99999999999999999999999",
        "/users/%C2%B2",
        "/users/nobody/events?by=external_id",
    ):
        response = client.get(tenant.url(path), headers=tenant.headers)
        assert response.status_code == 404, path
        assert response.content_type == "application/problem+json"
    assert client.get(tenant.url("/users/u0?by=name"), headers=tenant.headers).status_code == 422


def test_accounts_list_filters_and_detail(client, database, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "group",
            [
                {
                    "external_id": "acme",
                    "domain": "acme.com",
                    "name": "Acme",
                    "attributes": {"tier": "gold"},
                    "tags": ["big"],
                    "users": [{"external_id": "u1"}, {"external_id": "u2"}],
                },
                {"external_id": "globex", "domain": "globex.com", "attributes": {"tier": "silver"}},
            ],
        )
    )
    (acme,) = rows(database, Account, Account.domain == "acme.com")
    add_segment(database, tenant, "Big", [acme.id], SubjectType.ACCOUNT)
    get = lambda query: external_ids(client.get(tenant.url("/accounts" + query), headers=tenant.headers))  # noqa: E731
    assert get("") == ["acme", "globex"]
    assert get("?attribute=tier:silver") == ["globex"]
    assert get("?domain=ACME.com") == ["acme"]
    assert get("?tag=big") == ["acme"]
    assert get("?segment=Big") == ["acme"]
    assert get("?not_segment=Big") == ["globex"]
    assert get("?limit=1") == ["acme"]
    detail = client.get(tenant.url("/accounts/acme?by=external_id"), headers=tenant.headers).json
    assert (detail["name"], detail["user_count"], detail["tags"]) == ("Acme", 2, ["big"])
    assert [u["external_id"] for u in detail["users"]] == ["u1", "u2"]
    assert detail["segments"] == []
    assert client.get(tenant.url(f"/accounts/{acme.id}"), headers=tenant.headers).json["external_id"] == "acme"
    assert client.get(tenant.url("/accounts/nope?by=external_id"), headers=tenant.headers).status_code == 404


def test_another_workspace_token_gets_404_for_reads(client, database, tenant, other_tenant):
    ids = seed_users(client, tenant, 1)
    ok(post_batch(client, tenant, "group", [{"external_id": "acme"}]))
    for path in (
        "/users",
        f"/users/{ids['u0']}",
        "/users/u0?by=external_id",
        "/users/u0/events?by=external_id",
        "/accounts",
        "/accounts/acme?by=external_id",
    ):
        response = client.get(other_tenant.url(path), headers=tenant.headers)
        assert response.status_code == 404, path
    # The other workspace's own token sees none of the first workspace's subjects.
    assert client.get(other_tenant.url("/users"), headers=other_tenant.headers).json["data"] == []
    assert client.get(other_tenant.url(f"/users/{ids['u0']}"), headers=other_tenant.headers).status_code == 404
    assert (
        client.get(other_tenant.url("/accounts/acme?by=external_id"), headers=other_tenant.headers).status_code == 404
    )
