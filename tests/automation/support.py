"""Helpers for the automation tests: data goes in through the real ingestion and segment services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from connector.automation import firing, playbooks, segment_actions, sequences
from connector.db import Database
from connector.ingest.users import identify
from connector.models import Enrolment, Playbook, PlaybookFiring, User
from connector.segments import service as segment_service
from connector.segments.incremental import apply_changes

SECRET = "test-secret-key"
PRO = {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}


def ingest(database: Database, workspace_id: int, *items: dict[str, Any]) -> None:
    """Identify users the way ``POST /identify`` does: write, then re-evaluate segments, in one transaction."""
    with database.session() as session:
        result = identify(session, workspace_id, list(items))
        apply_changes(session, workspace_id, result.changes)


def user_id(database: Database, workspace_id: int, external_id: str) -> int:
    with database.session() as session:
        return session.scalar(select(User.id).where(User.workspace_id == workspace_id, User.external_id == external_id))


def make_segment(database: Database, workspace_id: int, name: str, conditions: dict, subject_type="user") -> int:
    with database.session() as session:
        return segment_service.create_segment(
            session, workspace_id, name=name, subject_type=subject_type, conditions=conditions
        ).id


def make_sequence(database: Database, workspace_id: int, name: str = "Welcome", **extra) -> int:
    data = {
        "name": name,
        "channels": ["email", "sms"],
        "steps": [{"name": "hello", "delay_minutes": 0}, {"name": "reminder", "delay_minutes": 60}],
        **extra,
    }
    with database.session() as session:
        return sequences.save_sequence(session, workspace_id, data, SECRET).id


def make_playbook(database: Database, workspace_id: int, **data) -> int:
    with database.session() as session:
        return playbooks.save_playbook(session, workspace_id, {"name": "playbook", **data}, SECRET).id


def enrol_on(segment_id: int, sequence_id: int, kind: str = "enters") -> dict:
    """A playbook's trigger and actions: on entering (or exiting) the segment, enrol in the sequence."""
    return {
        "trigger": {"kind": kind, "segment_id": segment_id},
        "actions": [{"type": "enrol", "sequence_id": sequence_id, "fallback_channel": "email"}],
    }


def welcome_pros(database: Database, workspace_id: int) -> tuple[int, int, int]:
    """A segment "Pro" (plan = pro), a sequence "Welcome" and a playbook enrolling who enters Pro in Welcome:
    their ids (segment, sequence, playbook)."""
    pro = make_segment(database, workspace_id, "Pro", PRO)
    welcome = make_sequence(database, workspace_id)
    return pro, welcome, make_playbook(database, workspace_id, **enrol_on(pro, welcome))


def make_action(database: Database, workspace_id: int, segment_id: int, **data) -> int:
    with database.session() as session:
        return segment_actions.put_segment_action(session, workspace_id, segment_id, data).id


def process(database: Database, playbook_id: int, **options) -> int:
    """Read the playbook's history until every lane is caught up (no settle time); returns the rows read."""
    total = 0
    for lane in lanes(database, playbook_id):
        while True:
            with database.session() as session:
                read = firing.process_membership_triggers(session, playbook_id, lane, settle=timedelta(0), **options)
            total += read
            if not read:
                break
    return total


def sweep(database: Database, playbook_id: int) -> int:
    """Sweep every lane of the playbook for late history rows; returns the rows fired."""
    total = 0
    for lane in lanes(database, playbook_id):
        with database.session() as session:
            total += firing.sweep_late_rows(session, playbook_id, lane)
    return total


def lanes(database: Database, playbook_id: int) -> list[int]:
    with database.session() as session:
        return [lane.lane for lane in session.get(Playbook, playbook_id).lanes]


def firings(database: Database, playbook_id: int) -> list[PlaybookFiring]:
    with database.session() as session:
        query = select(PlaybookFiring).where(PlaybookFiring.playbook_id == playbook_id).order_by(PlaybookFiring.id)
        return list(session.scalars(query))


def enrolments(database: Database, sequence_id: int) -> list[Enrolment]:
    with database.session() as session:
        query = select(Enrolment).where(Enrolment.sequence_id == sequence_id).order_by(Enrolment.id)
        return list(session.scalars(query))
