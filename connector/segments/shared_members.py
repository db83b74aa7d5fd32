"""Who a shared segment's members are in a target workspace, in SQL: users matched by device id.

A target user matches a source user when one of its iOS or Android devices has the vendor id (IDFV, Android ID) of
one of the source user's devices on the same platform; a user with several devices matches when any does. The
stand-in segment's own condition is ``SharedSegmentCondition`` (compiled in ``compiler``); these queries find whom
to re-evaluate when something changes on the source side.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from connector.models import Device, SegmentShare
from connector.segments.scope import MATCHING_PLATFORMS

DEVICES = Device.__table__
SHARES = SegmentShare.__table__


def shared_stand_ins(session: Session, source_segment_ids: Iterable[int]) -> dict[int, list[int]]:
    """The stand-ins of these segments in the workspaces they are shared with: target workspace -> segment ids."""
    rows = session.execute(
        select(SHARES.c.target_workspace_id, SHARES.c.proxy_segment_id)
        .where(SHARES.c.source_segment_id.in_(sorted(source_segment_ids)))
        .order_by(SHARES.c.target_workspace_id, SHARES.c.proxy_segment_id)
    )
    found: dict[int, list[int]] = {}
    for target_id, proxy_id in rows:
        found.setdefault(target_id, []).append(proxy_id)
    return found


def stand_ins_from(session: Session, source_workspace_id: int) -> dict[int, list[int]]:
    """Every stand-in of a segment of this workspace: target workspace -> segment ids."""
    rows = session.execute(
        select(SHARES.c.target_workspace_id, SHARES.c.proxy_segment_id)
        .where(SHARES.c.source_workspace_id == source_workspace_id)
        .order_by(SHARES.c.target_workspace_id, SHARES.c.proxy_segment_id)
    )
    found: dict[int, list[int]] = {}
    for target_id, proxy_id in rows:
        found.setdefault(target_id, []).append(proxy_id)
    return found


def matching_users(source_workspace_id: int, target_workspace_id: int, source_user_ids: list[int] | Select) -> Select:
    """The target workspace's users with a device matching a device of these source users (distinct ids)."""
    own, theirs = DEVICES.alias("target_devices"), DEVICES.alias("source_devices")
    return (
        select(own.c.user_id)
        .join(theirs, and_(theirs.c.platform == own.c.platform, theirs.c.vendor_device_id == own.c.vendor_device_id))
        .where(
            theirs.c.workspace_id == source_workspace_id,
            theirs.c.user_id.in_(source_user_ids),
            own.c.workspace_id == target_workspace_id,
            own.c.platform.in_(MATCHING_PLATFORMS),
        )
        .distinct()
    )
