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

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import delete, func, inspect, select, update
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.errors import InvalidError, NotFoundError
from connector.ingest.statements import one_of
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


def _per_subject(session: Session, statement, column) -> Counter[int]:
    """Run a DELETE/UPDATE returning the subject column of each row it touched; rows per subject."""
    return Counter(session.execute(statement.returning(column).execution_options(synchronize_session=False)).scalars())


def _check_reason(reason: str | None) -> None:
    if reason is not None and ("\x00" in reason or any(0xD800 <= ord(c) <= 0xDFFF for c in reason)):
        raise InvalidError.one("reason", "must be valid text (no NUL characters or lone surrogates)")


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
    _check_reason(reason)
    subject_type = SubjectType(subject_type)
    erasures, changes = erase_subjects(
        session, workspace_id, subject_type, [subject_id], requested_by=requested_by, reason=reason
    )
    if not erasures:
        raise NotFoundError(subject_type.value)
    return erasures[0], changes


def erase_subjects(
    session: Session,
    workspace_id: int,
    subject_type: SubjectType | str,
    subject_ids: Iterable[int],
    *,
    requested_by: int | None = None,
    reason: str | None = None,
) -> tuple[list[Erasure], ChangeSet]:
    """Erase the users or accounts of the workspace among ``subject_ids`` (ids of other workspaces or of no
    subject are skipped), a set at a time: each statement covers them all. One ``Erasure`` per subject erased,
    with its own counts. The caller commits."""
    _check_reason(reason)
    subject_type = SubjectType(subject_type)
    model = MODELS[subject_type]
    ids = sorted(
        session.scalars(
            select(model.id).where(model.workspace_id == workspace_id, one_of(session, model.id, set(subject_ids)))
        )
    )
    changes = ChangeSet()
    if not ids:
        return [], changes
    counts: dict[str, Counter[int]] = {}
    links = AccountUser.__table__
    if subject_type == SubjectType.USER:
        changes.add_accounts(
            session.scalars(select(links.c.account_id).where(one_of(session, links.c.user_id, ids))).all(),
            "account_link",
        )
        counts["events"] = _per_subject(
            session, delete(Event).where(one_of(session, Event.user_id, ids)), Event.user_id
        )
        counts["devices"] = _per_subject(
            session, delete(Device).where(one_of(session, Device.user_id, ids)), Device.user_id
        )
        counts["tags"] = _per_subject(
            session, delete(UserTag).where(one_of(session, UserTag.user_id, ids)), UserTag.user_id
        )
        counts["account_links"] = _per_subject(
            session, delete(AccountUser).where(one_of(session, AccountUser.user_id, ids)), AccountUser.user_id
        )
        owner = ObjectRecord.user_id
    else:
        changes.add_users(
            session.scalars(select(links.c.user_id).where(one_of(session, links.c.account_id, ids))).all(),
            "account_link",
        )
        counts["events_unlinked"] = Counter(
            dict(
                session.execute(
                    select(Event.account_id, func.count())
                    .where(one_of(session, Event.account_id, ids))
                    .group_by(Event.account_id)
                ).all()
            )
        )
        session.execute(
            update(Event)
            .where(one_of(session, Event.account_id, ids))
            .values(account_id=None)
            .execution_options(synchronize_session=False)
        )
        counts["tags"] = _per_subject(
            session, delete(AccountTag).where(one_of(session, AccountTag.account_id, ids)), AccountTag.account_id
        )
        counts["account_links"] = _per_subject(
            session, delete(AccountUser).where(one_of(session, AccountUser.account_id, ids)), AccountUser.account_id
        )
        owner = ObjectRecord.account_id
    counts["objects"] = _per_subject(
        session,
        delete(ObjectRecord).where(one_of(session, owner, ids), ObjectRecord.workspace_id == workspace_id),
        owner,
    )

    segments = select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.subject_type == subject_type)
    counts["memberships"] = _per_subject(
        session,
        delete(SegmentMembership).where(
            one_of(session, SegmentMembership.subject_id, ids), SegmentMembership.segment_id.in_(segments)
        ),
        SegmentMembership.subject_id,
    )
    counts["history"] = _per_subject(
        session,
        delete(SegmentMembershipEvent).where(
            one_of(session, SegmentMembershipEvent.subject_id, ids), SegmentMembershipEvent.segment_id.in_(segments)
        ),
        SegmentMembershipEvent.subject_id,
    )
    counts["computed_values"] = _per_subject(
        session,
        delete(ComputedValue).where(
            ComputedValue.subject_type == subject_type,
            one_of(session, ComputedValue.subject_id, ids),
            ComputedValue.workspace_id == workspace_id,
        ),
        ComputedValue.subject_id,
    )
    syncs = select(Sync.id).where(Sync.workspace_id == workspace_id, Sync.subject_type == subject_type)
    runs = select(SyncRun.id).where(SyncRun.sync_id.in_(syncs))
    counts["sync_errors"] = _per_subject(
        session,
        delete(SyncRunError).where(one_of(session, SyncRunError.subject_id, ids), SyncRunError.run_id.in_(runs)),
        SyncRunError.subject_id,
    )
    leaving_alone = syncs.where(Sync.mode != SyncMode.MIRROR)
    counts["sync_records"] = _per_subject(
        session,
        delete(SyncRecord).where(one_of(session, SyncRecord.subject_id, ids), SyncRecord.sync_id.in_(leaving_alone)),
        SyncRecord.subject_id,
    )
    counts["pending_remote_removals"] = Counter(
        dict(
            session.execute(
                select(SyncRecord.subject_id, func.count())
                .where(one_of(session, SyncRecord.subject_id, ids), SyncRecord.sync_id.in_(syncs))
                .group_by(SyncRecord.subject_id)
            ).all()
        )
    )
    session.execute(delete(model).where(one_of(session, model.id, ids)).execution_options(synchronize_session=False))
    gone = set(ids)
    for instance in list(session.identity_map.values()):
        if isinstance(instance, model) and inspect(instance).identity[0] in gone:
            session.expunge(instance)
    erasures = [
        Erasure(
            workspace_id=workspace_id,
            subject_type=subject_type,
            subject_id=i,
            requested_by=requested_by,
            reason=(reason or None) and reason[:200],
            counts={name: per[i] for name, per in counts.items()},
        )
        for i in ids
    ]
    session.add_all(erasures)
    session.flush()
    return erasures, changes
