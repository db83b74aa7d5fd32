"""List syncs: each chosen segment of a sync follows a HubSpot static list, created and named after it.

After a run of the sync has written its records (so every member in scope exists remotely with a record id, or
was refused), ``sync_lists`` brings each segment's list in step:

- the list is found by name or created the first time and its id kept (``sync_lists``); a renamed segment renames
  its list;
- members who entered are added, members who left are removed, by remote record id, in batches of at most
  ``MAX_MEMBERSHIP_BATCH`` (HubSpot takes up to 100,000 ids a request), each batch through the sync's retry
  policy and rate limiter, and acknowledged (``sync_list_members``) in its own transaction once answered: a crash
  re-sends at most the batch in flight, which adding or removing again makes harmless;
- a member with no record in HubSpot (an update-only sync that found none, or a record refused) is skipped and
  said so in the run's errors; one HubSpot reports missing is skipped the same way.

A sync becomes a list sync with ``enable_lists`` (users to HubSpot contacts, or accounts to companies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from connector.db import Database
from connector.destinations.hubspot_lists import MAX_MEMBERSHIP_BATCH, HubSpotLists
from connector.errors import InvalidError, NotFoundError
from connector.models import (
    Destination,
    ListSync,
    RecordState,
    Segment,
    SegmentMembership,
    Sync,
    SyncList,
    SyncListMember,
    SyncRecord,
    SyncRunError,
    SyncSegment,
)

log = logging.getLogger(__name__)
LIST_OBJECTS = {"contacts", "companies"}


@dataclass
class ListCounts:
    lists_created: int = 0
    lists_renamed: int = 0
    added: int = 0
    removed: int = 0
    skipped: int = 0


# -- configuration -------------------------------------------------------------------------------------------------


def enable_lists(session: Session, workspace_id: int, sync_id: int, enabled: bool) -> bool:
    """Make a sync a list sync (or stop it being one; its lists stay in HubSpot). Returns whether it is one."""
    sync = session.scalar(select(Sync).where(Sync.id == sync_id, Sync.workspace_id == workspace_id))
    if sync is None:
        raise NotFoundError("sync")
    current = session.get(ListSync, sync.id)
    if not enabled:
        if current is not None:
            session.delete(current)
        return False
    destination = session.get(Destination, sync.destination_id)
    if destination.type != "hubspot" or sync.destination_object not in LIST_OBJECTS:
        raise InvalidError.one("enabled", "lists are kept for syncs to HubSpot contacts or companies")
    if session.scalar(select(SyncSegment.segment_id).where(SyncSegment.sync_id == sync.id).limit(1)) is None:
        raise InvalidError.one("enabled", "the sync has no segments: a list follows each of the sync's segments")
    if current is None:
        session.add(ListSync(sync_id=sync.id))
    session.flush()
    return True


def list_state(session: Session, workspace_id: int, sync_id: int) -> dict[str, Any]:
    """Whether the sync keeps lists, and each segment's list with its acknowledged member count."""
    sync = session.scalar(select(Sync).where(Sync.id == sync_id, Sync.workspace_id == workspace_id))
    if sync is None:
        raise NotFoundError("sync")
    rows = session.execute(
        select(Segment.id, Segment.name, SyncList.list_id, SyncList.list_name)
        .join(SyncSegment, SyncSegment.segment_id == Segment.id)
        .outerjoin(SyncList, (SyncList.sync_id == sync.id) & (SyncList.segment_id == Segment.id))
        .where(SyncSegment.sync_id == sync.id)
        .order_by(Segment.name)
    ).all()
    counts = dict(
        session.execute(
            select(SyncListMember.segment_id, func.count())
            .where(SyncListMember.sync_id == sync.id)
            .group_by(SyncListMember.segment_id)
        ).all()
    )
    return {
        "enabled": session.get(ListSync, sync.id) is not None,
        "lists": [
            {
                "segment_id": segment_id,
                "segment": name,
                "list_id": list_id,
                "list_name": list_name,
                "members": counts.get(segment_id, 0),
            }
            for segment_id, name, list_id, list_name in rows
        ],
    }


# -- running ---------------------------------------------------------------------------------------------------


def is_list_sync(db: Database, sync_id: int) -> bool:
    with db.session() as session:
        return session.get(ListSync, sync_id) is not None


def sync_lists(
    db: Database,
    run_id: int,
    sync_id: int,
    plugin: object,
    object_type: str,
    send: Callable[..., Any],
) -> ListCounts:
    """Bring every segment's list in step. ``send(fn, *args)`` makes one request through the run's retry policy
    and rate limiter. Raises what the destination raises when a request cannot be made (the run fails)."""
    lists = HubSpotLists.of(plugin, object_type)
    counts = ListCounts()
    with db.session() as session:
        segments = session.execute(
            select(Segment.id, Segment.name)
            .join(SyncSegment, SyncSegment.segment_id == Segment.id)
            .where(SyncSegment.sync_id == sync_id)
            .order_by(Segment.id)
        ).all()
    for segment_id, name in segments:
        list_id = _ensure_list(db, sync_id, segment_id, name, lists, send, counts)
        _follow_members(db, run_id, sync_id, segment_id, list_id, lists, send, counts)
    log.info("sync %s: run %s lists: %s", sync_id, run_id, counts)
    return counts


def _ensure_list(db, sync_id, segment_id, name, lists: HubSpotLists, send, counts: ListCounts) -> str:
    with db.session() as session:
        kept = session.get(SyncList, (sync_id, segment_id))
        kept = (kept.list_id, kept.list_name) if kept is not None else None
    if kept is None:
        list_id = send(lists.ensure, name)
        counts.lists_created += 1
        with db.session() as session:
            session.add(SyncList(sync_id=sync_id, segment_id=segment_id, list_id=list_id, list_name=name))
        return list_id
    list_id, list_name = kept
    if list_name != name:
        send(lists.rename, list_id, name)
        counts.lists_renamed += 1
        with db.session() as session:
            session.get(SyncList, (sync_id, segment_id)).list_name = name
    return list_id


def _follow_members(db, run_id, sync_id, segment_id, list_id, lists: HubSpotLists, send, counts: ListCounts) -> None:
    with db.session() as session:
        wanted = dict(
            session.execute(
                select(SegmentMembership.subject_id, SyncRecord.remote_id)
                .outerjoin(
                    SyncRecord,
                    (SyncRecord.sync_id == sync_id)
                    & (SyncRecord.subject_id == SegmentMembership.subject_id)
                    & (SyncRecord.state == RecordState.SYNCED),
                )
                .where(SegmentMembership.segment_id == segment_id)
            ).all()
        )
        acknowledged = dict(
            session.execute(
                select(SyncListMember.subject_id, SyncListMember.record_id).where(
                    SyncListMember.sync_id == sync_id, SyncListMember.segment_id == segment_id
                )
            ).all()
        )
    skipped = sorted(s for s, record_id in wanted.items() if record_id is None)
    if skipped:
        counts.skipped += len(skipped)
        _errors(
            db,
            run_id,
            [(s, "not a member of its list: no record in HubSpot (update-only, or refused)") for s in skipped],
        )
    add = sorted((s, r) for s, r in wanted.items() if r is not None and acknowledged.get(s) != r)
    remove = sorted((s, r) for s, r in acknowledged.items() if wanted.get(s) != r)

    for start in range(0, len(remove), MAX_MEMBERSHIP_BATCH):
        batch = remove[start : start + MAX_MEMBERSHIP_BATCH]
        send(lists.remove, list_id, [r for _, r in batch])
        with db.session() as session:
            session.execute(
                delete(SyncListMember).where(
                    SyncListMember.sync_id == sync_id,
                    SyncListMember.segment_id == segment_id,
                    SyncListMember.subject_id.in_([s for s, _ in batch]),
                )
            )
        counts.removed += len(batch)
    for start in range(0, len(add), MAX_MEMBERSHIP_BATCH):
        batch = add[start : start + MAX_MEMBERSHIP_BATCH]
        missing = set(send(lists.add, list_id, [r for _, r in batch]))
        landed = [(s, r) for s, r in batch if r not in missing]
        with db.session() as session:
            session.execute(
                delete(SyncListMember).where(
                    SyncListMember.sync_id == sync_id,
                    SyncListMember.segment_id == segment_id,
                    SyncListMember.subject_id.in_([s for s, _ in batch]),
                )
            )
            session.add_all(
                SyncListMember(sync_id=sync_id, segment_id=segment_id, subject_id=s, record_id=r) for s, r in landed
            )
        counts.added += len(landed)
        if missing:
            counts.skipped += len(batch) - len(landed)
            _errors(db, run_id, [(s, f"HubSpot has no record {r}") for s, r in batch if r in missing])


def _errors(db: Database, run_id: int, rows: list[tuple[int, str]]) -> None:
    with db.session() as session:
        session.add_all(
            SyncRunError(run_id=run_id, subject_id=s, kind="skipped", reason=reason) for s, reason in rows[:1000]
        )
