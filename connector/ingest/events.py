"""``track`` and ``page``: record events, a batch in a few statements.

Per batch: one SELECT resolves every user named (one INSERT creates the unknown ones), and one INSERT ... ON
CONFLICT (workspace_id, message_id) DO NOTHING RETURNING writes every event and says which were new; the others were
recorded before (the batch was sent again) and are reported as duplicates. No ORM object is made per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from connector.ingest.batches import DUPLICATE, BatchResult, ItemResult
from connector.ingest.items import EventItem, PageItem, TrackItem
from connector.ingest.statements import insert_rows
from connector.ingest.subjects import batch_by_user, resolve_accounts, touch_users
from connector.models import Event, EventKind

events = Event.__table__


def track(session: Session, workspace_id: int, raw_items: Sequence[Any], *, partial: bool = False) -> BatchResult:
    """Record the track events of a batch (see ``TrackItem``); the caller commits.

    Raises ``BatchRejectedError`` when an item is invalid and ``partial`` is false; nothing is written then.
    """
    return _record(session, workspace_id, raw_items, TrackItem, EventKind.TRACK, partial)


def page(session: Session, workspace_id: int, raw_items: Sequence[Any], *, partial: bool = False) -> BatchResult:
    """Record the page views of a batch (see ``PageItem``) as events of kind ``page``; the caller commits."""
    return _record(session, workspace_id, raw_items, PageItem, EventKind.PAGE, partial)


def _record(
    session: Session,
    workspace_id: int,
    raw_items: Sequence[Any],
    model: type[EventItem],
    kind: EventKind,
    partial: bool,
) -> BatchResult:
    by_user = batch_by_user(session, workspace_id, model, raw_items, partial)
    batch, valid, changes, now = by_user.batch, by_user.valid, by_user.changes, by_user.now
    if not valid:
        return batch.result(changes)
    account_names = [item.account_external_id for _, item in valid if item.account_external_id]
    accounts = resolve_accounts(session, workspace_id, account_names, now)
    account_ids = dict(zip(dict.fromkeys(account_names), accounts.ids, strict=True))
    changes.add_accounts(accounts.created, "subject")

    pending: dict[str, tuple[ItemResult, int, str]] = {}
    rows = []
    for (result, item), user_id in zip(valid, by_user.user_ids, strict=True):
        message_id = item.message_id or uuid.uuid4().hex
        if message_id in pending:
            result.status = DUPLICATE
            continue
        pending[message_id] = (result, user_id, item.name)
        rows.append(
            {
                "workspace_id": workspace_id,
                "user_id": user_id,
                "account_id": account_ids.get(item.account_external_id),
                "kind": kind,
                "name": item.name,
                "url": getattr(item, "url", None),
                "title": getattr(item, "title", None),
                "properties": item.properties,
                "occurred_at": item.occurred_at or now,
                "received_at": now,
                "message_id": message_id,
            }
        )
    # In message id order: two requests inserting the same ids then wait for each other in the same order.
    rows.sort(key=lambda row: row["message_id"])
    inserted = insert_rows(
        session,
        events,
        rows,
        conflict=["workspace_id", "message_id"],
        returning=[events.c.id, events.c.message_id],
    )
    new_ids = {message_id: event_id for event_id, message_id in inserted}
    recorded_users = set()
    for message_id, (result, user_id, name) in pending.items():
        event_id = new_ids.get(message_id)
        if event_id is None:
            result.status = DUPLICATE  # recorded before: the batch was sent again
            continue
        result.id = event_id
        recorded_users.add(user_id)
        changes.add_users([user_id], "page" if kind is EventKind.PAGE else f"event:{name}")
    touch_users(session, recorded_users, now)
    return batch.result(changes)
