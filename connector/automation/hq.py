"""HQ push of playbooks and views: two more item kinds of ``connector.segments.hq``.

Segments sit below automation in the layers, so ``segments.hq`` cannot name these kinds; ``register_item_kinds``
(called by ``connector.automation.install`` at every entry point) adds them after segment groups and segments, so
the segments they reference are pushed first in the same sync.

In each child a copy is matched by origin (``hq_workspace_id`` + ``hq_item_id``), never by name; a child item of the
same name that did not come from HQ is a conflict. Every ``segment`` / ``account_segment`` leaf of the conditions
(and a playbook's enter/exit trigger segment) is rewritten through the child's segment mapping; an HQ segment
without a mapping fails that child's item, naming the place — never guessed by name. A playbook action that names
another HQ-only item (a sequence to enrol in, a sync to run) fails the item too: HQ syncs do not push those.
Webhook secrets are decrypted from the HQ playbook and stored encrypted for the copy.

The copy is written through the same service as an edit in the child (``save_view`` / ``save_playbook``), so it is
checked the same way; a refusal fails the item with its reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.automation.playbooks import MASK, save_playbook
from connector.automation.views import save_view
from connector.errors import ServiceError
from connector.models import Playbook, View
from connector.security import SecretBox
from connector.segments.hq import ChildPush, ItemKind, ItemResult, Mode, chosen_items, copy_of, register_item_kind
from connector.segments.mapping import MissingMappingError, rewrite_segment_references

# Actions naming items of the HQ workspace that HQ syncs do not push.
_UNPUSHED = {"enrol": ("sequence_id", "sequence"), "run_sync": ("sync_id", "sync")}


def _choose_views(session: Session, hq_id: int, ids: list[int], extra: list[int]) -> list[View]:
    return chosen_items(session, View, hq_id, ids, "views")


def _choose_playbooks(session: Session, hq_id: int, ids: list[int], extra: list[int]) -> list[Playbook]:
    return chosen_items(session, Playbook, hq_id, ids, "playbooks")


def _view_data(push: ChildPush, view: View) -> dict[str, Any]:
    return {
        "name": view.name,
        "subject_type": view.subject_type.value,
        "conditions": rewrite_segment_references(view.conditions, push.mapped),
        "columns": list(view.columns),
        "sort": dict(view.sort),
    }


def _view_as_is(view: View) -> dict[str, Any]:
    return {
        "name": view.name,
        "subject_type": view.subject_type.value,
        "conditions": view.conditions,
        "columns": list(view.columns),
        "sort": dict(view.sort),
    }


def _playbook_data(push: ChildPush, playbook: Playbook) -> dict[str, Any]:
    trigger = dict(playbook.trigger)
    if trigger.get("kind") in ("enters", "exits"):
        child_id = push.mapped(trigger["segment_id"])
        if child_id is None:
            raise MissingMappingError(trigger["segment_id"], "trigger.segment_id")
        trigger["segment_id"] = child_id
    conditions = playbook.conditions
    if conditions is not None:
        conditions = rewrite_segment_references(conditions, push.mapped)
    secrets = _secrets(push, playbook)
    actions = []
    for i, action in enumerate(playbook.actions):
        if action["type"] in _UNPUSHED:
            key, what = _UNPUSHED[action["type"]]
            raise _NotPushable(f"actions[{i}].{key} names HQ {what} {action[key]}, which HQ syncs do not push")
        if action["type"] == "webhook":
            action = {**action, "secret": secrets.get(str(i), MASK)}
        actions.append(dict(action))
    return {
        "name": playbook.name,
        "subject_type": playbook.subject_type.value,
        "trigger": trigger,
        "conditions": conditions,
        "actions": actions,
        "enabled": playbook.enabled,
    }


def _playbook_as_is(push: ChildPush, playbook: Playbook) -> dict[str, Any]:
    secrets = _secrets(push, playbook)
    actions = [
        {**a, "secret": secrets.get(str(i), MASK)} if a["type"] == "webhook" else dict(a)
        for i, a in enumerate(playbook.actions)
    ]
    return {
        "name": playbook.name,
        "subject_type": playbook.subject_type.value,
        "trigger": playbook.trigger,
        "conditions": playbook.conditions,
        "actions": actions,
        "enabled": playbook.enabled,
    }


def _secrets(push: ChildPush, playbook: Playbook) -> dict[str, Any]:
    if not playbook.secrets_encrypted:
        return {}
    if push.secret_key is None:
        raise _NotPushable("the playbook holds webhook secrets and this sync was given no secret key")
    return SecretBox(push.secret_key).decrypt(playbook.secrets_encrypted)


class _NotPushable(Exception):
    """An HQ item that cannot be pushed as it is (the reason is the message)."""


def _push(push: ChildPush, item, kind: str, model, wanted, as_is, save) -> ItemResult:
    session = push.session
    result = ItemResult(kind, item.id, item.name, "failed")
    copy = copy_of(session, model, push, item.id)
    if copy is not None:
        result.id = copy.id
        if push.mode == Mode.ONLY_WHERE_MISSING:
            result.status, result.reason = "skipped", "exists"
            return result
    try:
        data = wanted(push, item)
        if copy is not None and not copy.edited_in_child and as_is(copy) == data:
            result.status, result.reason = "skipped", "unchanged"
            return result
    except (MissingMappingError, _NotPushable, ValueError) as exc:
        result.reason = str(exc)
        return result
    taken = session.scalar(select(model.id).where(model.workspace_id == push.child.id, model.name == item.name))
    if taken is not None and (copy is None or taken != copy.id):
        result.status = "conflict"
        result.reason = f"the child has another {kind} named {item.name!r} (id {taken}) not synced from HQ"
        return result
    try:
        with session.begin_nested():
            saved = save(push, data, copy)
            saved.hq_workspace_id, saved.hq_item_id, saved.edited_in_child = push.hq.id, item.id, False
            session.flush()
    except ServiceError as exc:
        result.reason = f"refused in this workspace: {exc}"
        return result
    result.status, result.id = ("created" if copy is None else "updated"), saved.id
    return result


def _push_view(push: ChildPush, view: View) -> ItemResult:
    return _push(
        push,
        view,
        "view",
        View,
        _view_data,
        _view_as_is,
        lambda p, data, copy: save_view(p.session, p.child.id, data, copy),
    )


def _push_playbook(push: ChildPush, playbook: Playbook) -> ItemResult:
    return _push(
        push,
        playbook,
        "playbook",
        Playbook,
        _playbook_data,
        lambda copy: _playbook_as_is(push, copy),
        lambda p, data, copy: save_playbook(p.session, p.child.id, data, p.secret_key or "", copy),
    )


VIEWS = ItemKind("views", _choose_views, _push_view)
PLAYBOOKS = ItemKind("playbooks", _choose_playbooks, _push_playbook)


def register_item_kinds() -> None:
    """Teach HQ syncs to push views and playbooks, after segments (idempotent)."""
    register_item_kind(VIEWS)
    register_item_kind(PLAYBOOKS)
