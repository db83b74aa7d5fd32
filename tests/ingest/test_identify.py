from connector.models import Account, AccountUser, ObjectRecord, User, UserTag
from tests.ingest.helpers import count, counts, ok, post_batch, rows


def user(database, external_id=None, email=None) -> User:
    where = [User.external_id == external_id] if external_id else [User.email == email]
    (found,) = rows(database, User, *where)
    return found


def tags(database, user_id) -> list[str]:
    return sorted(t.tag for t in rows(database, UserTag, UserTag.user_id == user_id))


def test_identify_creates_users_with_normalized_email(client, database, tenant):
    body = ok(
        post_batch(
            client,
            tenant,
            "identify",
            [{"external_id": "u1", "email": "  Ada@Example.COM ", "attributes": {"plan": "pro"}}, {"email": "b@x.io"}],
        )
    )
    assert [r["status"] for r in body["results"]] == ["ok", "ok"]
    assert all(r["created"] for r in body["results"])
    assert body["counts"] == {"ok": 2, "duplicate": 0, "invalid": 0}
    ada = user(database, "u1")
    assert ada.email == "ada@example.com"
    assert ada.attributes == {"plan": "pro"}
    assert body["results"][0]["id"] == ada.id
    assert user(database, email="b@x.io").external_id is None


def test_attributes_merge_and_null_removes_a_key(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "attributes": {"plan": "pro", "seats": 3}}]))
    before = user(database, "u1")
    body = ok(
        post_batch(client, tenant, "identify", [{"external_id": "u1", "attributes": {"seats": None, "country": "FR"}}])
    )
    assert body["results"][0]["created"] is False
    after = user(database, "u1")
    assert after.attributes == {"plan": "pro", "country": "FR"}
    assert after.updated_at > before.updated_at
    assert after.created_at == before.created_at


def test_items_for_the_same_user_apply_in_order(client, database, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "identify",
            [
                {"external_id": "u1", "attributes": {"plan": "free", "a": 1}},
                {"external_id": "u1", "attributes": {"plan": "pro"}},
                {"external_id": "u1", "attributes": {"a": None}},
            ],
        )
    )
    assert count(database, User) == 1
    assert user(database, "u1").attributes == {"plan": "pro"}


def test_numbers_of_any_size_are_stored_exactly(client, database, tenant):
    # Rows travel to PostgreSQL as one JSON text; an integer beyond 64 bits takes the slower encoder, not an error.
    attributes = {"big": 2**70, "negative": -(2**65), "ratio": 0.1, "small": 7}
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "attributes": attributes}]))
    assert user(database, "u1").attributes == attributes


def test_tags_are_added_and_removed_others_stay(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "tags": ["vip", "beta"]}]))
    ok(
        post_batch(
            client, tenant, "identify", [{"external_id": "u1", "tags": ["paid"], "remove_tags": ["beta", "nope"]}]
        )
    )
    assert tags(database, user(database, "u1").id) == ["paid", "vip"]


def test_external_id_is_attached_to_the_user_known_by_email(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"email": "ada@example.com", "attributes": {"a": 1}}]))
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "email": "ada@example.com"}]))
    assert count(database, User) == 1
    assert user(database, "u1").email == "ada@example.com"


def test_email_of_another_user_rejects_the_item_and_nothing_is_written(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "email": "a@x.io"}, {"external_id": "u2"}]))
    response = post_batch(client, tenant, "identify", [{"external_id": "u3"}, {"external_id": "u2", "email": "a@x.io"}])
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert response.json["errors"] == [{"field": "body.batch[1].email", "reason": "belongs to another user"}]
    assert count(database, User) == 2


def test_email_changes_for_a_user_found_by_external_id(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "email": "old@x.io"}]))
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "email": "new@x.io"}]))
    assert user(database, "u1").email == "new@x.io"


def test_invalid_items_reject_the_whole_batch_naming_each_field(client, database, tenant):
    before = counts(database, User, UserTag, Account)
    response = post_batch(
        client,
        tenant,
        "identify",
        [
            {"external_id": "fine", "tags": ["t"], "accounts": ["acme"]},
            {"email": "not-an-email"},
            {"attributes": {"a": 1}},
            {"external_id": "x", "unknown": 1},
        ],
    )
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    fields = [e["field"] for e in response.json["errors"]]
    assert fields == ["body.batch[1].email", "body.batch[2]", "body.batch[3].unknown"]
    assert "external_id or email is required" in response.json["errors"][1]["reason"]
    assert counts(database, User, UserTag, Account) == before


def test_partial_writes_the_valid_items_and_reports_every_fate(client, database, tenant):
    response = post_batch(
        client, tenant, "identify", [{"external_id": "u1"}, {"email": "bad"}, {"external_id": "u2"}], partial=True
    )
    assert response.status_code == 207
    results = response.json["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, "ok"), (1, "invalid"), (2, "ok")]
    assert results[1]["errors"] == [{"field": "email", "reason": "is not a valid email address"}]
    assert response.json["counts"] == {"ok": 2, "duplicate": 0, "invalid": 1}
    assert count(database, User) == 2


def test_partial_batch_without_invalid_items_answers_200(client, tenant):
    assert post_batch(client, tenant, "identify", [{"external_id": "u1"}], partial=True).status_code == 200


def test_accounts_are_linked_created_as_stubs_and_unlinked(client, database, tenant):
    ok(post_batch(client, tenant, "group", [{"external_id": "acme", "name": "Acme"}]))
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "accounts": ["acme", "globex"]}]))
    assert count(database, Account) == 2
    (stub,) = rows(database, Account, Account.external_id == "globex")
    assert stub.name is None and stub.attributes == {}
    assert count(database, AccountUser) == 2
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "remove_accounts": ["acme", "never-seen"]}]))
    assert [link.account_id for link in rows(database, AccountUser)] == [stub.id]
    assert count(database, Account) == 2


def test_objects_waiting_for_an_external_id_are_linked_when_the_user_is_identified(client, database, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "objects",
            [
                {"type": "order", "external_id": "o1", "fields": {"customer": "u7"}, "user_link_field": "customer"},
                {"type": "order", "external_id": "o2", "fields": {"customer": "u8"}},
            ],
        )
    )
    assert {o.user_id for o in rows(database, ObjectRecord)} == {None}
    ok(post_batch(client, tenant, "identify", [{"external_id": "u7"}]))
    u7 = user(database, "u7")
    linked = {o.external_id: o.user_id for o in rows(database, ObjectRecord)}
    assert linked == {"o1": u7.id, "o2": None}


def test_batch_envelope_errors_are_422_problems(client, database, tenant):
    too_many = post_batch(client, tenant, "identify", [{"external_id": f"u{i}"} for i in range(1001)])
    assert too_many.status_code == 422
    assert too_many.json["errors"][0]["field"] == "body.batch"
    assert post_batch(client, tenant, "identify", []).status_code == 422
    not_objects = post_batch(client, tenant, "identify", ["u1", 3])
    assert not_objects.status_code == 422
    assert [e["field"] for e in not_objects.json["errors"]] == ["body.batch[0]", "body.batch[1]"]
    assert count(database, User) == 0


def test_malformed_or_non_object_bodies_are_4xx_problems(client, tenant):
    url = tenant.url("/identify")
    headers = {**tenant.headers, "Content-Type": "application/json"}
    for body in ('{"batch": [', "[]", '"text"', "null", "", "[" * 100_000 + "]" * 100_000):
        response = client.post(url, headers=headers, data=body)
        assert 400 <= response.status_code < 500, body[:20]
        assert response.content_type == "application/problem+json"


def test_values_a_database_cannot_store_are_invalid(client, database, tenant):
    for item in (
        {"external_id": "a\x00b"},
        {"external_id": "u1", "attributes": {"k": "a\x00b"}},
        {"external_id": "u1", "attributes": {'bad"name': 1}},
        {"external_id": "u1", "attributes": {"k": "\ud800"}},
        {"external_id": "x" * 256},
        {"external_id": "u1", "tags": ["t" * 101]},
    ):
        response = post_batch(client, tenant, "identify", [item])
        assert response.status_code == 422, item
    headers = {**tenant.headers, "Content-Type": "application/json"}
    response = client.post(
        tenant.url("/identify"), headers=headers, data='{"batch": [{"external_id": "u1", "attributes": {"n": NaN}}]}'
    )
    assert response.status_code == 422
    assert count(database, User) == 0


def test_viewer_cannot_ingest(client, database, tenant):
    from connector.models import Role
    from tests.conftest import make_tenant

    viewer = make_tenant(database, "initech", role=Role.VIEWER)
    for endpoint in ("identify", "group", "track", "page", "device", "objects"):
        response = post_batch(client, viewer, endpoint, [{"external_id": "u1"}])
        assert response.status_code == 403, endpoint
        assert response.content_type == "application/problem+json"
    assert count(database, User) == 0


def test_a_token_cannot_write_into_another_workspace(client, database, tenant, other_tenant):
    for endpoint in ("identify", "group", "track", "page", "device", "objects"):
        response = post_batch(client, other_tenant, endpoint, [{"external_id": "u1"}], headers=tenant.headers)
        assert response.status_code == 404, endpoint
    assert count(database, User) == 0


def test_same_external_id_in_two_workspaces_are_two_users(client, database, tenant, other_tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "attributes": {"w": "a"}}]))
    ok(post_batch(client, other_tenant, "identify", [{"external_id": "u1", "attributes": {"w": "b"}}]))
    by_workspace = {u.workspace_id: u.attributes for u in rows(database, User)}
    assert by_workspace == {tenant.workspace_id: {"w": "a"}, other_tenant.workspace_id: {"w": "b"}}
