from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from connector.models import Account, Event, EventKind, User
from tests.ingest.helpers import count, counts, ok, post_batch, rows


def test_track_records_events_and_creates_unknown_users(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "email": "ada@x.io"}]))
    body = ok(
        post_batch(
            client,
            tenant,
            "track",
            [
                {"external_id": "u1", "name": "Signed Up", "message_id": "m1", "properties": {"plan": "pro"}},
                {"email": "ADA@x.io", "name": "Clicked", "message_id": "m2"},
                {"external_id": "new-user", "email": "new@x.io", "name": "Signed Up", "message_id": "m3"},
            ],
        )
    )
    assert [r["status"] for r in body["results"]] == ["ok", "ok", "ok"]
    users = {u.external_id: u for u in rows(database, User)}
    assert set(users) == {"u1", "new-user"}
    assert users["new-user"].email == "new@x.io"
    events = {e.message_id: e for e in rows(database, Event)}
    assert events["m1"].user_id == events["m2"].user_id == users["u1"].id
    assert events["m3"].user_id == users["new-user"].id
    assert events["m1"].kind is EventKind.TRACK
    assert events["m1"].name == "Signed Up"
    assert events["m1"].properties == {"plan": "pro"}
    assert events["m1"].workspace_id == tenant.workspace_id


def test_occurred_at_defaults_to_now_and_naive_times_are_utc(client, database, tenant):
    before = datetime.now(UTC)
    ok(
        post_batch(
            client,
            tenant,
            "track",
            [
                {"external_id": "u1", "name": "a", "message_id": "now"},
                {"external_id": "u1", "name": "a", "message_id": "naive", "occurred_at": "2024-03-01T10:00:00"},
                {"external_id": "u1", "name": "a", "message_id": "offset", "occurred_at": "2024-03-01T12:00:00+02:00"},
            ],
        )
    )
    events = {e.message_id: e.occurred_at for e in rows(database, Event)}
    assert before <= events["now"] <= datetime.now(UTC)
    assert events["naive"] == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert events["offset"] == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_a_resent_batch_is_harmless_duplicates_are_skipped_and_reported(client, database, tenant):
    batch = [
        {"external_id": "u1", "name": "Order", "message_id": "m1"},
        {"external_id": "u2", "name": "Order", "message_id": "m2"},
    ]
    ok(post_batch(client, tenant, "track", batch))
    body = ok(post_batch(client, tenant, "track", [*batch, {"external_id": "u1", "name": "Order", "message_id": "m3"}]))
    assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate", "ok"]
    assert body["counts"] == {"ok": 1, "duplicate": 2, "invalid": 0}
    assert count(database, Event) == 3
    assert count(database, User) == 2


def test_a_message_id_twice_in_one_batch_is_recorded_once(client, database, tenant):
    body = ok(
        post_batch(
            client,
            tenant,
            "track",
            [
                {"external_id": "u1", "name": "a", "message_id": "m"},
                {"external_id": "u1", "name": "b", "message_id": "m"},
            ],
        )
    )
    assert [r["status"] for r in body["results"]] == ["ok", "duplicate"]
    assert [e.name for e in rows(database, Event)] == ["a"]


def test_message_ids_are_unique_per_workspace_not_globally(client, database, tenant, other_tenant):
    ok(post_batch(client, tenant, "track", [{"external_id": "u1", "name": "a", "message_id": "m"}]))
    body = ok(post_batch(client, other_tenant, "track", [{"external_id": "u1", "name": "a", "message_id": "m"}]))
    assert body["results"][0]["status"] == "ok"
    assert count(database, Event) == 2


def test_events_without_message_id_are_all_recorded(client, database, tenant):
    ok(post_batch(client, tenant, "track", [{"external_id": "u1", "name": "a"}, {"external_id": "u1", "name": "a"}]))
    assert count(database, Event) == 2


def test_account_of_an_event_is_linked_and_created_if_new(client, database, tenant):
    ok(post_batch(client, tenant, "track", [{"external_id": "u1", "name": "a", "account_external_id": "acme"}]))
    (account,) = rows(database, Account)
    assert account.external_id == "acme"
    assert rows(database, Event)[0].account_id == account.id


def test_invalid_events_reject_the_whole_batch(client, database, tenant):
    ok(post_batch(client, tenant, "track", [{"external_id": "u0", "name": "seed"}]))
    before = counts(database, User, Event)
    response = post_batch(
        client,
        tenant,
        "track",
        [
            {"external_id": "u1", "name": "ok"},
            {"external_id": "u2"},
            {"name": "no user"},
            {"external_id": "u3", "name": "x", "occurred_at": "yesterday"},
            {"external_id": "u3", "name": "x", "occurred_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()},
            {"external_id": "u3", "name": "x", "occurred_at": "1969-12-31T23:59:59Z"},
            {"external_id": "u3", "name": "x", "properties": ["not", "an", "object"]},
        ],
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == [
        "body.batch[1].name",
        "body.batch[2]",
        "body.batch[3].occurred_at",
        "body.batch[4].occurred_at",
        "body.batch[5].occurred_at",
        "body.batch[6].properties",
    ]
    assert counts(database, User, Event) == before


def test_partial_track_records_the_valid_events(client, database, tenant):
    ok(post_batch(client, tenant, "track", [{"external_id": "u1", "name": "a", "message_id": "seen"}]))
    response = post_batch(
        client,
        tenant,
        "track",
        [
            {"external_id": "u1", "name": "a", "message_id": "seen"},
            {"external_id": "u1"},
            {"external_id": "u1", "name": "b", "message_id": "new"},
        ],
        partial=True,
    )
    assert response.status_code == 207
    assert [r["status"] for r in response.json["results"]] == ["duplicate", "invalid", "ok"]
    assert sorted(e.message_id for e in rows(database, Event)) == ["new", "seen"]


def test_page_views_are_events_of_kind_page(client, database, tenant):
    ok(
        post_batch(
            client,
            tenant,
            "page",
            [
                {"external_id": "u1", "url": "https://x.io/pricing", "title": "Pricing", "message_id": "p1"},
                {"external_id": "u1", "name": "Docs", "url": "https://x.io/docs", "message_id": "p2"},
            ],
        )
    )
    events = {e.message_id: e for e in rows(database, Event)}
    assert events["p1"].kind is EventKind.PAGE
    assert (events["p1"].name, events["p1"].url, events["p1"].title) == ("page", "https://x.io/pricing", "Pricing")
    assert events["p2"].name == "Docs"


def test_activity_moves_updated_at_at_most_once_a_minute(client, database, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1"}]))
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    with database.session() as session:
        session.execute(update(User).values(updated_at=long_ago))
    ok(post_batch(client, tenant, "track", [{"external_id": "u1", "name": "a"}]))
    (touched,) = rows(database, User)
    assert touched.updated_at > long_ago + timedelta(minutes=4)
    ok(post_batch(client, tenant, "track", [{"external_id": "u1", "name": "b"}]))
    (again,) = rows(database, User)
    assert again.updated_at == touched.updated_at
