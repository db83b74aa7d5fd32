"""Message events from an outside messaging tool: ``sent``, ``delivered``, ``opened``, ``clicked``, ``bounced``,
``unsubscribed`` per person, sequence and step. The steps of sequences record ``sent`` themselves.

A batch names people by ``external_id`` or ``email`` (they must exist); ``message_id`` makes a re-sent item a
duplicate. Returns a ``ChangeSet`` of kind ``message`` so segments reading message data are re-evaluated.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.automation.common import insert_for, parsed
from connector.changes import ChangeSet
from connector.errors import InvalidError
from connector.ingest.items import Email, Id, Timestamp
from connector.models import MessageEvent, Sequence, User

MAX_MESSAGES = 1000
EventKindName = Literal["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed"]


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: Id | None = None
    email: Email | None = None
    kind: EventKindName
    sequence_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    step: Annotated[int, Field(ge=0, le=1000)] | None = None
    channel: Literal["email", "sms", "push", "whatsapp", "in_app"] | None = None
    occurred_at: Timestamp | None = None
    message_id: Id | None = None

    @model_validator(mode="after")
    def _someone(self) -> MessageItem:
        if self.external_id is None and self.email is None:
            raise ValueError("give external_id or email")
        return self


class MessageBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch: Annotated[list[MessageItem], Field(min_length=1, max_length=MAX_MESSAGES)]


def record_messages(session: Session, workspace_id: int, data: Any, now: datetime) -> tuple[dict, ChangeSet]:
    """Record a batch of message events, all or nothing; answers ``({"recorded", "duplicates"}, changes)``."""
    items = parsed(MessageBatch, data).batch
    people = {(i.external_id, i.email) for i in items}
    ids_by_ref: dict[str, int] = {}
    external_ids = {e for e, _ in people if e}
    emails = {m for _, m in people if m}
    rows = session.execute(
        select(User.id, User.external_id, User.email).where(
            User.workspace_id == workspace_id,
            or_(User.external_id.in_(sorted(external_ids)), User.email.in_(sorted(emails))),
        )
    )
    for row in rows:
        if row.external_id:
            ids_by_ref["x:" + row.external_id] = row.id
        if row.email:
            ids_by_ref["e:" + row.email] = row.id
    sequence_ids = {i.sequence_id for i in items if i.sequence_id is not None}
    known = set(
        session.scalars(select(Sequence.id).where(Sequence.workspace_id == workspace_id, Sequence.id.in_(sequence_ids)))
    )
    errors, values = [], []
    for index, item in enumerate(items):
        user_id = ids_by_ref.get(f"x:{item.external_id}") if item.external_id else ids_by_ref.get(f"e:{item.email}")
        if user_id is None:
            errors.append({"field": f"batch[{index}]", "reason": "no such user in this workspace"})
            continue
        if item.sequence_id is not None and item.sequence_id not in known:
            errors.append({"field": f"batch[{index}].sequence_id", "reason": "no such sequence in this workspace"})
            continue
        values.append(
            {
                "workspace_id": workspace_id,
                "user_id": user_id,
                "sequence_id": item.sequence_id,
                "step": item.step,
                "kind": item.kind,
                "channel": item.channel,
                "occurred_at": item.occurred_at or now,
                "message_id": item.message_id or f"api:{uuid.uuid4().hex}",
            }
        )
    if errors:
        raise InvalidError(errors)
    table = MessageEvent.__table__
    written = session.execute(
        insert_for(session)(table)
        .on_conflict_do_nothing(index_elements=["workspace_id", "message_id"])
        .returning(table.c.user_id, table.c.message_id),
        values,
    ).all()
    changes = ChangeSet()
    changes.add_users({row.user_id for row in written}, "message")
    return {"recorded": len(written), "duplicates": len(values) - len(written)}, changes
