"""The sync engine against the HubSpot sandbox (the real hubspot-api-client over real HTTP): what is sent, what is
recorded, and what the runs say."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from connector.models import RecordState, RunStatus, SyncRecord, SyncRun, SyncRunError, User, utcnow
from connector.syncs import run_sync
from connector.syncs.retry import RetryPolicy
from tests.syncs.conftest import (
    FAST_RETRY,
    create_sync,
    hubspot_config,
    make_segment,
    rename_segment,
    seed_users,
    set_members,
    writes,
)

UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"


@pytest.fixture
def run(database, settings):
    def run_(sync_id: int, **kwargs):
        kwargs.setdefault("retry", FAST_RETRY)
        return run_sync(database, sync_id, secret_key=settings.secret_key, **kwargs)

    return run_


def people(n: int, start: int = 0, **attributes) -> list[dict]:
    return [
        {"email": f"person{i}@example.com", "attributes": {"first_name": f"P{i}", "plan": "free", **attributes}}
        for i in range(start, start + n)
    ]


def records(database, sync_id: int) -> dict[int, SyncRecord]:
    with database.session() as session:
        rows = session.scalars(select(SyncRecord).where(SyncRecord.sync_id == sync_id)).all()
        return {row.subject_id: row for row in rows}


def contacts(sandbox) -> dict[str, dict]:
    return {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}


def set_attributes(database, user_id: int, **attributes) -> None:
    with database.session() as session:
        user = session.get(User, user_id)
        user.attributes = {**user.attributes, **attributes}


def test_a_first_run_sends_everyone_and_an_unchanged_run_sends_nothing(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(250))
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, vip, ids[:10])
    setup = create_sync(client, tenant, sandbox)

    outcome = run(setup.sync_id)
    assert outcome.status == RunStatus.SUCCEEDED
    assert (outcome.counts.planned, outcome.counts.added, outcome.counts.unchanged) == (250, 250, 0)
    stats = sandbox.stats()
    assert stats["requests"][UPSERT] == 3  # batches of 100
    assert set(stats["upserts"]["contacts"].values()) == {1}
    got = contacts(sandbox)
    assert len(got) == 250
    assert got["person0@example.com"]["segments"] == "VIP"
    assert got["person0@example.com"]["firstname"] == "P0"
    assert got["person11@example.com"]["segments"] == ""
    assert {o["label"] for o in sandbox.property("contacts", "segments")["options"]} == {"VIP"}
    stored = records(database, setup.sync_id)
    assert len(stored) == 250 and {r.state for r in stored.values()} == {RecordState.SYNCED}
    assert all(r.remote_id for r in stored.values())

    again = run(setup.sync_id)
    assert again.status == RunStatus.SUCCEEDED
    assert (again.counts.planned, again.counts.unchanged) == (0, 250)
    assert sandbox.stats()["requests"] == stats["requests"]  # not one request, not even to prepare


def test_only_what_changed_is_sent(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(120))
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, vip, ids[:3])
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    before = sandbox.stats()

    set_attributes(database, ids[50], plan="pro")
    set_attributes(database, ids[60], unmapped="ignored")  # not mapped: nothing to send
    set_members(database, tenant.workspace_id, vip, ids[:3] + [ids[70]])
    rename_segment(database, tenant.workspace_id, vip, "Very Important")

    outcome = run(setup.sync_id)
    assert (outcome.counts.changed, outcome.counts.unchanged) == (5, 115)  # the renamed segment's 3, 50 and 70
    after = sandbox.stats()
    assert after["requests"][UPSERT] == before["requests"][UPSERT] + 1
    upserted = {k for k, v in after["upserts"]["contacts"].items() if v > before["upserts"]["contacts"].get(k, 0)}
    assert upserted == {f"person{i}@example.com" for i in (0, 1, 2, 50, 70)}
    got = contacts(sandbox)
    assert got["person50@example.com"]["plan"] == "pro"
    assert got["person70@example.com"]["segments"] == "Very Important"
    assert "Very Important" in {o["label"] for o in sandbox.property("contacts", "segments")["options"]}


def test_subjects_leaving_an_upsert_sync_are_left_as_they_are(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(5))
    paying = make_segment(database, tenant.workspace_id, "Paying")
    set_members(database, tenant.workspace_id, paying, ids[:3])
    setup = create_sync(client, tenant, sandbox, segment_ids=[paying])
    assert run(setup.sync_id).counts.added == 3
    requests = sandbox.stats()["requests"][UPSERT]

    set_members(database, tenant.workspace_id, paying, ids[:2])
    outcome = run(setup.sync_id)
    assert (outcome.counts.planned, outcome.counts.removed, outcome.counts.unchanged) == (0, 0, 2)
    assert sandbox.stats()["requests"][UPSERT] == requests
    assert contacts(sandbox)["person2@example.com"]["segments"] == "Paying"  # upsert mode leaves it alone
    assert set(records(database, setup.sync_id)) == set(ids[:2])

    set_members(database, tenant.workspace_id, paying, ids[:3])
    assert run(setup.sync_id).counts.added == 1


def test_mirror_mode_clears_the_segments_of_subjects_that_leave(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(4))
    paying = make_segment(database, tenant.workspace_id, "Paying")
    set_members(database, tenant.workspace_id, paying, ids)
    setup = create_sync(client, tenant, sandbox, segment_ids=[paying], mode="mirror")
    run(setup.sync_id)

    set_members(database, tenant.workspace_id, paying, ids[:2])
    outcome = run(setup.sync_id)
    assert (outcome.counts.removed, outcome.counts.unchanged, outcome.counts.planned) == (2, 2, 2)
    got = contacts(sandbox)
    assert got["person3@example.com"]["segments"] == ""
    assert got["person3@example.com"]["firstname"] == "P3"  # only the Segments field is cleared
    assert got["person0@example.com"]["segments"] == "Paying"
    states = {sid: r.state for sid, r in records(database, setup.sync_id).items()}
    assert states == {ids[0]: "synced", ids[1]: "synced", ids[2]: "removed", ids[3]: "removed"}

    assert run(setup.sync_id).counts.planned == 0
    set_members(database, tenant.workspace_id, paying, ids[:3])
    back = run(setup.sync_id)
    assert back.counts.added == 1
    assert contacts(sandbox)["person2@example.com"]["segments"] == "Paying"


def test_mirror_mode_can_remove_the_records_of_subjects_that_leave(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(3))
    paying = make_segment(database, tenant.workspace_id, "Paying")
    set_members(database, tenant.workspace_id, paying, ids)
    setup = create_sync(client, tenant, sandbox, segment_ids=[paying], mode="mirror", mirror_action="remove")
    run(setup.sync_id)
    set_members(database, tenant.workspace_id, paying, ids[:1])
    with database.session() as session:  # a deleted user leaves too
        session.delete(session.get(User, ids[2]))
    outcome = run(setup.sync_id)
    assert outcome.counts.removed == 2
    assert set(contacts(sandbox)) == {"person0@example.com"}
    assert sandbox.stats()["requests"]["POST /crm/v3/objects/contacts/batch/archive"] == 1


def test_refused_records_are_reported_and_retried_until_they_land(client, tenant, database, sandbox, run):
    rows = people(6)
    rows[1]["email"] = "not-an-email"
    rows[4]["email"] = "also@invalid"
    ids = seed_users(database, tenant.workspace_id, rows)
    setup = create_sync(client, tenant, sandbox)

    first = run(setup.sync_id)
    assert first.status == RunStatus.PARTIAL
    assert (first.counts.added, first.counts.rejected) == (4, 2)
    assert len(contacts(sandbox)) == 4
    stored = records(database, setup.sync_id)
    assert stored[ids[1]].state == RecordState.REJECTED
    assert "Email address not-an-email is invalid" in stored[ids[1]].error
    with database.session() as session:
        errors = session.scalars(select(SyncRunError).where(SyncRunError.run_id == first.run_id)).all()
        assert {(e.subject_id, e.kind) for e in errors} == {(ids[1], "rejected"), (ids[4], "rejected")}
        assert "INVALID_EMAIL" in errors[0].reason or "is invalid" in errors[0].reason

    before = sandbox.stats()
    second = run(setup.sync_id)
    assert (second.counts.planned, second.counts.rejected, second.counts.unchanged) == (2, 2, 4)
    after = sandbox.stats()
    assert after["requests"][UPSERT] == before["requests"][UPSERT] + 1
    assert after["rejected_inputs"] == before["rejected_inputs"] + 2

    with database.session() as session:
        session.get(User, ids[1]).email = "fixed@example.com"
    third = run(setup.sync_id)
    assert (third.counts.added, third.counts.rejected) == (1, 1)
    assert "fixed@example.com" in contacts(sandbox)
    assert records(database, setup.sync_id)[ids[1]].state == RecordState.SYNCED


def test_records_without_identity_or_sharing_one_are_invalid_and_never_sent(client, tenant, database, sandbox, run):
    rows = people(5)
    rows[0]["email"] = None
    rows[2]["email"] = "twin@example.com"
    rows[3]["email"] = " TWIN@example.com"
    ids = seed_users(database, tenant.workspace_id, rows)
    setup = create_sync(client, tenant, sandbox)
    outcome = run(setup.sync_id)
    assert outcome.status == RunStatus.PARTIAL
    assert (outcome.counts.added, outcome.counts.invalid) == (2, 3)
    assert set(contacts(sandbox)) == {"person1@example.com", "person4@example.com"}
    with database.session() as session:
        errors = {e.subject_id: e for e in session.scalars(select(SyncRunError)).all()}
    assert set(errors) == {ids[0], ids[2], ids[3]}
    assert {e.kind for e in errors.values()} == {"invalid"}
    assert "no value for the identity field email" in errors[ids[0]].reason
    assert "shared with another subject" in errors[ids[3]].reason
    assert set(records(database, setup.sync_id)) == {ids[1], ids[4]}


def test_a_dry_run_sends_nothing_and_records_nothing(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(30))
    setup = create_sync(client, tenant, sandbox, mode="mirror")
    run(setup.sync_id)
    set_attributes(database, ids[0], plan="pro")
    before = (writes(sandbox.stats()), records(database, setup.sync_id))
    plan = run(setup.sync_id, dry_run=True)
    assert plan.dry_run and plan.status == RunStatus.SUCCEEDED
    assert (plan.counts.changed, plan.counts.unchanged) == (1, 29)
    assert plan.samples[0]["properties"]["plan"] == "pro"
    assert writes(sandbox.stats()) == before[0]
    assert {k: v.payload_hash for k, v in records(database, setup.sync_id).items()} == {
        k: v.payload_hash for k, v in before[1].items()
    }


def test_destinations_holding_one_token_share_its_portal_budget(client, tenant, database, sandbox, run):
    """HubSpot counts a private app's requests per portal: two destinations with one token, synced at the same time,
    stay together under the budget (each keeping its own window would send twice as much and meet 429s)."""
    seed_users(database, tenant.workspace_id, people(500))
    sandbox.set_rate_limit((4, 1.0))
    config = hubspot_config(sandbox, rate_limit_requests=4, rate_limit_seconds=1)
    setups = [create_sync(client, tenant, sandbox, config=config, name=name) for name in ("first", "second")]
    outcomes = {}
    threads = [
        threading.Thread(target=lambda s=setup: outcomes.setdefault(s.sync_id, run(s.sync_id)), daemon=True)
        for setup in setups
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [outcomes[s.sync_id].status for s in setups] == [RunStatus.SUCCEEDED] * 2
    assert [outcomes[s.sync_id].counts.added for s in setups] == [500, 500]
    assert sandbox.stats()["rate_limited"] == 0
    assert len(contacts(sandbox)) == 500


def test_two_runs_of_one_sync_never_overlap(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(100))
    # 2 requests a second: the first run takes a few seconds, long enough for the second to find it running.
    sandbox.set_rate_limit((2, 1.0))
    setup = create_sync(
        client, tenant, sandbox, config=hubspot_config(sandbox, rate_limit_requests=2, rate_limit_seconds=1)
    )
    outcomes = {}
    first = threading.Thread(target=lambda: outcomes.setdefault("first", run(setup.sync_id)))
    first.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with database.session() as session:
            if session.scalar(select(SyncRun.id).where(SyncRun.status == RunStatus.RUNNING)):
                break
        time.sleep(0.01)
    second = run(setup.sync_id)
    first.join(timeout=60)
    assert second.status == RunStatus.SKIPPED
    assert f"run {outcomes['first'].run_id}" in second.first_error
    assert outcomes["first"].status == RunStatus.SUCCEEDED
    assert outcomes["first"].counts.added == 100
    assert sandbox.stats()["rate_limited"] == 0
    with database.session() as session:
        statuses = session.scalars(select(SyncRun.status).order_by(SyncRun.id)).all()
    assert statuses == [RunStatus.SUCCEEDED, RunStatus.SKIPPED]


def test_a_run_abandoned_by_a_dead_process_is_taken_over(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(3))
    setup = create_sync(client, tenant, sandbox)
    with database.session() as session:
        stale = SyncRun(
            sync_id=setup.sync_id,
            status=RunStatus.RUNNING,
            trigger="schedule",
            started_at=utcnow() - timedelta(minutes=5),
            heartbeat_at=utcnow() - timedelta(minutes=2),
        )
        session.add(stale)
        session.flush()
        stale_id = stale.id
    outcome = run(setup.sync_id)
    assert outcome.status == RunStatus.SUCCEEDED and outcome.counts.added == 3
    with database.session() as session:
        abandoned = session.get(SyncRun, stale_id)
        assert abandoned.status == RunStatus.FAILED
        assert abandoned.first_error.startswith("abandoned")

    # A fresh heartbeat means the owner is alive: the next run is skipped.
    with database.session() as session:
        session.add(SyncRun(sync_id=setup.sync_id, status=RunStatus.RUNNING, trigger="schedule", heartbeat_at=utcnow()))
    assert run(setup.sync_id).status == RunStatus.SKIPPED


def test_credentials_the_destination_refuses_fail_the_run(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(3))
    setup = create_sync(client, tenant, sandbox, config=hubspot_config(sandbox, access_token="revoked"))
    outcome = run(setup.sync_id)
    assert outcome.status == RunStatus.FAILED
    assert "credentials" in outcome.first_error
    assert outcome.counts.planned == 3 and outcome.counts.unsent == 3
    assert records(database, setup.sync_id) == {}
    with database.session() as session:
        stored = session.get(SyncRun, outcome.run_id)
        assert stored.status == RunStatus.FAILED and stored.finished_at is not None
        assert "credentials" in stored.first_error


def test_a_destination_that_stays_down_leaves_records_unsent_and_the_next_run_converges(
    client, tenant, database, sandbox, run
):
    ids = seed_users(database, tenant.workspace_id, people(250))
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    upgraded = ids[1::2]
    with database.session() as session:
        for user_id in upgraded:
            user = session.get(User, user_id)
            user.attributes = {**user.attributes, "plan": "pro"}

    sandbox.set_faults(rate_5xx=1.0, match="/batch/")
    down = run(setup.sync_id, retry=RetryPolicy(attempts=3, initial_wait_s=0.001, max_wait_s=0.005))
    assert down.status == RunStatus.FAILED
    assert "retries exhausted" in down.first_error
    assert down.counts.changed == 0 and down.counts.unsent == down.counts.planned == 125
    with database.session() as session:
        kinds = set(session.scalars(select(SyncRunError.kind).where(SyncRunError.run_id == down.run_id)))
    assert kinds == {"unsent"}

    sandbox.set_faults()
    back = run(setup.sync_id)
    assert back.status == RunStatus.SUCCEEDED
    assert back.counts.changed == 125
    plans = {email: c["plan"] for email, c in contacts(sandbox).items()}
    assert plans == {f"person{n}@example.com": "pro" if n % 2 else "free" for n in range(250)}


def test_a_sync_of_accounts_writes_companies_by_a_unique_property(client, tenant, database, sandbox, run):
    from connector.models import Account, SubjectType

    with database.session() as session:
        session.add_all(
            Account(workspace_id=tenant.workspace_id, external_id=f"a{i}", domain=f"co{i}.example", name=f"Co {i}")
            for i in range(3)
        )
        session.flush()
        account_ids = session.scalars(select(Account.id).order_by(Account.id)).all()
    big = make_segment(database, tenant.workspace_id, "Big", SubjectType.ACCOUNT)
    set_members(database, tenant.workspace_id, big, account_ids[:2])
    setup = create_sync(
        client,
        tenant,
        sandbox,
        subject_type="accounts",
        destination_object="companies",
        mappings=[
            {"source": {"kind": "field", "name": "domain"}, "destination": "connector_domain"},
            {"source": {"kind": "field", "name": "name"}, "destination": "name"},
            {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multiline"},
        ],
        identity={"destination": "connector_domain"},
    )
    outcome = run(setup.sync_id)
    assert outcome.status == RunStatus.SUCCEEDED, outcome.first_error
    companies = {r["properties"]["connector_domain"]: r["properties"] for r in sandbox.records("companies")}
    assert companies["co0.example"]["segments"] == "Big"
    assert companies["co2.example"]["segments"] == ""
    assert sandbox.property("companies", "connector_domain")["hasUniqueValue"] is True


def test_progress_is_visible_while_a_run_goes(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(300))
    setup = create_sync(client, tenant, sandbox)
    seen = []
    outcome = run(setup.sync_id, progress=lambda counts: seen.append(counts.added))
    assert outcome.counts.added == 300
    assert seen and seen[-1] == 300 and seen == sorted(seen)
    with database.session() as session:
        stored = session.get(SyncRun, outcome.run_id)
        assert stored.added == 300 and stored.heartbeat_at is not None


def test_a_changed_email_moves_to_another_remote_record(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(2))
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    with database.session() as session:
        session.execute(update(User).where(User.id == ids[0]).values(email="renamed@example.com"))
    outcome = run(setup.sync_id)
    assert outcome.counts.changed == 1
    assert records(database, setup.sync_id)[ids[0]].identity == "renamed@example.com"
    assert "renamed@example.com" in contacts(sandbox)


def test_the_scheduler_firing_for_a_disabled_sync_records_a_skipped_run(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(2))
    setup = create_sync(client, tenant, sandbox, enabled=False)
    outcome = run(setup.sync_id, trigger="schedule")
    assert outcome.status == RunStatus.SKIPPED and "disabled" in outcome.first_error
    assert sandbox.stats()["requests"] == {}
    assert run(setup.sync_id, trigger="manual").counts.added == 2  # by hand it still runs


def test_update_mode_changes_only_records_the_destination_already_has(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, people(4))
    first = create_sync(client, tenant, sandbox, name="creates")
    with database.session() as session:  # only the first two exist in HubSpot
        session.execute(update(User).where(User.id.in_(ids[2:])).values(email=None))
    run(first.sync_id)
    with database.session() as session:
        for n, user_id in enumerate(ids):
            session.get(User, user_id).email = f"person{n}@example.com"
    for user_id in ids:
        set_attributes(database, user_id, plan="pro")

    updates = create_sync(client, tenant, sandbox, name="updates", mode="update")
    outcome = run(updates.sync_id)
    assert outcome.status == RunStatus.PARTIAL
    assert (outcome.counts.added, outcome.counts.rejected) == (2, 2)
    got = contacts(sandbox)
    assert set(got) == {"person0@example.com", "person1@example.com"}  # nothing created
    assert {c["plan"] for c in got.values()} == {"pro"}
    with database.session() as session:
        reasons = set(session.scalars(select(SyncRunError.reason).where(SyncRunError.run_id == outcome.run_id)))
    assert reasons == {"not found in HubSpot (update mode)"}


def test_a_run_whose_lease_was_taken_over_stops(client, tenant, database, sandbox, run):
    seed_users(database, tenant.workspace_id, people(600))
    sandbox.set_rate_limit((3, 1.0))
    setup = create_sync(
        client, tenant, sandbox, config=hubspot_config(sandbox, rate_limit_requests=3, rate_limit_seconds=1)
    )
    outcomes = {}
    worker = threading.Thread(
        # One worker: batches go one after another, so most are still to be sent when the lease is lost.
        target=lambda: outcomes.setdefault("run", run(setup.sync_id, workers=1, heartbeat_seconds=0.05)),
        daemon=True,
    )
    worker.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not records(database, setup.sync_id):
        time.sleep(0.02)
    # Another process decided this run was abandoned (its heartbeats had stalled) and took the sync over.
    with database.session() as session:
        session.execute(update(SyncRun).values(status=RunStatus.FAILED, first_error="abandoned"))
        assert session.scalar(select(func.count()).select_from(SyncRecord)) < 600
    worker.join(timeout=30)
    outcome = outcomes["run"]
    assert outcome.status == RunStatus.FAILED
    assert "lost its lease" in outcome.first_error
    assert 0 < outcome.counts.added < 600 and outcome.counts.unsent > 0
    # What it had delivered is recorded; the next run sends only the rest.
    delivered = len(records(database, setup.sync_id))
    assert delivered == outcome.counts.added
    sandbox.set_rate_limit(None)
    client.patch(
        tenant.url(f"/destinations/{setup.destination_id}"),
        json={"config": {"rate_limit_requests": 1000}},
        headers=tenant.headers,
    )
    assert run(setup.sync_id).counts.added == 600 - delivered
