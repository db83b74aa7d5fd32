"""Sequences (ordered messages with delays) and enrolments: who is in which sequence, on which channel, by what.

No message is delivered: a due step *fires* by recording a ``sent`` message event (and, when the sequence has a
webhook, by a signed POST made after the commit by the caller, see ``StepFired``). A person is in a sequence at
most once at a time (a partial unique index on active enrolments): enrolling someone already active is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session

from connector.automation.common import CHANNELS, channel_for, check_text, insert_for, name_taken, parsed
from connector.automation.webhooks import DeliveryPolicy, post_signed
from connector.changes import ChangeSet
from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.ingest.statements import one_of
from connector.models import Enrolment, EnrolmentState, MessageEvent, MessageEventKind, Sequence, User, utcnow
from connector.security import SecretBox
from connector.segments.incremental import apply_changes

ENROLMENTS = Enrolment.__table__
USERS = User.__table__
SOURCES = ("segment_action", "playbook", "api", "ui")
MAX_STEPS = 50
MAX_DELAY_MINUTES = 366 * 24 * 60
ChannelName = Literal["email", "sms", "push", "whatsapp", "in_app"]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    delay_minutes: Annotated[int, Field(ge=0, le=MAX_DELAY_MINUTES)] = 0


class SequenceInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5000)] = ""
    channels: Annotated[list[ChannelName], Field(min_length=1, max_length=len(CHANNELS))]
    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]
    webhook_url: HttpUrl | None = None
    webhook_secret: Annotated[str, Field(min_length=8, max_length=500)] | None = None


def get_sequence(session: Session, workspace_id: int, sequence_id: int) -> Sequence:
    sequence = session.get(Sequence, sequence_id)
    if sequence is None or sequence.workspace_id != workspace_id:
        raise NotFoundError("sequence")
    return sequence


def list_sequences(session: Session, workspace_id: int) -> list[Sequence]:
    return list(session.scalars(select(Sequence).where(Sequence.workspace_id == workspace_id).order_by(Sequence.id)))


def save_sequence(
    session: Session, workspace_id: int, data: Any, secret_key: str, sequence: Sequence | None = None
) -> Sequence:
    """Create a sequence (``sequence`` None) or replace one's definition. The webhook secret is stored encrypted."""
    body = parsed(SequenceInput, data)
    name = check_text(body.name, "name")
    check_text(body.description, "description", 5000, empty=True)
    for i, step in enumerate(body.steps):
        check_text(step.name, f"steps[{i}].name")
    if body.webhook_url is not None and body.webhook_secret is None and (sequence is None or not sequence.webhook_url):
        raise InvalidError.one("webhook_secret", "is required with webhook_url (it signs every call)")
    taken = select(Sequence.id).where(Sequence.workspace_id == workspace_id, Sequence.name == name)
    if sequence is not None:
        taken = taken.where(Sequence.id != sequence.id)
    if session.scalar(taken) is not None:
        raise name_taken("sequence", name)
    if sequence is None:
        sequence = Sequence(workspace_id=workspace_id)
        session.add(sequence)
    sequence.name = name
    sequence.description = body.description
    sequence.channels = list(dict.fromkeys(body.channels))
    sequence.steps = [step.model_dump() for step in body.steps]
    sequence.webhook_url = str(body.webhook_url) if body.webhook_url else None
    if body.webhook_url is None:
        sequence.secrets_encrypted = None
    elif body.webhook_secret is not None:
        sequence.secrets_encrypted = SecretBox(secret_key).encrypt({"secret": body.webhook_secret})
    session.flush()
    return sequence


def delete_sequence(session: Session, sequence: Sequence) -> None:
    active = session.scalar(
        select(func.count()).where(Enrolment.sequence_id == sequence.id, Enrolment.state == EnrolmentState.ACTIVE)
    )
    if active:
        raise ConflictError(f"sequence {sequence.name!r} has {active} active enrolment(s); exit them first")
    session.delete(sequence)
    session.flush()


# -- enrolling --------------------------------------------------------------------------------------------------


def check_channel(sequence: Sequence, channel: str, field: str) -> None:
    if channel not in sequence.channels:
        raise InvalidError.one(field, f"sequence {sequence.name!r} sends on {', '.join(sequence.channels)} only")


def enrol(
    session: Session,
    sequence: Sequence,
    users: Select | list[int],
    *,
    fallback_channel: str,
    source: str,
    source_id: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Enrol the users (ids, or a one-column SELECT of ids) not already active in the sequence, each on their default
    channel when the sequence sends on it, else on ``fallback_channel``. Returns the ids enrolled now.

    One INSERT … SELECT. Who is already active is decided by the unique index on active enrolments alone (``ON
    CONFLICT DO NOTHING``), not by a NOT EXISTS: an anti-join planned on stale statistics of a growing enrolments
    table was quadratic (PostgreSQL, 100,000 enrolments: 36 s for 1,000 people), and the index also absorbs a
    concurrent enrolment of the same person."""
    now = now or utcnow()
    # The sequence's row, locked against its delete until this transaction ends: what a foreign key's check did for
    # each row, once (migration 0019). A sequence deleted meanwhile enrols no one.
    locked = select(Sequence.id).where(Sequence.id == sequence.id).with_for_update(read=True, key_share=True)
    if session.scalar(locked) is None:
        raise NotFoundError("sequence")
    chosen = USERS.c.id.in_(users) if isinstance(users, Select) else one_of(session, USERS.c.id, list(users))
    first = sequence.steps[0]
    rows = select(
        literal(sequence.workspace_id),
        literal(sequence.id),
        USERS.c.id,
        channel_for(USERS.c.default_channel, sequence.channels, fallback_channel),
        literal(EnrolmentState.ACTIVE.value),
        literal(source),
        literal(source_id),
        literal(0),
        literal(now + timedelta(minutes=first["delay_minutes"]), ENROLMENTS.c.next_step_at.type),
        literal(now, ENROLMENTS.c.enrolled_at.type),
    ).where(USERS.c.workspace_id == sequence.workspace_id, chosen)
    columns = [
        "workspace_id", "sequence_id", "user_id", "channel", "state", "source", "source_id", "next_step",
        "next_step_at", "enrolled_at",
    ]  # fmt: skip
    stmt = (
        insert_for(session)(ENROLMENTS)
        .from_select(columns, rows)
        .on_conflict_do_nothing(
            index_elements=["sequence_id", "user_id"], index_where=ENROLMENTS.c.state == EnrolmentState.ACTIVE.value
        )
        .returning(ENROLMENTS.c.user_id)
    )
    return list(session.scalars(stmt))


def exit_enrolment(session: Session, workspace_id: int, enrolment_id: int) -> Enrolment:
    enrolment = get_enrolment(session, workspace_id, enrolment_id)
    if enrolment.state != EnrolmentState.ACTIVE:
        raise ConflictError(f"enrolment {enrolment.id} is already {enrolment.state.value}")
    enrolment.state = EnrolmentState.EXITED
    enrolment.ended_at = utcnow()
    enrolment.next_step_at = None
    session.flush()
    return enrolment


def get_enrolment(session: Session, workspace_id: int, enrolment_id: int) -> Enrolment:
    enrolment = session.get(Enrolment, enrolment_id)
    if enrolment is None or enrolment.workspace_id != workspace_id:
        raise NotFoundError("enrolment")
    return enrolment


def list_enrolments(
    session: Session,
    workspace_id: int,
    *,
    sequence_id: int | None = None,
    user_id: int | None = None,
    state: str | None = None,
    source: str | None = None,
    source_id: int | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[Enrolment]:
    query = select(Enrolment).where(Enrolment.workspace_id == workspace_id)
    for column, value in (
        (Enrolment.sequence_id, sequence_id),
        (Enrolment.user_id, user_id),
        (Enrolment.state, state),
        (Enrolment.source, source),
        (Enrolment.source_id, source_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(Enrolment.id > after)
    return list(session.scalars(query.order_by(Enrolment.id).limit(limit)))


# -- steps ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepFired:
    """A step that fired; ``webhook`` is (url, encrypted secrets) when the sequence calls one."""

    enrolment_id: int
    sequence_id: int
    user_id: int
    step: int
    channel: str
    webhook: tuple[str, str] | None


def notify_step(fired: StepFired, secret_key: str, policy: DeliveryPolicy | None = None) -> str:
    """Call the sequence's webhook for a fired step (after the step's commit): a signed POST, retried; raises when
    it does not land (the caller logs it; the step stays fired)."""
    assert fired.webhook is not None
    url, encrypted = fired.webhook
    secret = SecretBox(secret_key).decrypt(encrypted).get("secret", "") if encrypted else ""
    payload = {
        "enrolment_id": fired.enrolment_id,
        "sequence_id": fired.sequence_id,
        "step": fired.step,
        "user_id": fired.user_id,
        "channel": fired.channel,
    }
    return post_signed(
        url, secret, payload, {"X-Connector-Enrolment": str(fired.enrolment_id)}, policy or DeliveryPolicy()
    )


def fire_due_steps(session: Session, now: datetime | None = None, limit: int = 1000) -> list[StepFired]:
    """Fire the steps that are due (every workspace): record a ``sent`` message event per step and move each
    enrolment to its next step, or finish it. Rows are locked (``SKIP LOCKED`` on PostgreSQL), so two runs share
    the work; a step's event has a fixed message id, so a step never records twice."""
    now = now or utcnow()
    query = (
        select(Enrolment, Sequence)
        .join(Sequence, Sequence.id == Enrolment.sequence_id)
        .where(Enrolment.state == EnrolmentState.ACTIVE, Enrolment.next_step_at <= now)
        .order_by(Enrolment.next_step_at, Enrolment.id)
        .limit(limit)
        .with_for_update(of=Enrolment, skip_locked=True)
    )
    fired: list[StepFired] = []
    events = []
    for enrolment, sequence in session.execute(query).all():
        step = enrolment.next_step
        events.append(
            {
                "workspace_id": enrolment.workspace_id,
                "user_id": enrolment.user_id,
                "sequence_id": sequence.id,
                "step": step,
                "kind": MessageEventKind.SENT.value,
                "channel": enrolment.channel,
                "occurred_at": now,
                "message_id": f"enrolment:{enrolment.id}:step:{step}",
            }
        )
        webhook = (sequence.webhook_url, sequence.secrets_encrypted) if sequence.webhook_url else None
        fired.append(StepFired(enrolment.id, sequence.id, enrolment.user_id, step, enrolment.channel, webhook))
        if step + 1 < len(sequence.steps):
            enrolment.next_step = step + 1
            enrolment.next_step_at = now + timedelta(minutes=sequence.steps[step + 1]["delay_minutes"])
        else:
            enrolment.next_step = step + 1
            enrolment.next_step_at = None
            enrolment.state = EnrolmentState.FINISHED
            enrolment.ended_at = now
    if events:
        session.execute(
            insert_for(session)(MessageEvent.__table__).on_conflict_do_nothing(
                index_elements=["workspace_id", "message_id"]
            ),
            events,
        )
        # Segments reading message data follow, as after an ingestion of message events.
        by_workspace: dict[int, ChangeSet] = {}
        for event in events:
            by_workspace.setdefault(event["workspace_id"], ChangeSet()).add_users([event["user_id"]], "message")
        for workspace_id, changes in by_workspace.items():
            apply_changes(session, workspace_id, changes)
    session.flush()
    return fired
