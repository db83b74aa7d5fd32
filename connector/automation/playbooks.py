"""Playbooks: a trigger, conditions checked at firing time, and actions, on users or accounts.

Triggers: ``{"kind": "enters" | "exits", "segment_id": N}`` (read from the membership history, see
``connector.automation.firing``) or ``{"kind": "schedule", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"}``
(every subject matching the conditions at that time). Conditions: the segment language (``segment`` in / not in
among the leaves), or null for everyone.

Actions (at most 10, run in order):

- ``{"type": "enrol", "sequence_id": N, "fallback_channel": "email"}`` (users): the channel rule of segment actions;
- ``{"type": "set_attribute", "name": "stage", "value": "onboarded"}``, ``{"type": "remove_attribute", "name": ...}``,
  ``{"type": "add_tag", "tag": "vip"}``, ``{"type": "remove_tag", "tag": ...}``: written through ingestion
  (``identify`` / ``group`` and the incremental segment update), so segments, history and syncs follow;
- ``{"type": "webhook", "url": "https://…", "secret": "…"}``: a signed POST (HMAC as the webhook destination);
  the secret is stored encrypted and read back masked;
- ``{"type": "run_sync", "sync_id": N}``: a run of one of the workspace's syncs.

Loops. An action that writes data the trigger segment reads (its conditions, or those of segments it references,
name the attribute or tag) would make the playbook re-trigger itself: such a playbook is refused when saved, naming
the action. Loops through other playbooks or broader conditions are bounded at firing time: a playbook fires at
most ``MAX_FIRINGS_PER_SUBJECT_PER_HOUR`` times an hour for one subject; beyond that the firing is recorded as
``suppressed`` with the reason, never run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.automation.common import check_text, condition_tree, name_taken, parsed
from connector.automation.schedule import check_cron
from connector.automation.sequences import check_channel, get_sequence
from connector.errors import InvalidError, NotFoundError
from connector.ingest.items import check_json_object, check_key
from connector.models import (
    Playbook,
    PlaybookFiring,
    PlaybookLane,
    Segment,
    SegmentKind,
    SegmentMembershipEvent,
    SubjectType,
    Sync,
    utcnow,
)
from connector.security import SecretBox
from connector.segments.conditions import AttributeCondition, SegmentCondition, TagCondition
from connector.segments.trees import walk
from connector.segments.validation import parse_conditions

MASK = "********"
MAX_ACTIONS = 10
MAX_FIRINGS_PER_SUBJECT_PER_HOUR = 10
# A new playbook reads the membership history in this many lanes (``PlaybookLane``), fired in parallel on
# PostgreSQL: one per core of a small database server. Each playbook keeps the lanes it was made with.
LANES = 2
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Key = Annotated[str, Field(min_length=1, max_length=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentTrigger(_Model):
    kind: Literal["enters", "exits"]
    segment_id: Id


class ScheduleTrigger(_Model):
    kind: Literal["schedule"]
    expression: Annotated[str, Field(max_length=100)]
    timezone: Annotated[str, Field(max_length=64)] = "UTC"


class EnrolAction(_Model):
    type: Literal["enrol"]
    sequence_id: Id
    fallback_channel: Literal["email", "sms", "push", "whatsapp", "in_app"]


class SetAttributeAction(_Model):
    type: Literal["set_attribute"]
    name: Key
    value: Any


class RemoveAttributeAction(_Model):
    type: Literal["remove_attribute"]
    name: Key


class TagAction(_Model):
    type: Literal["add_tag", "remove_tag"]
    tag: Key


class WebhookAction(_Model):
    type: Literal["webhook"]
    url: HttpUrl
    secret: Annotated[str, Field(min_length=8, max_length=500)]


class RunSyncAction(_Model):
    type: Literal["run_sync"]
    sync_id: Id


Action = Annotated[
    EnrolAction | SetAttributeAction | RemoveAttributeAction | TagAction | WebhookAction | RunSyncAction,
    Field(discriminator="type"),
]


class PlaybookInput(_Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    subject_type: Literal["user", "account"] = "user"
    trigger: Annotated[SegmentTrigger | ScheduleTrigger, Field(discriminator="kind")]
    conditions: dict[str, Any] | None = None
    actions: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]
    enabled: bool = True


def get_playbook(session: Session, workspace_id: int, playbook_id: int) -> Playbook:
    playbook = session.get(Playbook, playbook_id)
    if playbook is None or playbook.workspace_id != workspace_id:
        raise NotFoundError("playbook")
    return playbook


def list_playbooks(session: Session, workspace_id: int) -> list[Playbook]:
    return list(session.scalars(select(Playbook).where(Playbook.workspace_id == workspace_id).order_by(Playbook.id)))


def save_playbook(
    session: Session, workspace_id: int, data: Any, secret_key: str, playbook: Playbook | None = None
) -> Playbook:
    """Create a playbook (``playbook`` None) or replace one's definition. A new playbook starts reading the
    membership history from now; a changed one keeps its place."""
    old_secrets = SecretBox(secret_key).decrypt(playbook.secrets_encrypted) if playbook is not None else {}
    if isinstance(data, dict) and isinstance(data.get("actions"), list):
        # A masked secret sent back keeps the stored one (by the action's position).
        for i, action in enumerate(data["actions"]):
            if isinstance(action, dict) and action.get("secret") == MASK and str(i) in old_secrets:
                data["actions"][i] = {**action, "secret": old_secrets[str(i)]}
    body = parsed(PlaybookInput, data)
    name = check_text(body.name, "name")
    subject_type = SubjectType(body.subject_type)
    taken = select(Playbook.id).where(Playbook.workspace_id == workspace_id, Playbook.name == name)
    if playbook is not None:
        taken = taken.where(Playbook.id != playbook.id)
    if session.scalar(taken) is not None:
        raise name_taken("playbook", name)

    trigger_segment: Segment | None = None
    if isinstance(body.trigger, SegmentTrigger):
        trigger_segment = session.get(Segment, body.trigger.segment_id)
        if trigger_segment is None or trigger_segment.workspace_id != workspace_id:
            raise InvalidError.one("trigger.segment_id", "no such segment in this workspace")
        if trigger_segment.subject_type != subject_type:
            raise InvalidError.one("trigger.segment_id", f"is a {trigger_segment.subject_type} segment")
    else:
        check_cron(body.trigger.expression, body.trigger.timezone)

    segment_ids: list[int] = []
    conditions = None
    if body.conditions is not None:
        node, segment_ids = condition_tree(session, workspace_id, body.conditions, subject_type)
        conditions = node.model_dump(mode="json")

    secrets: dict[str, str] = {}
    actions: list[dict[str, Any]] = []
    for i, action in enumerate(body.actions):
        actions.append(_checked_action(session, workspace_id, subject_type, action, f"actions[{i}]", secrets, i))
    if trigger_segment is not None:
        _refuse_self_trigger(session, trigger_segment, actions)

    if playbook is None:
        end = history_end(session)
        playbook = Playbook(
            workspace_id=workspace_id,
            lanes=[PlaybookLane(lane=lane, cursor=end) for lane in range(LANES)],
            read_from=utcnow(),
        )
        session.add(playbook)
    playbook.name = name
    playbook.subject_type = subject_type
    playbook.trigger = body.trigger.model_dump(mode="json")
    playbook.trigger_segment_id = trigger_segment.id if trigger_segment is not None else None
    playbook.conditions = conditions
    playbook.segment_ids = segment_ids
    playbook.actions = actions
    playbook.secrets_encrypted = SecretBox(secret_key).encrypt(secrets) if secrets else None
    if playbook.enabled != body.enabled:
        set_enabled(session, playbook, body.enabled)
    if playbook.hq_item_id is not None:
        playbook.edited_in_child = True  # an HQ sync that writes the copy clears it again
    session.flush()
    return playbook


def _checked_action(session, workspace_id, subject_type, action, path, secrets, index) -> dict[str, Any]:
    if isinstance(action, EnrolAction):
        if subject_type != SubjectType.USER:
            raise InvalidError.one(path + ".type", "enrol applies to user playbooks only")
        try:
            sequence = get_sequence(session, workspace_id, action.sequence_id)
        except NotFoundError:
            raise InvalidError.one(path + ".sequence_id", "no such sequence in this workspace") from None
        check_channel(sequence, action.fallback_channel, path + ".fallback_channel")
    elif isinstance(action, SetAttributeAction | RemoveAttributeAction):
        try:
            check_key(action.name)
            if isinstance(action, SetAttributeAction):
                check_json_object({action.name: action.value})
        except ValueError as exc:
            raise InvalidError.one(path + ".name", str(exc)) from None
        if isinstance(action, SetAttributeAction) and action.value is None:
            raise InvalidError.one(path + ".value", "must not be null (use remove_attribute)")
    elif isinstance(action, TagAction):
        check_text(action.tag, path + ".tag", 100)
    elif isinstance(action, WebhookAction):
        secrets[str(index)] = action.secret
        return {"type": "webhook", "url": str(action.url), "secret": MASK}
    elif isinstance(action, RunSyncAction):
        sync = session.get(Sync, action.sync_id)
        if sync is None or sync.workspace_id != workspace_id:
            raise InvalidError.one(path + ".sync_id", "no such sync in this workspace")
    return action.model_dump(mode="json")


def read_by_segment(session: Session, segment: Segment) -> tuple[set[str], set[str]]:
    """The attribute names and tags a segment's conditions read, through the segments it references."""
    names: set[str] = set()
    tags: set[str] = set()
    seen: set[int] = set()
    pending = [segment]
    while pending:
        current = pending.pop()
        # A shared segment's stand-in reads no attribute or tag here: its members come from another workspace.
        if current.id in seen or current.conditions is None or current.kind == SegmentKind.SHARED:
            continue
        seen.add(current.id)
        node = parse_conditions(current.conditions, current.subject_type)
        for _, leaf, _ in walk(node, current.subject_type):
            if isinstance(leaf, AttributeCondition) and leaf.name is not None:
                names.add(leaf.name)
            elif isinstance(leaf, TagCondition):
                tags.add(leaf.value)
            elif isinstance(leaf, SegmentCondition):
                referenced = session.get(Segment, leaf.segment_id)
                if referenced is not None and referenced.workspace_id == segment.workspace_id:
                    pending.append(referenced)
    return names, tags


def _refuse_self_trigger(session: Session, segment: Segment, actions: list[dict[str, Any]]) -> None:
    names, tags = read_by_segment(session, segment)
    for i, action in enumerate(actions):
        if action["type"] in ("set_attribute", "remove_attribute") and action["name"] in names:
            field, what = f"actions[{i}].name", f"attribute {action['name']!r}"
        elif action["type"] in ("add_tag", "remove_tag") and action["tag"] in tags:
            field, what = f"actions[{i}].tag", f"tag {action['tag']!r}"
        else:
            continue
        raise InvalidError.one(
            field, f"segment {segment.name!r} reads {what}: this action would re-trigger the playbook (a loop)"
        )


def history_end(session: Session) -> int:
    """The id of the latest membership-history row: where a playbook that starts (or resumes) now reads from."""
    return session.scalar(select(func.coalesce(func.max(SegmentMembershipEvent.id), 0)))


def set_enabled(session: Session, playbook: Playbook, enabled: bool, *, catch_up: bool = False) -> Playbook:
    """Pause or resume. A resumed playbook reads the history from now, unless ``catch_up`` asks it to fire for
    what happened while it was paused."""
    if enabled and not playbook.enabled and not catch_up:
        end = history_end(session)
        for lane in playbook.lanes:
            lane.cursor = end
        playbook.read_from = utcnow()
    playbook.enabled = enabled
    session.flush()
    return playbook


def delete_playbook(session: Session, playbook: Playbook) -> None:
    session.delete(playbook)
    session.flush()


def list_firings(
    session: Session, playbook: Playbook, *, status: str | None = None, after: int | None = None, limit: int = 100
) -> list[PlaybookFiring]:
    query = select(PlaybookFiring).where(PlaybookFiring.playbook_id == playbook.id)
    if status is not None:
        query = query.where(PlaybookFiring.status == status)
    if after is not None:
        query = query.where(PlaybookFiring.id > after)
    return list(session.scalars(query.order_by(PlaybookFiring.id).limit(limit)))
