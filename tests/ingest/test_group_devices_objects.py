from datetime import UTC, datetime

from connector.models import Account, AccountTag, AccountUser, Device, ObjectRecord, ObjectType, Platform, User
from tests.ingest.helpers import count, counts, ok, post_batch, rows


def account(database, external_id) -> Account:
    (found,) = rows(database, Account, Account.external_id == external_id)
    return found


# group


def test_group_upserts_accounts_and_links_users(client, database, tenant):
    body = ok(
        post_batch(
            client,
            tenant,
            "group",
            [
                {
                    "external_id": "acme",
                    "domain": " WWW.Acme.COM ",
                    "name": "Acme",
                    "attributes": {"tier": "gold", "seats": 10},
                    "tags": ["enterprise"],
                    "users": [{"external_id": "u1"}, {"email": "b@acme.com"}],
                }
            ],
        )
    )
    assert body["results"][0]["created"] is True
    acme = account(database, "acme")
    assert (acme.domain, acme.name, acme.attributes) == ("acme.com", "Acme", {"tier": "gold", "seats": 10})
    assert [t.tag for t in rows(database, AccountTag)] == ["enterprise"]
    assert count(database, User) == 2
    assert count(database, AccountUser, AccountUser.account_id == acme.id) == 2


def test_group_merges_attributes_keeps_absent_fields_and_null_clears(client, database, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "group",
            [{"external_id": "acme", "domain": "acme.com", "name": "Acme", "attributes": {"tier": "gold", "old": 1}}],
        )
    )
    body = ok(post_batch(client, tenant, "group", [{"external_id": "acme", "name": None, "attributes": {"old": None}}]))
    assert body["results"][0]["created"] is False
    acme = account(database, "acme")
    assert (acme.domain, acme.name, acme.attributes) == ("acme.com", None, {"tier": "gold"})


def test_group_rejects_bad_domains_and_missing_external_ids(client, database, tenant):
    response = post_batch(client, tenant, "group", [{"external_id": "a", "domain": "not a domain"}, {"name": "x"}])
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["body.batch[0].domain", "body.batch[1].external_id"]
    assert count(database, Account) == 0


# device


def test_device_is_upserted_by_platform_and_vendor_id(client, database, tenant):
    seen = "2024-05-01T08:00:00Z"
    ok(
        post_batch(
            client,
            tenant,
            "device",
            [
                {
                    "external_id": "u1",
                    "platform": "ios",
                    "vendor_device_id": "IDFV-1",
                    "push_token": "tok-1",
                    "last_seen_at": seen,
                }
            ],
        )
    )
    ok(
        post_batch(
            client, tenant, "device", [{"external_id": "u1", "platform": "android", "vendor_device_id": "IDFV-1"}]
        )
    )
    assert count(database, Device) == 2
    body = ok(
        post_batch(
            client,
            tenant,
            "device",
            [
                {
                    "external_id": "u1",
                    "platform": "ios",
                    "vendor_device_id": "IDFV-1",
                    "last_seen_at": "2024-06-01T08:00:00Z",
                }
            ],
        )
    )
    assert body["results"][0]["created"] is False
    (ios,) = rows(database, Device, Device.platform == Platform.IOS)
    assert ios.push_token == "tok-1"  # absent keeps it
    assert ios.last_seen_at == datetime(2024, 6, 1, 8, tzinfo=UTC)


def test_device_push_token_null_clears_and_older_reports_keep_last_seen(client, database, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "device",
            [
                {
                    "external_id": "u1",
                    "platform": "web",
                    "vendor_device_id": "b1",
                    "push_token": "t",
                    "last_seen_at": "2024-06-01T00:00:00Z",
                }
            ],
        )
    )
    ok(
        post_batch(
            client,
            tenant,
            "device",
            [
                {
                    "external_id": "u1",
                    "platform": "web",
                    "vendor_device_id": "b1",
                    "push_token": None,
                    "last_seen_at": "2024-01-01T00:00:00Z",
                }
            ],
        )
    )
    (device,) = rows(database, Device)
    assert device.push_token is None
    assert device.last_seen_at == datetime(2024, 6, 1, tzinfo=UTC)


def test_a_device_seen_with_another_user_moves_to_that_user(client, database, tenant):
    ok(post_batch(client, tenant, "device", [{"external_id": "u1", "platform": "android", "vendor_device_id": "A"}]))
    ok(post_batch(client, tenant, "device", [{"email": "next@x.io", "platform": "android", "vendor_device_id": "A"}]))
    (device,) = rows(database, Device)
    (new_owner,) = rows(database, User, User.email == "next@x.io")
    assert device.user_id == new_owner.id


def test_device_rejects_unknown_platforms(client, database, tenant):
    response = post_batch(
        client, tenant, "device", [{"external_id": "u1", "platform": "palm", "vendor_device_id": "x"}]
    )
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "body.batch[0].platform"
    assert counts(database, User, Device) == {"users": 0, "devices": 0}


# objects


def test_object_type_is_created_on_first_use_and_records_upserted(client, database, tenant):
    first = ok(
        post_batch(
            client,
            tenant,
            "objects",
            [
                {
                    "type": "order",
                    "external_id": "o1",
                    "fields": {"total": 10, "status": "open"},
                    "user_link_field": "customer_id",
                }
            ],
        )
    )
    second = ok(
        post_batch(
            client,
            tenant,
            "objects",
            [{"type": "order", "external_id": "o1", "fields": {"status": "paid", "total": None}}],
        )
    )
    assert first["results"][0]["created"] is True and second["results"][0]["created"] is False
    (object_type,) = rows(database, ObjectType)
    assert (object_type.name, object_type.user_link_field, object_type.account_link_field) == (
        "order",
        "customer_id",
        None,
    )
    (record,) = rows(database, ObjectRecord)
    assert record.fields == {"status": "paid"}


def test_objects_link_directly_or_through_the_link_field(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1"}, {"external_id": "u2"}]))
    ok(post_batch(client, tenant, "group", [{"external_id": "acme"}]))
    ok(
        post_batch(
            client,
            tenant,
            "objects",
            [
                {
                    "type": "sub",
                    "external_id": "s1",
                    "fields": {"owner": "u1", "company": "acme"},
                    "user_link_field": "owner",
                    "account_link_field": "company",
                },
                {
                    "type": "sub",
                    "external_id": "s2",
                    "fields": {"owner": "u1"},
                    "user_external_id": "u2",
                    "account_external_id": "globex",
                },
                {"type": "sub", "external_id": "s3", "fields": {"owner": "nobody-yet"}},
            ],
        )
    )
    users = {u.external_id: u.id for u in rows(database, User)}
    accounts = {a.external_id: a.id for a in rows(database, Account)}
    linked = {o.external_id: (o.user_id, o.account_id) for o in rows(database, ObjectRecord)}
    assert linked == {
        "s1": (users["u1"], accounts["acme"]),
        "s2": (users["u2"], accounts["globex"]),
        "s3": (None, None),
    }


def test_link_fields_are_fixed_when_the_type_is_created(client, database, tenant):
    ok(post_batch(client, tenant, "objects", [{"type": "order", "external_id": "o1", "user_link_field": "customer"}]))
    response = post_batch(
        client, tenant, "objects", [{"type": "order", "external_id": "o2", "user_link_field": "buyer"}]
    )
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "body.batch[0].user_link_field"
    assert count(database, ObjectRecord) == 1


def test_objects_are_walled_by_workspace(client, database, tenant, other_tenant):
    ok(
        post_batch(
            client,
            tenant,
            "objects",
            [{"type": "order", "external_id": "o1", "user_link_field": "c", "fields": {"c": "u1"}}],
        )
    )
    ok(post_batch(client, other_tenant, "identify", [{"external_id": "u1"}]))
    (record,) = rows(database, ObjectRecord)
    assert record.user_id is None
    ok(post_batch(client, other_tenant, "objects", [{"type": "order", "external_id": "o1"}]))
    assert count(database, ObjectType) == 2
