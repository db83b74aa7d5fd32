"""A run reads only the subjects written since its sync's last complete run (``connector.syncs.changes``)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from connector.models import ChangeTombstone, RunStatus, Sync, SyncWatermark, User
from connector.syncs import run_sync
from connector.syncs.changes import next_increment
from connector.syncs.retry import RetryPolicy
from connector.testing.hubspot_sandbox import FaultPlan
from tests.syncs.conftest import CONTACT_MAPPINGS, FAST_RETRY, create_sync, make_segment, seed_users, set_members

NO_RETRY = RetryPolicy(attempts=1, deadline_s=1.0, initial_wait_s=0.001, max_wait_s=0.001)


@pytest.fixture
def run(database, settings):
    def run_(sync_id: int, **kwargs):
        kwargs.setdefault("retry", FAST_RETRY)
        return run_sync(database, sync_id, secret_key=settings.secret_key, **kwargs)

    return run_


def people(n: int, start: int = 0) -> list[dict]:
    return [
        {"email": f"person{i}@example.com", "attributes": {"first_name": f"P{i}", "plan": "free"}}
        for i in range(start, start + n)
    ]


def to_read(database, sync_id: int) -> list[int] | None:
    """The subjects the next run of the sync would read (None: all of them)."""
    with database.session() as session:
        return next_increment(session, sync_id).subject_ids


def set_plan(database, user_id: int, plan: str) -> None:
    with database.session() as session:
        user = session.get(User, user_id)
        user.attributes = {**user.attributes, "plan": plan}


def test_a_first_run_reads_everyone_and_an_unchanged_rerun_reads_no_subject(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(30))
    setup = create_sync(client, tenant, sandbox)
    assert to_read(database, setup.sync_id) is None

    assert run(setup.sync_id).counts.added == 30
    assert to_read(database, setup.sync_id) == []
    again = run(setup.sync_id)
    assert (again.counts.planned, again.counts.unchanged) == (0, 30)


def test_a_run_reads_the_subjects_whose_row_membership_or_existence_changed(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(40))
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, vip, ids[:5])
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)

    set_plan(database, ids[10], "pro")
    set_members(database, tenant.workspace_id, vip, ids[:4] + [ids[20]])  # ids[4] leaves, ids[20] enters
    with database.session() as session:
        session.delete(session.get(User, ids[30]))

    read = set(to_read(database, setup.sync_id))
    # (set_members rewrites the Segments values of every member, so members 0-3 are read too, and found unchanged)
    assert {ids[4], ids[10], ids[20], ids[30]} <= read <= {*ids[:5], ids[10], ids[20], ids[30]}
    outcome = run(setup.sync_id)
    assert outcome.status == RunStatus.SUCCEEDED
    assert (outcome.counts.changed, outcome.counts.unchanged) == (3, 36)  # 40 - 3 changed - 1 deleted
    properties = {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}
    assert properties["person10@example.com"]["plan"] == "pro"
    assert properties["person4@example.com"]["segments"] == ""
    assert properties["person20@example.com"]["segments"] == "VIP"
    assert to_read(database, setup.sync_id) == []


def test_a_segment_scoped_sync_clears_subjects_that_leave_without_reading_the_others(
    client, tenant, database, sandbox, run
):
    ids = seed_users(database, tenant.workspace_id, people(20))
    paying = make_segment(database, tenant.workspace_id, "Paying")
    set_members(database, tenant.workspace_id, paying, ids[:10])
    setup = create_sync(client, tenant, sandbox, segment_ids=[paying], mode="mirror", mirror_action="clear")
    run(setup.sync_id)

    set_members(database, tenant.workspace_id, paying, ids[1:10])
    read = set(to_read(database, setup.sync_id))
    assert ids[0] in read and not read & set(ids[10:])  # members that stay are rewritten by set_members
    outcome = run(setup.sync_id)
    assert (outcome.counts.removed, outcome.counts.unchanged) == (1, 9)


def test_another_configuration_reads_everyone_again(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(10))
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    with database.session() as session:
        sync = session.get(Sync, setup.sync_id)
        sync.mappings = [m for m in sync.mappings if m["destination"] != "plan"]

    assert to_read(database, setup.sync_id) is None
    assert run(setup.sync_id).counts.changed == 10


def test_a_run_that_left_records_unsent_keeps_the_previous_watermark(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(10))
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    set_plan(database, ids[3], "pro")

    sandbox.set_faults(FaultPlan(rate_5xx=1.0, match="/batch/"))
    failed = run(setup.sync_id, retry=NO_RETRY)
    assert failed.counts.unsent == 1
    assert to_read(database, setup.sync_id) == [ids[3]]

    sandbox.set_faults()
    assert run(setup.sync_id).counts.changed == 1
    assert to_read(database, setup.sync_id) == []


def test_invalid_subjects_are_reported_by_every_run_until_they_are_fixed(client, tenant, database, sandbox, run):
    rows = people(6)
    rows[2]["email"] = None
    ids = seed_users(database, tenant.workspace_id, rows)
    setup = create_sync(client, tenant, sandbox)
    assert run(setup.sync_id).counts.invalid == 1

    again = run(setup.sync_id)
    assert (again.counts.invalid, again.counts.planned, again.counts.unchanged) == (1, 0, 5)
    with database.session() as session:
        session.get(User, ids[2]).email = "person2@example.com"
    fixed = run(setup.sync_id)
    assert (fixed.counts.invalid, fixed.counts.added) == (0, 1)
    assert to_read(database, setup.sync_id) == []


def test_a_dry_run_does_not_move_the_watermark(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(5))
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    set_plan(database, ids[0], "pro")
    assert run(setup.sync_id, dry_run=True).counts.changed == 1
    assert to_read(database, setup.sync_id) == [ids[0]]


def test_a_write_still_in_progress_when_a_run_starts_is_read_by_the_next_run(client, tenant, database, sandbox, run):
    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: a run cannot start while a write is in progress")
    ids = seed_users(database, tenant.workspace_id, people(5))
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)

    with database.engine.connect() as writer:
        writer.execute(
            update(User).where(User.id == ids[1]).values(attributes={"first_name": "P1", "plan": "late"})
        )  # the transaction is open: the run below cannot see this write
        during = run(setup.sync_id)
        assert during.counts.planned == 0
        with database.session() as session:
            watermark = session.scalars(select(SyncWatermark).where(SyncWatermark.sync_id == setup.sync_id)).one()
            assert watermark.in_progress  # the writer's transaction, at least
        writer.commit()

    assert to_read(database, setup.sync_id) == [ids[1]]
    assert run(setup.sync_id).counts.changed == 1


def test_a_change_of_a_mapped_computed_property_other_than_segments_is_read_and_sent(client, tenant, sandbox, run):
    def post(path: str, batch: list[dict]) -> None:
        response = client.post(tenant.url(path), json={"batch": batch}, headers=tenant.headers)
        assert response.status_code == 200, response.get_json()

    post("/identify", [{"email": "busy@example.com"}, {"email": "idle@example.com"}])
    event_count = {"source": {"kind": "computed", "name": "event_count"}, "destination": "events", "format": "number"}
    setup = create_sync(client, tenant, sandbox, mappings=[*CONTACT_MAPPINGS, event_count])
    run(setup.sync_id)

    post("/track", [{"email": "busy@example.com", "name": "Clicked", "message_id": f"m{i}"} for i in range(2)])

    outcome = run(setup.sync_id)
    assert (outcome.counts.changed, outcome.counts.unchanged) == (1, 1)
    sent = {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}
    assert (sent["busy@example.com"]["events"], sent["idle@example.com"]["events"]) == ("2", "0")


def tombstones(database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(ChangeTombstone))


def test_tombstones_go_once_every_sync_of_the_workspace_has_read_past_them(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(4))
    first = create_sync(client, tenant, sandbox, name="first")
    second = create_sync(client, tenant, sandbox, name="second")
    run(first.sync_id)
    run(second.sync_id)
    with database.session() as session:
        session.delete(session.get(User, ids[0]))
    assert tombstones(database) >= 1

    run(first.sync_id)  # the second sync has not read past the deletion yet
    assert tombstones(database) >= 1
    assert run(second.sync_id).counts.unchanged == 3
    assert tombstones(database) == 0
