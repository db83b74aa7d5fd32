"""Sequences: steps fire by recording message events; message data feeds the ``message`` condition."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from connector.automation import messages, sequences
from connector.errors import ConflictError, InvalidError
from connector.models import EnrolmentState, MessageEvent, utcnow
from connector.segments.incremental import apply_changes
from tests.automation.support import SECRET, enrolments, ingest, make_segment, make_sequence, user_id
from tests.segments.support import members


def enrol(database, ws, sequence_id, ids, now):
    with database.session() as session:
        sequence = sequences.get_sequence(session, ws, sequence_id)
        return sequences.enrol(session, sequence, ids, fallback_channel="email", source="api", now=now)


def test_steps_fire_in_order_after_their_delays_then_the_enrolment_finishes(database, tenant):
    ws = tenant.workspace_id
    sequence = make_sequence(database, ws)
    ingest(database, ws, {"external_id": "ann", "default_channel": "sms"})
    ann = user_id(database, ws, "ann")
    reminded = make_segment(database, ws, "Reminded", {"type": "message", "event": "sent", "step": 1})
    start = utcnow()
    assert enrol(database, ws, sequence, [ann], start) == [ann]

    with database.session() as session:
        assert [(f.step, f.channel) for f in sequences.fire_due_steps(session, start)] == [(0, "sms")]
    with database.session() as session:
        assert sequences.fire_due_steps(session, start + timedelta(minutes=59)) == []
    with database.session() as session:
        assert [f.step for f in sequences.fire_due_steps(session, start + timedelta(minutes=60))] == [1]

    [enrolment] = enrolments(database, sequence)
    assert enrolment.state == EnrolmentState.FINISHED
    assert members(database, reminded) == {ann}
    with database.session() as session:
        sent = session.execute(select(MessageEvent.kind, MessageEvent.step).order_by(MessageEvent.id)).all()
    assert [(k.value, s) for k, s in sent] == [("sent", 0), ("sent", 1)]


def test_a_person_is_in_a_sequence_once_at_a_time(database, tenant):
    ws = tenant.workspace_id
    sequence = make_sequence(database, ws)
    ingest(database, ws, {"external_id": "ann"})
    ann = user_id(database, ws, "ann")
    assert enrol(database, ws, sequence, [ann], utcnow()) == [ann]
    assert enrol(database, ws, sequence, [ann], utcnow()) == []
    [enrolment] = enrolments(database, sequence)
    with database.session() as session:
        sequences.exit_enrolment(session, ws, enrolment.id)
    with pytest.raises(ConflictError), database.session() as session:
        sequences.exit_enrolment(session, ws, enrolment.id)
    # Exited: may be enrolled again.
    assert enrol(database, ws, sequence, [ann], utcnow()) == [ann]


def test_people_of_another_workspace_are_not_enrolled(database, tenant, other_tenant):
    sequence = make_sequence(database, tenant.workspace_id)
    ingest(database, other_tenant.workspace_id, {"external_id": "eve"})
    eve = user_id(database, other_tenant.workspace_id, "eve")
    assert enrol(database, tenant.workspace_id, sequence, [eve], utcnow()) == []


def test_ingested_message_events_move_people_into_message_segments(database, tenant):
    ws = tenant.workspace_id
    sequence = make_sequence(database, ws)
    opened = make_segment(
        database,
        ws,
        "Opened welcome",
        {"type": "message", "event": "opened", "sequence_id": sequence, "step": 0},
    )
    ingest(database, ws, {"external_id": "ann"}, {"external_id": "bob"})
    batch = {
        "batch": [{"external_id": "ann", "kind": "opened", "sequence_id": sequence, "step": 0, "message_id": "m1"}]
    }
    for _ in range(2):  # the second time is a duplicate
        with database.session() as session:
            answer, changes = messages.record_messages(session, ws, batch, utcnow())
            apply_changes(session, ws, changes)
    assert answer == {"recorded": 0, "duplicates": 1}
    assert members(database, opened) == {user_id(database, ws, "ann")}


def test_message_events_for_unknown_people_are_refused_naming_the_item(database, tenant):
    with pytest.raises(InvalidError) as excinfo, database.session() as session:
        messages.record_messages(
            session, tenant.workspace_id, {"batch": [{"email": "no@one.example", "kind": "sent"}]}, utcnow()
        )
    assert excinfo.value.errors == [{"field": "batch[0]", "reason": "no such user in this workspace"}]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channels": ["fax"]}, "channels[0]"),
        ({"steps": []}, "steps"),
        ({"steps": [{"name": "a", "delay_minutes": -1}]}, "steps[0].delay_minutes"),
        ({"webhook_url": "https://hooks.example/x"}, "webhook_secret"),
    ],
)
def test_bad_sequences_are_refused_naming_the_field(database, tenant, change, field):
    data = {"name": "S", "channels": ["email"], "steps": [{"name": "a"}], **change}
    with pytest.raises(InvalidError) as excinfo, database.session() as session:
        sequences.save_sequence(session, tenant.workspace_id, data, SECRET)
    assert [e["field"] for e in excinfo.value.errors] == [field]
