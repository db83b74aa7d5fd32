"""Erasing a person or an account (GDPR): their data, memberships, history, computed values and sync traces go;
an audit record without personal data remains.

What goes with a user: the user row, events, devices, tags, links to accounts, custom object records it owns,
segment memberships and their history, computed values (``Segments``), per-record sync errors naming it, and the
sync records of syncs that leave remote copies alone. What goes with an account: the same for the account (its
users' events stay, unlinked from it).

Mirror syncs keep their record of the subject (the identity the remote copy has) until their next run, which
clears or removes the remote record as it does for any subject that left, then forgets it
(``connector.syncs.records.forget_gone``). ``erase`` returns the ``Erasure`` audit row and the ``ChangeSet`` of the
subjects linked to the erased one (their account-based segments may change), for the segment engine.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.errors import InvalidError, NotFoundError
from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    ComputedValue,
    Device,
    Erasure,
    Event,
    ObjectRecord,
    Segment,
    SegmentMembership,
    SegmentMembershipEvent,
    SubjectType,
    Sync,
    SyncMode,
    SyncRecord,
    SyncRun,
    SyncRunError,
    User,
    UserTag,
)

MODELS = {SubjectType.USER: User, SubjectType.ACCOUNT: Account}


def _count(session: Session, statement) -> int:
    return session.execute(statement.execution_options(synchronize_session=False)).rowcount or 0


def erase(
    session: Session,
    workspace_id: int,
    subject_type: SubjectType | str,
    subject_id: int,
    *,
    requested_by: int | None = None,
    reason: str | None = None,
) -> tuple[Erasure, ChangeSet]:
    """Erase one user or account of the workspace; ``NotFoundError`` when it is not there, ``InvalidError`` for a
    reason that is not text. The caller commits."""
    if reason is not None and ("\x00" in reason or any(0xD800 <= ord(c) <= 0xDFFF for c in reason)):
        raise InvalidError.one("reason", "must be valid text (no NUL characters or lone surrogates)")
    subject_type = SubjectType(subject_type)
    model = MODELS[subject_type]
    subject = session.get(model, subject_id)
    if subject is None or subject.workspace_id != workspace_id:
        raise NotFoundError(subject_type.value)
    counts: dict[str, Any] = {}
    changes = ChangeSet()
    if subject_type == SubjectType.USER:
        linked = session.scalars(select(AccountUser.account_id).where(AccountUser.user_id == subject_id)).all()
        changes.add_accounts(linked, "account_link")
        counts["events"] = _count(session, delete(Event).where(Event.user_id == subject_id))
        counts["devices"] = _count(session, delete(Device).where(Device.user_id == subject_id))
        counts["tags"] = _count(session, delete(UserTag).where(UserTag.user_id == subject_id))
        counts["account_links"] = _count(session, delete(AccountUser).where(AccountUser.user_id == subject_id))
        owned = ObjectRecord.user_id == subject_id
    else:
        linked = session.scalars(select(AccountUser.user_id).where(AccountUser.account_id == subject_id)).all()
        changes.add_users(linked, "account_link")
        counts["events_unlinked"] = _count(
            session, update(Event).where(Event.account_id == subject_id).values(account_id=None)
        )
        counts["tags"] = _count(session, delete(AccountTag).where(AccountTag.account_id == subject_id))
        counts["account_links"] = _count(session, delete(AccountUser).where(AccountUser.account_id == subject_id))
        owned = ObjectRecord.account_id == subject_id
    counts["objects"] = _count(session, delete(ObjectRecord).where(owned, ObjectRecord.workspace_id == workspace_id))

    segments = select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.subject_type == subject_type)
    counts["memberships"] = _count(
        session,
        delete(SegmentMembership).where(
            SegmentMembership.subject_id == subject_id, SegmentMembership.segment_id.in_(segments)
        ),
    )
    counts["history"] = _count(
        session,
        delete(SegmentMembershipEvent).where(
            SegmentMembershipEvent.subject_id == subject_id, SegmentMembershipEvent.segment_id.in_(segments)
        ),
    )
    counts["computed_values"] = _count(
        session,
        delete(ComputedValue).where(
            ComputedValue.subject_type == subject_type,
            ComputedValue.subject_id == subject_id,
            ComputedValue.workspace_id == workspace_id,
        ),
    )
    syncs = select(Sync.id).where(Sync.workspace_id == workspace_id, Sync.subject_type == subject_type)
    runs = select(SyncRun.id).where(SyncRun.sync_id.in_(syncs))
    counts["sync_errors"] = _count(
        session, delete(SyncRunError).where(SyncRunError.subject_id == subject_id, SyncRunError.run_id.in_(runs))
    )
    leaving_alone = syncs.where(Sync.mode != SyncMode.MIRROR)
    counts["sync_records"] = _count(
        session, delete(SyncRecord).where(SyncRecord.subject_id == subject_id, SyncRecord.sync_id.in_(leaving_alone))
    )
    counts["pending_remote_removals"] = session.scalar(
        select(func.count())
        .select_from(SyncRecord)
        .where(SyncRecord.subject_id == subject_id, SyncRecord.sync_id.in_(syncs))
    )
    session.delete(subject)
    session.flush()
    erasure = Erasure(
        workspace_id=workspace_id,
        subject_type=subject_type,
        subject_id=subject_id,
        requested_by=requested_by,
        reason=(reason or None) and reason[:200],
        counts=counts,
    )
    session.add(erasure)
    session.flush()
    return erasure, changes
