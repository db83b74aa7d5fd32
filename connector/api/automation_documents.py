"""Sequences, enrolments, segment actions and their runs, playbooks and their firings, and views as JSON documents
(the API's shapes; the web UI reads the same)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.automation.common import hq_origin
from connector.models import (
    Enrolment,
    Playbook,
    PlaybookFiring,
    SegmentAction,
    SegmentActionRun,
    Sequence,
    View,
)


def sequence_json(sequence: Sequence) -> dict[str, Any]:
    return {
        "id": sequence.id,
        "name": sequence.name,
        "description": sequence.description,
        "channels": sequence.channels,
        "steps": sequence.steps,
        "webhook_url": sequence.webhook_url,
        "webhook_secret": "********" if sequence.secrets_encrypted else None,
        "created_at": sequence.created_at,
        "updated_at": sequence.updated_at,
    }


def enrolment_json(enrolment: Enrolment) -> dict[str, Any]:
    return {
        "id": enrolment.id,
        "sequence_id": enrolment.sequence_id,
        "user_id": enrolment.user_id,
        "channel": enrolment.channel,
        "state": enrolment.state.value,
        "source": enrolment.source,
        "source_id": enrolment.source_id,
        "next_step": enrolment.next_step,
        "next_step_at": enrolment.next_step_at,
        "enrolled_at": enrolment.enrolled_at,
        "ended_at": enrolment.ended_at,
    }


def action_json(action: SegmentAction, next_run_at: datetime | None) -> dict[str, Any]:
    return {
        "id": action.id,
        "segment_id": action.segment_id,
        "sequence_id": action.sequence_id,
        "time": action.time,
        "timezone": action.timezone,
        "fallback_channel": action.fallback_channel,
        "enabled": action.enabled,
        "last_run_at": action.last_run_at,
        "next_run_at": next_run_at,
    }


def action_run_json(run: SegmentActionRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "run_date": run.run_date,
        "started_at": run.started_at,
        "enrolled": run.enrolled,
        "already_enrolled": run.already_enrolled,
    }


def playbook_json(playbook: Playbook) -> dict[str, Any]:
    return {
        "id": playbook.id,
        "name": playbook.name,
        "subject_type": playbook.subject_type.value,
        "trigger": playbook.trigger,
        "conditions": playbook.conditions,
        "actions": playbook.actions,
        "enabled": playbook.enabled,
        "cursor": playbook.cursor,
        "hq_origin": hq_origin(playbook),
        "edited_in_child": playbook.edited_in_child,
        "created_at": playbook.created_at,
        "updated_at": playbook.updated_at,
    }


def firing_json(firing: PlaybookFiring) -> dict[str, Any]:
    return {
        "id": firing.id,
        "subject_id": firing.subject_id,
        "trigger": firing.trigger,
        "trigger_ref": firing.trigger_ref,
        "triggered_at": firing.triggered_at,
        "status": firing.status.value,
        "attempts": firing.attempts,
        "results": firing.results,
        "error": firing.error,
        "created_at": firing.created_at,
        "finished_at": firing.finished_at,
    }


def view_json(view: View) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "subject_type": view.subject_type.value,
        "conditions": view.conditions,
        "columns": view.columns,
        "sort": view.sort,
        "hq_origin": hq_origin(view),
        "edited_in_child": view.edited_in_child,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
    }
