"""Running models against real warehouses: rows become users (and the rest) through the ingestion services,
incrementally by cursor or by hash diff, with deletes, invalid rows and failures recorded on the run."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select

from connector.models import (
    Account,
    AccountUser,
    Event,
    ObjectRecord,
    Source,
    SourceModel,
    SourceRow,
    SourceRun,
    SourceRunError,
    User,
)
from connector.sources.runs import execute_run, prepare_run, run_model
from tests.segments.support import members, segments_of
from tests.sources.conftest import BOX, make_model, make_source

PEOPLE = "CREATE TABLE people (id INTEGER, email VARCHAR(200), plan VARCHAR(20), seats INTEGER, updated_at INTEGER)"


def people(n: int, plan: str = "free", updated_at: int = 1) -> list[dict]:
    return [
        {"id": i, "email": f"p{i}@example.com", "plan": plan, "seats": i, "updated_at": updated_at}
        for i in range(1, n + 1)
    ]


def users(database, tenant) -> dict[str, dict]:
    with database.session() as session:
        rows = session.scalars(select(User).where(User.workspace_id == tenant.workspace_id)).all()
        return {u.external_id: dict(u.attributes) for u in rows}


def run(database, model, chunk_size: int = 1000):
    return run_model(database, model.id, BOX, chunk_size=chunk_size)


def user_model(database, tenant, warehouse, source_name: str = "Warehouse", **extra):
    source = make_source(database, tenant, warehouse, source_name)
    fields = {
        "kind": "users",
        "query": "SELECT id, email, plan, seats, updated_at FROM people",
        "mapping": {"external_id": "id", "email": "email"},
    }
    fields.update(extra)
    return make_model(database, tenant, source, **fields)


def test_cursor_model_reads_rows_past_the_last_cursor_on_every_warehouse(database, tenant, any_warehouse):
    any_warehouse.run(PEOPLE)
    any_warehouse.insert("people", people(5))
    model = user_model(database, tenant, any_warehouse, cursor_column="updated_at")

    first = run(database, model, chunk_size=2)
    assert first.status == "succeeded", first.error
    assert first.counts == {"rows_read": 5, "created": 5, "changed": 0, "unchanged": 0, "invalid": 0, "deleted": 0}
    assert users(database, tenant)["3"] == {"plan": "free", "seats": 3}

    any_warehouse.run("UPDATE people SET plan = 'pro', updated_at = 2 WHERE id = 4")
    second = run(database, model, chunk_size=2)
    assert second.counts["rows_read"] == 1
    assert second.counts["changed"] == 1
    assert users(database, tenant)["4"] == {"plan": "pro", "seats": 4}

    third = run(database, model, chunk_size=2)
    assert third.counts["rows_read"] == 0


def test_rows_sharing_a_cursor_value_across_chunks_are_each_read_once(database, tenant, warehouse):
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(7, updated_at=5))
    model = user_model(database, tenant, warehouse, cursor_column="updated_at")

    outcome = run(database, model, chunk_size=3)

    assert outcome.counts["rows_read"] == 7
    assert outcome.counts["created"] == 7
    with database.session() as session:
        state = session.get(SourceModel, model.id).cursor_state
    assert [t["value"] for t in state["after"]] == [5, 7]
    # A row added later with the same cursor value and a greater key is read; the others are not re-read.
    warehouse.insert("people", [{"id": 8, "email": "p8@example.com", "plan": "free", "seats": 8, "updated_at": 5}])
    assert run(database, model, chunk_size=3).counts["rows_read"] == 1


def test_a_crash_between_chunks_rereads_at_most_the_chunk_in_flight(database, tenant, warehouse, monkeypatch):
    warehouse.run(PEOPLE)
    warehouse.insert("people", [{**p, "updated_at": p["id"]} for p in people(9)])
    model = user_model(database, tenant, warehouse, cursor_column="updated_at")

    import connector.sources.runs as runs

    real = runs._write_chunk
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the process died")
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "_write_chunk", crash_on_third)
    with pytest.raises(RuntimeError):
        run(database, model, chunk_size=3)
    assert sorted(users(database, tenant), key=int) == ["1", "2", "3", "4", "5", "6"]
    monkeypatch.setattr(runs, "_write_chunk", real)

    after = run(database, model, chunk_size=3)
    assert after.counts["rows_read"] == 3
    assert after.counts["created"] == 3
    with database.session() as session:
        statuses = session.scalars(select(SourceRun.status).order_by(SourceRun.id)).all()
    assert statuses == ["failed", "succeeded"]


def test_hash_diff_without_cursor_writes_only_changed_rows(database, tenant, any_warehouse):
    any_warehouse.run(PEOPLE)
    any_warehouse.insert("people", people(6))
    model = user_model(database, tenant, any_warehouse)
    assert run(database, model, chunk_size=4).counts["created"] == 6

    any_warehouse.run("UPDATE people SET seats = 100 WHERE id = 2")
    again = run(database, model, chunk_size=4)

    assert again.counts == {"rows_read": 6, "created": 0, "changed": 1, "unchanged": 5, "invalid": 0, "deleted": 0}
    assert users(database, tenant)["2"]["seats"] == 100


def test_a_rerun_of_unchanged_data_writes_no_subject(database, tenant, warehouse):
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(4))
    model = user_model(database, tenant, warehouse)
    run(database, model)
    with database.session() as session:
        before = {u.id: u.updated_at for u in session.scalars(select(User))}

    again = run(database, model)

    assert again.counts["unchanged"] == 4
    with database.session() as session:
        assert {u.id: u.updated_at for u in session.scalars(select(User))} == before


def test_rows_gone_from_the_source_have_their_attributes_cleared(database, tenant, warehouse):
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(3))
    model = user_model(database, tenant, warehouse, deletes="clear")
    run(database, model)

    warehouse.run("DELETE FROM people WHERE id = 2")
    outcome = run(database, model)

    assert outcome.counts["deleted"] == 1
    stored = users(database, tenant)
    assert stored["2"] == {}
    assert stored["1"] == {"plan": "free", "seats": 1, "updated_at": 1}
    assert run(database, model).counts["deleted"] == 0


def test_source_rows_move_segments_and_the_segments_property(client, database, tenant, warehouse):
    response = client.post(
        tenant.url("/segments?wait=true"),
        headers=tenant.headers,
        json={
            "name": "Pro",
            "subject_type": "user",
            "conditions": {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
        },
    )
    segment_id = response.get_json()["id"]
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(3))
    model = user_model(database, tenant, warehouse, cursor_column="updated_at")
    run(database, model)
    assert members(database, segment_id) == set()

    warehouse.run("UPDATE people SET plan = 'pro', updated_at = 2 WHERE id = 3")
    run(database, model)

    with database.session() as session:
        user_id = session.scalar(select(User.id).where(User.external_id == "3"))
    assert members(database, segment_id) == {user_id}
    assert segments_of(database, user_id) == ["Pro"]


def test_invalid_rows_are_counted_with_their_key_and_reason_and_not_written(database, tenant, warehouse):
    warehouse.run(PEOPLE)
    warehouse.insert(
        "people", [*people(2), {"id": 3, "email": "not-an-email", "plan": "x", "seats": 1, "updated_at": 1}]
    )
    warehouse.insert("people", [{"id": None, "email": None, "plan": "x", "seats": 1, "updated_at": 1}])
    model = user_model(database, tenant, warehouse)

    outcome = run(database, model)

    assert outcome.status == "partial"
    assert outcome.counts["invalid"] == 2
    assert outcome.counts["created"] == 2
    with database.session() as session:
        errors = {e.row_key: e.reason for e in session.scalars(select(SourceRunError))}
    assert "column 'email'" in errors["3"] and "valid email" in errors["3"]
    assert "null" in errors[None]
    assert "3" not in users(database, tenant)


@pytest.mark.parametrize(
    ("query", "mapping", "expected"),
    [
        ("SELECT * FROM no_such_table", {"external_id": "id"}, "query: the source refused it"),
        ("SELECT id, plan FROM people", {"external_id": "id", "email": "mail"}, "mapping.email: column 'mail'"),
        ("SELEKT id FROM people", {"external_id": "id"}, "query: the source refused it"),
    ],
)
def test_bad_sql_or_missing_column_fails_the_run_and_writes_nothing(
    database, tenant, warehouse, query, mapping, expected
):
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(2))
    source = make_source(database, tenant, warehouse)
    model = make_model(database, tenant, source, kind="users", query=query, mapping=mapping)

    outcome = run(database, model)

    assert outcome.status == "failed"
    assert outcome.error.startswith(expected), outcome.error
    assert users(database, tenant) == {}


def test_a_value_that_cannot_map_fails_the_run_before_its_chunk_is_written(database, tenant, warehouse):
    warehouse.run("CREATE TABLE people (id INTEGER, email VARCHAR(200), avatar BLOB)")
    warehouse.run("INSERT INTO people VALUES (1, 'a@example.com', x'00ff')")
    source = make_source(database, tenant, warehouse)
    model = make_model(
        database, tenant, source, kind="users", query="SELECT * FROM people", mapping={"external_id": "id"}
    )

    outcome = run(database, model)

    assert outcome.status == "failed"
    assert "column 'avatar'" in outcome.error and "bytes" in outcome.error
    assert users(database, tenant) == {}


def test_accounts_links_events_and_objects_models(database, tenant, any_warehouse):
    wh = any_warehouse
    wh.run(
        "CREATE TABLE companies (id INTEGER, domain VARCHAR(100), name VARCHAR(100), tier VARCHAR(10))",
        "CREATE TABLE links (person INTEGER, company INTEGER, kind VARCHAR(20), happened TIMESTAMP, msg VARCHAR(20))",
    )
    wh.insert("companies", [{"id": 10, "domain": "acme.com", "name": "Acme", "tier": "gold"}])
    wh.insert("links", [{"person": 1, "company": 10, "kind": "order", "happened": "2026-01-02 03:04:05", "msg": "m1"}])
    source = make_source(database, tenant, wh)
    for name, kind, query, mapping in [
        ("companies", "accounts", "SELECT * FROM companies", {"external_id": "id", "domain": "domain", "name": "name"}),
        (
            "links",
            "account_links",
            "SELECT person, company FROM links",
            {"user_external_id": "person", "account_external_id": "company"},
        ),
        (
            "events",
            "events",
            "SELECT person, kind, happened, msg FROM links",
            {"user_external_id": "person", "event_name": "kind", "occurred_at": "happened", "message_id": "msg"},
        ),
        (
            "orders",
            "objects",
            "SELECT msg, person, company FROM links",
            {"object_type": "order", "external_id": "msg", "user_external_id": "person", "attributes": ["company"]},
        ),
    ]:
        model = make_model(database, tenant, source, name=name, kind=kind, query=query, mapping=mapping)
        outcome = run(database, model)
        assert outcome.status == "succeeded", (name, outcome.error)
        assert run(database, model).counts["unchanged"] == 1

    with database.session() as session:
        account = session.scalar(select(Account))
        assert (account.external_id, account.domain, account.name, account.attributes) == (
            "10",
            "acme.com",
            "Acme",
            {"tier": "gold"},
        )
        user = session.scalar(select(User).where(User.external_id == "1"))
        assert session.scalar(select(AccountUser.account_id).where(AccountUser.user_id == user.id)) == account.id
        event = session.scalar(select(Event))
        assert (event.name, event.user_id, event.occurred_at.isoformat()) == (
            "order",
            user.id,
            "2026-01-02T03:04:05+00:00",
        )
        record = session.scalar(select(ObjectRecord))
        assert record.external_id == "m1" and record.fields == {"company": 10}


def test_deleting_a_model_or_its_source_deletes_its_row_hashes(database, tenant, warehouse):
    # The hashes have no foreign key (a first run writes one per source row): the cascade is a trigger on the model,
    # reached by the model's own delete and by its source's.
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(3))
    kept, dropped, other = (user_model(database, tenant, warehouse, name) for name in ("a", "b", "c"))
    for model in (kept, dropped, other):
        assert run(database, model).status == "succeeded"

    def hashes() -> dict[int, int]:
        with database.session() as session:
            rows = session.execute(select(SourceRow.model_id, func.count()).group_by(SourceRow.model_id)).all()
            return dict(rows)

    assert hashes() == {kept.id: 3, dropped.id: 3, other.id: 3}
    with database.session() as session:
        session.execute(delete(SourceModel).where(SourceModel.id == dropped.id))
        session.execute(delete(Source).where(Source.id == other.source_id))
    assert hashes() == {kept.id: 3}


def test_a_model_deleted_while_it_runs_fails_the_run_and_leaves_no_row_hashes(database, tenant, warehouse):
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(3))
    model = user_model(database, tenant, warehouse)
    prepared = prepare_run(database, model.id, BOX)
    with database.session() as session:
        session.execute(delete(SourceModel).where(SourceModel.id == model.id))

    outcome = execute_run(database, prepared)

    assert outcome.status == "failed"
    assert outcome.error == "model: the model was deleted while it ran"
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(SourceRow)) == 0
        assert session.scalar(select(func.count()).select_from(User)) == 0
