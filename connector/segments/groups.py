"""Segment groups: list, create, describe, rename and delete them (deleting a group keeps its segments, ungrouped),
and move segments in and out.

A group synced from HQ (``hq_item_id`` set) is marked ``edited_in_child`` when this workspace renames or describes
it, so an HQ sync "only where missing" keeps the edit and "update existing" overrides it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from connector.errors import InvalidError
from connector.models import Segment, SegmentGroup
from connector.segments import service

_UNSET: Any = object()


def list_groups(session: Session, workspace_id: int) -> list[tuple[SegmentGroup, int]]:
    """The workspace's groups with their number of segments."""
    counts = (
        select(Segment.group_id, func.count().label("n"))
        .where(Segment.workspace_id == workspace_id)
        .group_by(Segment.group_id)
        .subquery()
    )
    rows = session.execute(
        select(SegmentGroup, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == SegmentGroup.id)
        .where(SegmentGroup.workspace_id == workspace_id)
        .order_by(SegmentGroup.name)
    )
    return [(group, n) for group, n in rows]


def get_group(session: Session, workspace_id: int, group_id: int) -> SegmentGroup:
    group = session.get(SegmentGroup, group_id)
    if group is None or group.workspace_id != workspace_id:
        raise service.SegmentNotFoundError("segment group")
    return group


def _create_group(session: Session, workspace_id: int, name: str) -> SegmentGroup:
    name = service.checked_name(name, "name")
    service.check_group_name_free(session, workspace_id, name)
    group = SegmentGroup(workspace_id=workspace_id, name=name)
    session.add(group)
    session.flush()
    return group


def _rename_group(session: Session, group: SegmentGroup, name: str) -> SegmentGroup:
    name = service.checked_name(name, "name")
    if name != group.name:
        service.check_group_name_free(session, group.workspace_id, name)
        group.name = name
        session.flush()
    return group


def delete_group(session: Session, group: SegmentGroup) -> None:
    """Delete a group; its segments stay, outside any group."""
    session.delete(group)
    session.flush()


def create_group(session: Session, workspace_id: int, name: str, description: str = "") -> SegmentGroup:
    """A new group; ``NameTakenError`` / ``InvalidSegmentError`` as for segments."""
    _check_description(description)
    group = _create_group(session, workspace_id, name)
    group.description = description
    session.flush()
    return group


def update_group(
    session: Session, group: SegmentGroup, *, name: str = _UNSET, description: str = _UNSET
) -> SegmentGroup:
    """Rename and/or describe a group."""
    if description is not _UNSET:
        _check_description(description)
    if name is not _UNSET:
        _rename_group(session, group, name)
    if description is not _UNSET:
        group.description = description
    if group.hq_item_id is not None:
        group.edited_in_child = True
    session.flush()
    return group


def move_segments(
    session: Session, group: SegmentGroup, *, add: list[int] = (), remove: list[int] = ()
) -> dict[str, list[int]]:
    """Put segments of the workspace in this group (from wherever they were) and take segments of this group out
    (ungrouped). Unknown ids, or taking out a segment that is not in the group, are refused (422) before anything
    moves. Returns the ids moved in and out."""
    ids = set(add) | set(remove)
    found = {
        s.id: s
        for s in session.scalars(select(Segment).where(Segment.id.in_(ids), Segment.workspace_id == group.workspace_id))
    }
    errors = [
        {"field": f"{where}[{i}]", "reason": f"no segment {segment_id} in this workspace"}
        for where, listed in (("add", add), ("remove", remove))
        for i, segment_id in enumerate(listed)
        if segment_id not in found
    ]
    errors += [
        {"field": f"remove[{i}]", "reason": f"segment {segment_id} is not in this group"}
        for i, segment_id in enumerate(remove)
        if segment_id in found and found[segment_id].group_id != group.id
    ]
    both = set(add) & set(remove)
    errors += [{"field": "remove", "reason": f"segment {i} is both added and removed"} for i in sorted(both)]
    if errors:
        raise InvalidError(errors)
    moved_in = sorted(i for i in set(add) if found[i].group_id != group.id)
    moved_out = sorted(set(remove))
    if moved_in:
        session.execute(update(Segment).where(Segment.id.in_(moved_in)).values(group_id=group.id))
    if moved_out:
        session.execute(update(Segment).where(Segment.id.in_(moved_out)).values(group_id=None))
    session.expire_all()
    return {"moved_in": moved_in, "moved_out": moved_out}


def _check_description(description: Any) -> None:
    errors = service._text_errors(description, "description", service.DESCRIPTION_MAX)
    if errors:
        raise InvalidError(errors)
