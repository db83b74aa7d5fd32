"""Sequences, enrolments, message events and segment actions, under ``/api/v1/workspaces/<workspace>``.

Playbooks, their firings and views are in ``connector.api.playbooks``. Every refusal is problem+json naming the
field (``body.steps[0].delay_minutes``); viewers read, editors and admins write (the workspace wall and roles of
``connector.api.context``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from flask import current_app
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from connector.api.automation_documents import action_json, action_run_json, enrolment_json, sequence_json
from connector.api.common import MAX_ID, WorkspacePath, decode_id_cursor, encode_cursor, workspace_blueprint
from connector.api.context import unit_of_work, workspace_id
from connector.api.problems import ProblemError, conflict, not_found
from connector.automation import messages, segment_actions, sequences
from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.models import utcnow
from connector.scheduling import notify_sync_changed
from connector.scheduling.automation import next_segment_action_run
from connector.segments.incremental import apply_changes

bp = workspace_blueprint("automation", "automation")


def blueprints() -> list[APIBlueprint]:
    return [bp]


class SequencePath(WorkspacePath):
    sequence_id: int = Field(ge=1, le=MAX_ID)


class EnrolmentPath(WorkspacePath):
    enrolment_id: int = Field(ge=1, le=MAX_ID)


class SegmentPath(WorkspacePath):
    segment_id: int = Field(ge=1, le=MAX_ID)


class EnrolmentQuery(BaseModel):
    sequence_id: int | None = Field(None, ge=1, le=MAX_ID)
    user_id: int | None = Field(None, ge=1, le=MAX_ID)
    state: Literal["active", "finished", "exited"] | None = None
    source: Literal["segment_action", "playbook", "api", "ui"] | None = None
    source_id: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200)


class EnrolBody(BaseModel):
    user_ids: list[int] = Field(min_length=1, max_length=1000)
    fallback_channel: Literal["email", "sms", "push", "whatsapp", "in_app"]


def secret_key() -> str:
    return current_app.config["SETTINGS"].secret_key


@contextmanager
def service_errors(location: str = "body") -> Iterator[None]:
    """The shared service refusals as problem documents, field paths prefixed with ``location``."""
    try:
        yield
    except InvalidError as exc:
        errors = exc.prefixed(location).errors
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        raise ProblemError(422, "Invalid request", detail, errors=errors) from None
    except NotFoundError as exc:
        raise not_found(exc.what) from None
    except ConflictError as exc:
        raise ProblemError(409, "Conflict", str(exc), errors=exc.errors, **exc.extra) from None
    except IntegrityError:
        raise conflict("the change conflicts with a concurrent one; read the current state and retry") from None


# -- sequences ----------------------------------------------------------------------------------------------------


@bp.get("/sequences")
def list_sequences(path: WorkspacePath):
    """The workspace's sequences (webhook secrets masked)."""
    with unit_of_work() as session:
        return {"data": [sequence_json(s) for s in sequences.list_sequences(session, workspace_id())]}


@bp.post("/sequences")
def create_sequence(path: WorkspacePath, body: sequences.SequenceInput):
    """Create a sequence: channels it sends on, ordered steps with delays, optional signed webhook."""
    with service_errors(), unit_of_work() as session:
        sequence = sequences.save_sequence(session, workspace_id(), body.model_dump(mode="json"), secret_key())
        return sequence_json(sequence), 201


@bp.get("/sequences/<int:sequence_id>")
def get_sequence(path: SequencePath):
    with service_errors(), unit_of_work() as session:
        return sequence_json(sequences.get_sequence(session, workspace_id(), path.sequence_id))


@bp.put("/sequences/<int:sequence_id>")
def update_sequence(path: SequencePath, body: sequences.SequenceInput):
    """Replace a sequence's definition (a missing webhook_secret keeps the stored one)."""
    with service_errors(), unit_of_work() as session:
        sequence = sequences.get_sequence(session, workspace_id(), path.sequence_id)
        data = body.model_dump(mode="json")
        return sequence_json(sequences.save_sequence(session, workspace_id(), data, secret_key(), sequence))


@bp.delete("/sequences/<int:sequence_id>")
def delete_sequence(path: SequencePath):
    """Delete a sequence with no active enrolment (409 otherwise)."""
    with service_errors(), unit_of_work() as session:
        sequences.delete_sequence(session, sequences.get_sequence(session, workspace_id(), path.sequence_id))
    return "", 204


@bp.post("/sequences/<int:sequence_id>/enrolments")
def enrol_users(path: SequencePath, body: EnrolBody):
    """Enrol people by id (those already active in the sequence are left as they are)."""
    with service_errors(), unit_of_work() as session:
        sequence = sequences.get_sequence(session, workspace_id(), path.sequence_id)
        sequences.check_channel(sequence, body.fallback_channel, "fallback_channel")
        enrolled = sequences.enrol(
            session, sequence, body.user_ids, fallback_channel=body.fallback_channel, source="api"
        )
    notify_sync_changed()
    return {"enrolled": sorted(enrolled), "already_enrolled_or_unknown": len(set(body.user_ids)) - len(enrolled)}, 201


# -- enrolments ---------------------------------------------------------------------------------------------------


@bp.get("/enrolments")
def list_enrolments(path: WorkspacePath, query: EnrolmentQuery):
    """Enrolments, oldest first, filtered by sequence, person, state or source (``source_id``: the segment action
    run or playbook that enrolled)."""
    after = decode_id_cursor(query.cursor, "after")
    with unit_of_work() as session:
        found = sequences.list_enrolments(
            session,
            workspace_id(),
            sequence_id=query.sequence_id,
            user_id=query.user_id,
            state=query.state,
            source=query.source,
            source_id=query.source_id,
            after=after,
            limit=query.limit,
        )
    cursor = encode_cursor({"after": found[-1].id}) if len(found) == query.limit else None
    return {"data": [enrolment_json(e) for e in found], "next_cursor": cursor}


@bp.get("/enrolments/<int:enrolment_id>")
def get_enrolment(path: EnrolmentPath):
    with service_errors(), unit_of_work() as session:
        return enrolment_json(sequences.get_enrolment(session, workspace_id(), path.enrolment_id))


@bp.post("/enrolments/<int:enrolment_id>/exit")
def exit_enrolment(path: EnrolmentPath):
    """Take a person out of a sequence now (409 when the enrolment is not active)."""
    with service_errors(), unit_of_work() as session:
        return enrolment_json(sequences.exit_enrolment(session, workspace_id(), path.enrolment_id))


# -- message events -----------------------------------------------------------------------------------------------


@bp.post("/messages")
def post_messages(path: WorkspacePath, body: messages.MessageBatch):
    """Record message events from a messaging tool (all or nothing; a known ``message_id`` is a duplicate).
    Segments with ``message`` conditions are re-evaluated for those people in the same transaction."""
    with service_errors(), unit_of_work() as session:
        answer, changes = messages.record_messages(session, workspace_id(), body.model_dump(mode="json"), utcnow())
        apply_changes(session, workspace_id(), changes)
    return answer


# -- segment actions ----------------------------------------------------------------------------------------------


@bp.get("/segment-actions")
def list_segment_actions(path: WorkspacePath):
    """Every segment action of the workspace, with its next run."""
    with unit_of_work() as session:
        actions = segment_actions.list_segment_actions(session, workspace_id())
        return {"data": [action_json(a, next_segment_action_run(a)) for a in actions]}


@bp.get("/segments/<int:segment_id>/action")
def get_segment_action(path: SegmentPath):
    """The segment's daily action: enabled, last run, next run, and its latest runs (counts)."""
    with service_errors(), unit_of_work() as session:
        action = segment_actions.get_segment_action(session, workspace_id(), path.segment_id)
        answer = action_json(action, next_segment_action_run(action))
        answer["runs"] = [action_run_json(r) for r in segment_actions.list_runs(session, action)]
        return answer


@bp.put("/segments/<int:segment_id>/action")
def put_segment_action(path: SegmentPath, body: segment_actions.SegmentActionInput):
    """Set the segment's one action: every day at ``time`` in ``timezone``, enrol its members in the sequence.
    Who a run enrolled: ``GET .../enrolments?source=segment_action&source_id=<run id>``."""
    with service_errors(), unit_of_work() as session:
        action = segment_actions.put_segment_action(session, workspace_id(), path.segment_id, body.model_dump())
        answer = action_json(action, next_segment_action_run(action))
    notify_sync_changed()
    return answer


@bp.delete("/segments/<int:segment_id>/action")
def delete_segment_action(path: SegmentPath):
    with service_errors(), unit_of_work() as session:
        action = segment_actions.get_segment_action(session, workspace_id(), path.segment_id)
        segment_actions.delete_segment_action(session, action)
    notify_sync_changed()
    return "", 204
