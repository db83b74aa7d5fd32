"""A playbook reads the membership history in lanes (by subject), fired by parallel transactions on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connector.models import Playbook, PlaybookLane, SegmentMembershipEvent, utcnow
from connector.scheduling.automation import process_once
from tests.automation.support import (
    SECRET,
    enrolments,
    firings,
    ingest,
    welcome_pros,
)

PEOPLE = 40


@pytest.fixture
def burst(database, tenant) -> tuple[int, int]:
    """A playbook "enters Pro -> enrol", and PEOPLE people who entered Pro in one ingestion over a second ago."""
    ws = tenant.workspace_id
    _, welcome, playbook = welcome_pros(database, ws)
    ingest(database, ws, *({"external_id": f"p{i}", "attributes": {"plan": "pro"}} for i in range(PEOPLE)))
    with database.session() as session:  # past the settle time of a pass
        session.execute(update(SegmentMembershipEvent).values(at=utcnow() - timedelta(seconds=5)))
    return playbook, welcome


def history(database) -> list[tuple[int, int]]:
    with database.session() as session:
        rows = session.execute(select(SegmentMembershipEvent.id, SegmentMembershipEvent.subject_id))
        return [tuple(row) for row in rows]


def cursors(database, playbook: int) -> dict[int, int]:
    with database.session() as session:
        return {lane.lane: lane.cursor for lane in session.get(Playbook, playbook).lanes}


def test_one_pass_fires_every_lane_once_per_person(database, burst):
    playbook, welcome = burst
    rows = history(database)
    assert process_once(database, SECRET)["history"] == PEOPLE

    fired = [f.subject_id for f in firings(database, playbook)]
    assert sorted(fired) == sorted(subject for _, subject in rows)
    assert sorted(e.user_id for e in enrolments(database, welcome)) == sorted(fired)
    # Each lane read up to the last row of its own subjects.
    assert cursors(database, playbook) == {
        lane: max(id_ for id_, subject in rows if subject % 2 == lane) for lane in (0, 1)
    }
    assert process_once(database, SECRET)["history"] == 0
    assert len(firings(database, playbook)) == PEOPLE


def test_a_lane_held_elsewhere_is_skipped_and_the_other_fires_meanwhile(database, burst):
    if database.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite writes one transaction at a time")
    playbook, _ = burst
    rows = history(database)
    # Another process holds lane 1 (its pass is going on).
    with database.session() as other:
        other.scalar(
            select(PlaybookLane).where(PlaybookLane.playbook_id == playbook, PlaybookLane.lane == 1).with_for_update()
        )
        process_once(database, SECRET)
        fired = sorted(f.subject_id for f in firings(database, playbook))
        assert fired == sorted(subject for _, subject in rows if subject % 2 == 0)
    # Released: lane 1 catches up, lane 0 has nothing more to read.
    assert process_once(database, SECRET)["history"] == PEOPLE // 2
    assert sorted(f.subject_id for f in firings(database, playbook)) == sorted(subject for _, subject in rows)
