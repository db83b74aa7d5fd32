"""What in automation uses a segment: deleting a segment used by a view, playbook or segment action is refused
(409 naming them), as for syncs. ``register_usage_finders`` is called by every entry point (app, CLI, scheduler)
through ``connector.automation.install``, never as an import side effect."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.models import Playbook, Segment, SegmentAction, View
from connector.segments.service import Usage, register_usage_finder

_registered = False


def views_using(session: Session, segment: Segment) -> list[Usage]:
    rows = session.execute(
        select(View.id, View.name, View.segment_ids).where(View.workspace_id == segment.workspace_id).order_by(View.id)
    )
    return [Usage("view", r.id, r.name) for r in rows if segment.id in (r.segment_ids or [])]


def playbooks_using(session: Session, segment: Segment) -> list[Usage]:
    rows = session.execute(
        select(Playbook.id, Playbook.name, Playbook.trigger_segment_id, Playbook.segment_ids)
        .where(Playbook.workspace_id == segment.workspace_id)
        .order_by(Playbook.id)
    )
    return [
        Usage("playbook", r.id, r.name)
        for r in rows
        if r.trigger_segment_id == segment.id or segment.id in (r.segment_ids or [])
    ]


def segment_actions_using(session: Session, segment: Segment) -> list[Usage]:
    rows = session.execute(
        select(SegmentAction.id).where(
            SegmentAction.segment_id == segment.id, SegmentAction.workspace_id == segment.workspace_id
        )
    )
    return [Usage("segment_action", r.id, f"daily action of {segment.name}") for r in rows]


def register_usage_finders() -> None:
    """Teach the segment service about automation's uses of segments (idempotent)."""
    global _registered
    if _registered:
        return
    for finder in (views_using, playbooks_using, segment_actions_using):
        register_usage_finder(finder)
    _registered = True
