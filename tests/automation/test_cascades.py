"""Enrolments and firings go with their sequence and playbook (by trigger, migration 0019), and none is left behind
by a delete that races a write."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from connector.automation import playbooks, sequences
from connector.errors import NotFoundError
from connector.models import Enrolment, EnrolmentState, PlaybookFiring
from tests.automation.support import (
    enrolments,
    firings,
    ingest,
    make_playbook,
    make_sequence,
    process,
    user_id,
    welcome_pros,
)


def count(database, column, value) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).where(column == value))


def test_deleting_a_playbook_deletes_its_firings_and_a_sequence_its_enrolments(database, tenant):
    ws = tenant.workspace_id
    pro, welcome, playbook = welcome_pros(database, ws)
    other = make_playbook(
        database,
        ws,
        name="other",
        trigger={"kind": "enters", "segment_id": pro},
        actions=[{"type": "add_tag", "tag": "pro"}],
    )
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
    process(database, playbook), process(database, other)
    assert len(firings(database, playbook)) == len(firings(database, other)) == 1

    with database.session() as session:
        playbooks.delete_playbook(session, playbooks.get_playbook(session, ws, playbook))
    assert count(database, PlaybookFiring.playbook_id, playbook) == 0
    assert len(firings(database, other)) == 1  # another playbook's firings stay

    with database.session() as session:
        (enrolment,) = session.scalars(select(Enrolment).where(Enrolment.sequence_id == welcome))
        enrolment.state = EnrolmentState.FINISHED
    with database.session() as session:
        sequences.delete_sequence(session, sequences.get_sequence(session, ws, welcome))
    assert enrolments(database, welcome) == []


def test_a_sequence_deleted_while_people_are_being_enrolled_leaves_no_enrolment_behind(database, tenant):
    if database.dialect != "postgresql":
        pytest.skip("SQLite writes one transaction at a time: a delete cannot run beside an enrolment")
    ws = tenant.workspace_id
    welcome = make_sequence(database, ws)
    ingest(database, ws, {"external_id": "ann"}, {"external_id": "bob"})
    people = [user_id(database, ws, "ann"), user_id(database, ws, "bob")]
    deleted = threading.Event()

    def delete() -> None:
        with database.session() as session:  # sees no active enrolment yet: the enrolment is not committed
            sequences.delete_sequence(session, sequences.get_sequence(session, ws, welcome))
        deleted.set()

    with database.session() as session:
        sequence = sequences.get_sequence(session, ws, welcome)
        assert sorted(sequences.enrol(session, sequence, people, fallback_channel="email", source="api")) == people
        deleter = threading.Thread(target=delete)
        deleter.start()
        assert not deleted.wait(1.0), "the delete must wait for the enrolment's transaction"
    deleter.join(10)
    assert deleted.is_set()
    # The delete went ahead after the enrolment committed, and took its enrolments with it.
    assert count(database, Enrolment.sequence_id, welcome) == 0


def test_people_are_not_enrolled_in_a_sequence_deleted_meanwhile(database, tenant):
    ws = tenant.workspace_id
    welcome = make_sequence(database, ws)
    ingest(database, ws, {"external_id": "ann"})
    with database.session() as session:
        sequence = sequences.get_sequence(session, ws, welcome)
    with database.session() as session:
        sequences.delete_sequence(session, sequences.get_sequence(session, ws, welcome))
    with database.session() as session, pytest.raises(NotFoundError):
        sequences.enrol(session, sequence, [user_id(database, ws, "ann")], fallback_channel="email", source="api")
    assert count(database, Enrolment.sequence_id, welcome) == 0
