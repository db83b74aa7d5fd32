"""Playbooks fire from the membership history: once per enter or exit, never missed, never twice."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from connector.automation import playbooks
from connector.automation.firing import fire_on_schedule
from connector.db import Database
from connector.errors import InvalidError
from connector.ingest.accounts import group
from connector.models import AccountTag, FiringStatus, Playbook, SegmentMembershipEvent, User, utcnow
from connector.segments.incremental import apply_changes
from tests.automation.support import (
    PRO,
    SECRET,
    enrol_on,
    enrolments,
    firings,
    ingest,
    make_playbook,
    make_segment,
    make_sequence,
    process,
    sweep,
    user_id,
)
from tests.segments.support import members


@pytest.fixture
def pro(database, tenant) -> int:
    return make_segment(database, tenant.workspace_id, "Pro", PRO)


@pytest.fixture
def welcome(database, tenant) -> int:
    return make_sequence(database, tenant.workspace_id)


def test_entering_a_segment_fires_the_playbook_once(database, tenant, pro, welcome):
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})

    assert process(database, playbook) == 1
    assert process(database, playbook) == 0
    [fired] = firings(database, playbook)
    assert (fired.status, fired.trigger, fired.subject_id) == (
        FiringStatus.SUCCEEDED,
        "enters",
        user_id(database, tenant.workspace_id, "ann"),
    )
    assert fired.results == [{"type": "enrol", "status": "ok", "detail": "enrolled"}]
    [enrolment] = enrolments(database, welcome)
    assert (enrolment.source, enrolment.source_id, enrolment.channel) == ("playbook", playbook, "email")


def test_exit_fires_once_per_exit(database, tenant, pro, welcome):
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome, "exits"))
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "free"}})

    process(database, playbook)
    process(database, playbook)
    assert [(f.trigger, f.status) for f in firings(database, playbook)] == [("exits", FiringStatus.SUCCEEDED)]


def test_enter_exit_enter_fires_twice(database, tenant, pro, welcome):
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    for plan in ("pro", "free", "pro"):
        ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": plan}})

    process(database, playbook)
    assert [f.trigger for f in firings(database, playbook)] == ["enters", "enters"]
    # Enrolled once: a person is in a sequence at most once at a time.
    assert [f.results[0]["detail"] for f in firings(database, playbook)] == ["enrolled", "already enrolled"]
    assert len(enrolments(database, welcome)) == 1


def test_changes_made_while_nothing_processed_fire_after_a_restart_and_only_once(
    database, database_url, tenant, pro, welcome
):
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    # A new process (a fresh engine and pool) after the first one went away without firing.
    restarted = Database(database_url)
    try:
        assert process(restarted, playbook) == 1
        assert process(restarted, playbook) == 0
    finally:
        restarted.dispose()
    assert process(database, playbook) == 0
    assert len(firings(database, playbook)) == 1


def test_conditions_are_checked_at_firing_time(database, tenant, pro, welcome):
    conditions = {"type": "attribute", "name": "country", "operator": "eq", "value": "FR"}
    playbook = make_playbook(database, tenant.workspace_id, conditions=conditions, **enrol_on(pro, welcome))
    ingest(
        database,
        tenant.workspace_id,
        {"external_id": "ann", "attributes": {"plan": "pro", "country": "FR"}},
        {"external_id": "bob", "attributes": {"plan": "pro", "country": "DE"}},
    )

    process(database, playbook)
    by_subject = {f.subject_id: f for f in firings(database, playbook)}
    ann, bob = (user_id(database, tenant.workspace_id, x) for x in ("ann", "bob"))
    assert by_subject[ann].status == FiringStatus.SUCCEEDED
    assert (by_subject[bob].status, by_subject[bob].error) == (FiringStatus.SKIPPED, "conditions not met")
    assert [e.user_id for e in enrolments(database, welcome)] == [ann]


def test_segment_not_in_condition_is_checked_too(database, tenant, pro, welcome):
    vip = make_segment(database, tenant.workspace_id, "VIP", {"type": "tag", "value": "vip"})
    conditions = {"type": "segment", "operator": "not_in", "segment_id": vip}
    playbook = make_playbook(database, tenant.workspace_id, conditions=conditions, **enrol_on(pro, welcome))
    ingest(
        database,
        tenant.workspace_id,
        {"external_id": "ann", "attributes": {"plan": "pro"}, "tags": ["vip"]},
        {"external_id": "bob", "attributes": {"plan": "pro"}},
    )

    process(database, playbook)
    assert [e.user_id for e in enrolments(database, welcome)] == [user_id(database, tenant.workspace_id, "bob")]


def test_paused_playbook_resumes_from_now(database, tenant, pro, welcome):
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    with database.session() as session:
        playbooks.set_enabled(session, playbooks.get_playbook(session, tenant.workspace_id, playbook), False)
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    with database.session() as session:
        playbooks.set_enabled(session, playbooks.get_playbook(session, tenant.workspace_id, playbook), True)
    ingest(database, tenant.workspace_id, {"external_id": "bob", "attributes": {"plan": "pro"}})

    process(database, playbook)
    assert [f.subject_id for f in firings(database, playbook)] == [user_id(database, tenant.workspace_id, "bob")]


def test_paused_playbook_can_catch_up_when_asked(database, tenant, pro, welcome):
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    with database.session() as session:
        playbooks.set_enabled(session, playbooks.get_playbook(session, tenant.workspace_id, playbook), False)
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    with database.session() as session:
        found = playbooks.get_playbook(session, tenant.workspace_id, playbook)
        playbooks.set_enabled(session, found, True, catch_up=True)

    process(database, playbook)
    assert [f.subject_id for f in firings(database, playbook)] == [user_id(database, tenant.workspace_id, "ann")]


def test_set_attribute_flows_through_ingestion_so_segments_follow(database, tenant, pro):
    onboarded = make_segment(
        database,
        tenant.workspace_id,
        "Onboarded",
        {"type": "attribute", "name": "stage", "operator": "eq", "value": "on"},
    )
    playbook = make_playbook(
        database,
        tenant.workspace_id,
        trigger={"kind": "enters", "segment_id": pro},
        actions=[{"type": "set_attribute", "name": "stage", "value": "on"}, {"type": "add_tag", "tag": "welcomed"}],
    )
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    process(database, playbook)

    ann = user_id(database, tenant.workspace_id, "ann")
    with database.session() as session:
        assert session.get(User, ann).attributes == {"plan": "pro", "stage": "on"}
    assert members(database, onboarded) == {ann}


def test_an_action_changing_what_the_trigger_segment_reads_is_refused(database, tenant, pro):
    with pytest.raises(InvalidError) as excinfo:
        make_playbook(
            database,
            tenant.workspace_id,
            trigger={"kind": "exits", "segment_id": pro},
            actions=[{"type": "set_attribute", "name": "plan", "value": "pro"}],
        )
    [error] = excinfo.value.errors
    assert error["field"] == "actions[0].name"
    assert "re-trigger" in error["reason"]


def test_a_loop_through_several_playbooks_is_bounded(database, tenant):
    ws = tenant.workspace_id
    has_a = make_segment(database, ws, "A", {"type": "tag", "value": "a"})
    has_b = make_segment(database, ws, "B", {"type": "tag", "value": "b"})
    # a -> b -> not a -> not b -> a ...: each playbook alone is fine, together they loop.
    loop = [
        ("p1", "enters", has_a, {"type": "add_tag", "tag": "b"}),
        ("p2", "enters", has_b, {"type": "remove_tag", "tag": "a"}),
        ("p3", "exits", has_a, {"type": "remove_tag", "tag": "b"}),
        ("p4", "exits", has_b, {"type": "add_tag", "tag": "a"}),
    ]
    ids = [
        make_playbook(database, ws, name=name, trigger={"kind": kind, "segment_id": seg}, actions=[action])
        for name, kind, seg, action in loop
    ]
    ingest(database, ws, {"external_id": "ann", "tags": ["a"]})

    for _ in range(100):
        if not sum(process(database, playbook) for playbook in ids):
            break
    else:
        pytest.fail("the loop did not stop")
    for playbook in ids:
        statuses = [f.status for f in firings(database, playbook)]
        assert statuses.count(FiringStatus.SUCCEEDED) <= playbooks.MAX_FIRINGS_PER_SUBJECT_PER_HOUR
    suppressed = [f for p in ids for f in firings(database, p) if f.status == FiringStatus.SUPPRESSED]
    assert suppressed and "loop bound" in suppressed[0].error


def test_two_processes_reading_the_same_history_fire_each_change_once(database, tenant, pro, welcome):
    playbook = make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    ingest(database, tenant.workspace_id, *({"external_id": f"u{i}", "attributes": {"plan": "pro"}} for i in range(50)))

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            process(database, playbook, limit=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    fired = firings(database, playbook)
    assert len(fired) == 50
    assert len({f.subject_id for f in fired}) == 50
    assert len(enrolments(database, welcome)) == 50


def test_playbook_names_are_checked(database, tenant, pro, welcome):
    make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    with pytest.raises(Exception) as excinfo:
        make_playbook(database, tenant.workspace_id, **enrol_on(pro, welcome))
    assert excinfo.value.errors == [
        {"field": "name", "reason": "another playbook of this workspace is named 'playbook'"}
    ]
    _ = SECRET


def test_a_schedule_playbook_fires_for_everyone_matching_once_per_tick(database, tenant, welcome):
    ws = tenant.workspace_id
    ingest(
        database,
        ws,
        {"external_id": "ann", "attributes": {"plan": "pro"}},
        {"external_id": "bob", "attributes": {"plan": "free"}},
    )
    playbook = make_playbook(
        database,
        ws,
        trigger={"kind": "schedule", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"},
        conditions=PRO,
        actions=[{"type": "enrol", "sequence_id": welcome, "fallback_channel": "sms"}],
    )
    tick = utcnow()
    for _ in range(2):  # the same tick twice (a retried job): recorded once
        with database.session() as session:
            fire_on_schedule(session, playbook, tick)
    assert [(f.trigger, f.subject_id) for f in firings(database, playbook)] == [
        ("schedule", user_id(database, ws, "ann"))
    ]
    assert [e.channel for e in enrolments(database, welcome)] == ["sms"]


def test_a_bad_schedule_is_refused_naming_the_field(database, tenant):
    with pytest.raises(InvalidError) as excinfo:
        make_playbook(
            database,
            tenant.workspace_id,
            trigger={"kind": "schedule", "expression": "0 9 1 * 1", "timezone": "UTC"},
            actions=[{"type": "add_tag", "tag": "x"}],
        )
    assert [e["field"] for e in excinfo.value.errors] == ["trigger.expression"]


def test_an_account_playbook_changes_accounts_through_ingestion(database, tenant):
    ws = tenant.workspace_id
    with database.session() as session:
        result = group(session, ws, [{"external_id": "acme", "attributes": {"tier": "gold"}}])
        apply_changes(session, ws, result.changes)
    gold = make_segment(
        database, ws, "Gold", {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"}, "account"
    )
    playbook = make_playbook(
        database,
        ws,
        subject_type="account",
        trigger={"kind": "exits", "segment_id": gold},
        actions=[{"type": "add_tag", "tag": "downgraded"}],
    )
    with database.session() as session:
        result = group(session, ws, [{"external_id": "acme", "attributes": {"tier": "silver"}}])
        apply_changes(session, ws, result.changes)
    process(database, playbook)
    with database.session() as session:
        tags = session.scalars(select(AccountTag.tag)).all()
    assert tags == ["downgraded"]


def test_a_change_committed_after_a_later_one_was_read_still_fires_once(database, tenant, pro, welcome):
    ws = tenant.workspace_id
    playbook = make_playbook(database, ws, **enrol_on(pro, welcome))
    for name in ("ann", "cat", "bob"):
        ingest(database, ws, {"external_id": name, "attributes": {"plan": "pro"}})
    ann, bob = user_id(database, ws, "ann"), user_id(database, ws, "bob")
    assert ann % 2 == bob % 2  # one lane of the playbook's two reads both
    # Ann's history row stands for a transaction that has not committed yet: take it out, let Bob's be read first.
    with database.session() as session:
        late = session.scalars(select(SegmentMembershipEvent).order_by(SegmentMembershipEvent.id)).first()
        late_row = {"id": late.id, "segment_id": late.segment_id, "subject_id": late.subject_id, "change": late.change}
        session.delete(late)
    process(database, playbook)
    assert len(firings(database, playbook)) == 2
    with database.session() as session:  # ...then it commits, with its lower id
        session.add(SegmentMembershipEvent(**late_row, at=utcnow()))

    assert process(database, playbook) == 0  # behind its lane's cursor: reading on does not see it
    assert sweep(database, playbook) == 1
    assert sweep(database, playbook) == 0
    assert process(database, playbook) == 0
    fired = [f.subject_id for f in firings(database, playbook)]
    assert sorted(fired) == sorted([ann, bob, user_id(database, ws, "cat")])


def test_lanes_read_apart_a_row_behind_one_lane_is_read_by_its_own(database, tenant, pro, welcome):
    ws = tenant.workspace_id
    playbook = make_playbook(database, ws, **enrol_on(pro, welcome))
    for name in ("ann", "bob"):
        ingest(database, ws, {"external_id": name, "attributes": {"plan": "pro"}})
    ann, bob = user_id(database, ws, "ann"), user_id(database, ws, "bob")
    assert ann % 2 != bob % 2
    with database.session() as session:
        late = session.scalars(select(SegmentMembershipEvent).order_by(SegmentMembershipEvent.id)).first()
        late_row = {"id": late.id, "segment_id": late.segment_id, "subject_id": late.subject_id, "change": late.change}
        session.delete(late)
    process(database, playbook)
    with database.session() as session:
        session.add(SegmentMembershipEvent(**late_row, at=utcnow()))
    # Bob's lane read past Ann's id, Ann's lane did not: her row is read on, not swept.
    assert process(database, playbook) == 1
    assert sweep(database, playbook) == 0
    with database.session() as session:
        cursors = {lane.lane: lane.cursor for lane in session.get(Playbook, playbook).lanes}
    assert cursors == {ann % 2: late_row["id"], bob % 2: late_row["id"] + 1}
    assert sorted(f.subject_id for f in firings(database, playbook)) == sorted([ann, bob])


def test_the_sweep_does_not_fire_what_happened_while_paused(database, tenant, pro, welcome):
    ws = tenant.workspace_id
    playbook = make_playbook(database, ws, **enrol_on(pro, welcome))
    with database.session() as session:
        playbooks.set_enabled(session, playbooks.get_playbook(session, ws, playbook), False)
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
    with database.session() as session:
        playbooks.set_enabled(session, playbooks.get_playbook(session, ws, playbook), True)
    assert sweep(database, playbook) == 0
    assert firings(database, playbook) == []
