"""Incremental re-evaluation after ingestion, inline in the ingestion transaction.

The ingestion views call ``apply_changes`` in the same transaction as the write, so when an ingest request returns,
segment membership, its history and the ``Segments`` property of every subject concerned are already current
(and a failed evaluation rolls the ingest back: data and membership never disagree).

Which segments, for which subjects (``ChangeSet`` kinds against each segment's stored ``dependencies``):

* a user segment, for the changed users, when it reads a kind that changed; for new users (``subject``), always;
* a user segment reading account data (``account:attribute``), for the users of the changed accounts;
* an account segment, for the changed accounts, when it reads a kind that changed; for new accounts, always;
* an account segment aggregating users (``user:event:purchase``, ``user:attribute``…), for the accounts of the
  changed users; one whose users' condition reads their accounts (``user:account:attribute``), for every account
  of the changed accounts' users;
* then, transitively, the segments referencing a segment whose membership changed, for the changed subjects
  (``membership``), and the ``Segments`` property of every subject whose membership changed;
* other computed properties whose dependencies match the change kinds, for the changed subjects.

A segment whose scope exceeds ``FULL_REFRESH_ABOVE`` subjects (a large CSV import) is refreshed whole instead.

On PostgreSQL the changed subjects' rows are locked (``FOR NO KEY UPDATE``, in id order) before evaluating, so two
ingestions about the same person evaluate one after the other and each sees the other's data.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.computed import refresh_for_changes
from connector.models import Account, AccountUser, SegmentKind, SubjectType, User, utcnow
from connector.scratch import id_set, keyed_probes
from connector.segments.evaluated import Evaluation, workspace_segments
from connector.segments.run import evaluate_subjects, refresh_segments
from connector.segments.sharing import follow_source_devices

# Past this many subjects for one segment, evaluating the whole segment is cheaper than listing the subjects.
FULL_REFRESH_ABOVE = 20_000
# Ids passed to SQL as a bound list up to this many; beyond, through a scratch table.
_BOUND_IDS = 2_000


def apply_changes(session: Session, workspace_id: int, changes: ChangeSet) -> Evaluation | None:
    """Re-evaluate, for the changed subjects only, the segments whose conditions can depend on what changed.

    Returns what changed (None when nothing could). Runs in the caller's transaction and never commits.
    """
    if not changes:
        return None
    now = utcnow()
    kinds = set(changes.kinds)
    users, accounts = set(changes.user_ids), set(changes.account_ids)
    segments = workspace_segments(session, workspace_id)

    # Subjects are in a segment's scope only for the ways they changed that the segment reads (a batch of events
    # re-evaluates "bought this week" for its buyers only); related subjects are looked up once per set of ids.
    related: dict[tuple[str, frozenset[int]], set[int]] = {}

    def users_of(ids: set[int]) -> set[int]:
        key = ("users", frozenset(ids))
        if key not in related:
            related[key] = _users_of(session, ids) if ids else set()
        return related[key]

    def accounts_of(ids: set[int]) -> set[int]:
        key = ("accounts", frozenset(ids))
        if key not in related:
            related[key] = _accounts_of(session, ids) if ids else set()
        return related[key]

    scopes: dict[int, set[int]] = {}
    for segment in segments.values():
        if segment.kind == SegmentKind.MANUAL:
            continue
        segment_id, subject_type, deps = segment.id, segment.subject_type, segment.dependencies
        read = (deps | {"subject"}) & kinds
        scope: set[int] = set()
        if subject_type == SubjectType.USER:
            if users and read:
                scope |= changes.users_changed(read)
            account_kinds = {k for k in kinds if f"account:{k}" in deps}
            if accounts and account_kinds:
                scope |= users_of(changes.accounts_changed(account_kinds))
        else:
            if accounts and read:
                scope |= changes.accounts_changed(read)
            user_kinds = {k for k in kinds if f"user:{k}" in deps}
            if users and user_kinds:
                scope |= accounts_of(changes.users_changed(user_kinds))
            through_users = {k for k in kinds if f"user:account:{k}" in deps}
            if accounts and through_users:
                # Users aggregated over read their accounts' data: every account of the changed accounts' users.
                scope |= accounts_of(users_of(changes.accounts_changed(through_users)))
        if scope:
            scopes[segment_id] = scope

    whole = {i for i, scope in scopes.items() if len(scope) > FULL_REFRESH_ABOVE}
    with keyed_probes(session):
        _lock_subjects(session, scopes, {i: s.subject_type for i, s in segments.items()}, whole)
        partial = {i: s for i, s in scopes.items() if i not in whole}
        evaluation = evaluate_subjects(session, workspace_id, partial, now=now, segments=segments)
    if whole:
        bulk = refresh_segments(session, workspace_id, whole, now=now)
        evaluation.counts.update(bulk.counts)
        evaluation.changed = None

    with keyed_probes(session):
        for subject_type, ids in ((SubjectType.USER, users), (SubjectType.ACCOUNT, accounts)):
            if ids:
                refresh_for_changes(session, workspace_id, subject_type, _ids_scope(session, ids), kinds)
        if "device" in kinds:
            follow_source_devices(session, workspace_id, users, now)
    return evaluation


def _users_of(session: Session, account_ids: set[int]) -> set[int]:
    links = AccountUser.__table__
    return set(session.scalars(select(links.c.user_id).where(links.c.account_id.in_(_ids_scope(session, account_ids)))))


def _accounts_of(session: Session, user_ids: set[int]) -> set[int]:
    links = AccountUser.__table__
    return set(session.scalars(select(links.c.account_id).where(links.c.user_id.in_(_ids_scope(session, user_ids)))))


def _ids_scope(session: Session, ids: set[int]) -> list[int] | Select:
    return sorted(ids) if len(ids) <= _BOUND_IDS else id_set(session, ids)


def _lock_subjects(
    session: Session, scopes: dict[int, set[int]], types: dict[int, SubjectType], skipped: set[int]
) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite transactions are serial already (BEGIN IMMEDIATE).
    for table, subject_type in ((User.__table__, SubjectType.USER), (Account.__table__, SubjectType.ACCOUNT)):
        ids = sorted(
            {i for sid, scope in scopes.items() if types[sid] == subject_type and sid not in skipped for i in scope}
        )
        if ids:
            session.execute(
                select(table.c.id)
                .where(table.c.id.in_(_ids_scope(session, set(ids))))
                .order_by(table.c.id)
                .with_for_update(key_share=True)
            )
