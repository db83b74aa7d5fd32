"""Rows gone from a model's source: users and accounts cleared or removed (erased as by the erasure API), account
links unlinked, with segments, ``Segments`` and the run's counts following."""

from __future__ import annotations

from sqlalchemy import func, select

from connector.models import (
    Account,
    AccountUser,
    ComputedValue,
    Erasure,
    SegmentMembership,
    SegmentMembershipEvent,
    SourceRow,
    User,
)
from tests.segments.support import members, segments_of
from tests.sources.conftest import make_model, make_source
from tests.sources.test_runs import PEOPLE, people, run, user_model, users


def pro_segment(client, tenant, subject_type: str = "user", name: str = "Pro") -> int:
    response = client.post(
        tenant.url("/segments?wait=true"),
        headers=tenant.headers,
        json={
            "name": name,
            "subject_type": subject_type,
            "conditions": {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def links_model(database, tenant, source, **extra):
    fields = {
        "name": "links",
        "kind": "account_links",
        "query": "SELECT person, company FROM links",
        "mapping": {"user_external_id": "person", "account_external_id": "company"},
    }
    return make_model(database, tenant, source, **{**fields, **extra})


def user_id(database, external_id: str) -> int | None:
    with database.session() as session:
        return session.scalar(select(User.id).where(User.external_id == external_id))


def test_a_user_whose_row_is_gone_is_erased_with_memberships_history_and_segments(
    client, database, tenant, any_warehouse
):
    segment_id = pro_segment(client, tenant)
    any_warehouse.run(PEOPLE)
    any_warehouse.insert("people", people(3, plan="pro"))
    model = user_model(database, tenant, any_warehouse, deletes="remove")
    assert run(database, model).counts["created"] == 3
    gone = user_id(database, "2")
    assert members(database, segment_id) == {user_id(database, i) for i in ("1", "2", "3")}
    assert segments_of(database, gone) == ["Pro"]

    any_warehouse.run("DELETE FROM people WHERE id = 2")
    outcome = run(database, model)

    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["deleted"] == 1
    assert sorted(users(database, tenant), key=int) == ["1", "3"]
    assert members(database, segment_id) == {user_id(database, "1"), user_id(database, "3")}
    with database.session() as session:
        for table in (SegmentMembership, SegmentMembershipEvent, ComputedValue):
            assert session.scalar(select(func.count()).select_from(table).where(table.subject_id == gone)) == 0
        erasure = session.scalar(select(Erasure))
        assert (erasure.subject_type.value, erasure.subject_id) == ("user", gone)
        assert erasure.counts["memberships"] == 1 and erasure.counts["history"] == 1
        assert erasure.reason == f"gone from source model {model.id}"
        assert session.scalar(select(func.count()).select_from(SourceRow)) == 2
    assert run(database, model).counts["deleted"] == 0

    any_warehouse.insert("people", [{"id": 2, "email": "p2@example.com", "plan": "pro", "seats": 2, "updated_at": 1}])
    back = run(database, model)
    assert back.counts["created"] == 1
    assert user_id(database, "2") not in (None, gone)


def test_removing_by_email_key_and_clearing_leave_other_users_alone(database, tenant, warehouse):
    warehouse.run(PEOPLE)
    warehouse.insert("people", [{**p, "email": p["email"].upper()} for p in people(3)])
    model = user_model(
        database,
        tenant,
        warehouse,
        query="SELECT email, plan FROM people",
        mapping={"email": "email"},
        deletes="remove",
    )
    run(database, model)
    warehouse.run("DELETE FROM people WHERE id = 1")

    assert run(database, model).counts["deleted"] == 1
    with database.session() as session:
        assert sorted(session.scalars(select(User.email))) == ["p2@example.com", "p3@example.com"]


def test_an_account_whose_row_is_gone_is_erased_and_its_users_stay_unlinked(client, database, tenant, warehouse):
    segment_id = pro_segment(client, tenant, "account", "Pro accounts")
    warehouse.run(
        "CREATE TABLE companies (id INTEGER, plan VARCHAR(10))", "CREATE TABLE links (person INTEGER, company INTEGER)"
    )
    warehouse.insert("companies", [{"id": 10, "plan": "pro"}, {"id": 11, "plan": "pro"}])
    warehouse.insert("links", [{"person": 1, "company": 10}, {"person": 2, "company": 11}])
    source = make_source(database, tenant, warehouse)
    companies = make_model(
        database,
        tenant,
        source,
        name="companies",
        kind="accounts",
        query="SELECT id, plan FROM companies",
        mapping={"external_id": "id"},
        deletes="remove",
    )
    links = links_model(database, tenant, source)
    run(database, companies)
    run(database, links)
    assert len(members(database, segment_id)) == 2

    warehouse.run("DELETE FROM companies WHERE id = 10")
    assert run(database, companies).counts["deleted"] == 1

    with database.session() as session:
        assert session.scalars(select(Account.external_id)).all() == ["11"]
        assert session.scalar(select(func.count()).select_from(AccountUser)) == 1
        assert sorted(session.scalars(select(User.external_id))) == ["1", "2"]
        remaining = session.scalar(select(Account.id))
    assert members(database, segment_id) == {remaining}


def test_a_link_whose_row_is_gone_is_removed_on_every_warehouse(database, tenant, any_warehouse):
    any_warehouse.run("CREATE TABLE links (person INTEGER, company INTEGER)")
    any_warehouse.insert(
        "links", [{"person": 1, "company": 10}, {"person": 1, "company": 11}, {"person": 2, "company": 10}]
    )
    source = make_source(database, tenant, any_warehouse)
    model = links_model(database, tenant, source, deletes="clear")
    run(database, model)

    def linked() -> set[tuple[str, str]]:
        with database.session() as session:
            return set(
                session.execute(
                    select(User.external_id, Account.external_id)
                    .join(AccountUser, AccountUser.user_id == User.id)
                    .join(Account, Account.id == AccountUser.account_id)
                ).all()
            )

    assert linked() == {("1", "10"), ("1", "11"), ("2", "10")}
    # Person 2 moves from account 10 to 11: a new row and a gone one.
    any_warehouse.run(
        "DELETE FROM links WHERE person = 1 AND company = 11", "UPDATE links SET company = 11 WHERE person = 2"
    )
    outcome = run(database, model)

    assert outcome.counts["deleted"] == 2 and outcome.counts["changed"] == 1
    assert linked() == {("1", "10"), ("2", "11")}
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 2
