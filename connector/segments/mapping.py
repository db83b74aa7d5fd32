"""Segment mapping ("mapped values"): in a child workspace, which of its segments stands for an HQ segment.

HQ syncs write a mapping for every segment they create in a child; the child's admins may point one elsewhere. A
condition tree pushed from HQ (a segment's, later a playbook's or a view's) names HQ segments; before it is saved
in a child, ``rewrite_segment_references`` puts the child's mapped segments in their place, and fails on an HQ
segment without a mapping — never guessing by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.errors import InvalidError, NotFoundError
from connector.models import Segment, SegmentMapping, utcnow

# The leaves that name a segment by id, in every condition tree of the product (segments, playbooks, views).
SEGMENT_LEAVES = frozenset({"segment", "account_segment"})


class MissingMappingError(Exception):
    """A pushed tree names an HQ segment that has no mapped segment in the child workspace."""

    def __init__(self, hq_segment_id: int, path: str) -> None:
        super().__init__(f"{path} names HQ segment {hq_segment_id}, which has no mapped segment in this workspace")
        self.hq_segment_id = hq_segment_id
        self.path = path


def rewrite_segment_references(tree: Any, mapped: Callable[[int], int | None], location: str = "conditions") -> Any:
    """A copy of a JSON condition tree with every ``segment`` / ``account_segment`` leaf's ``segment_id`` replaced
    by ``mapped(hq_segment_id)``; ``MissingMappingError`` (with the leaf's path) when that is None.

    Works on the stored JSON, not on parsed nodes, so the same function serves every tree built from the condition
    language (a playbook's or view's trees hold the same leaves among their own)."""
    if isinstance(tree, list):
        return [rewrite_segment_references(v, mapped, f"{location}[{i}]") for i, v in enumerate(tree)]
    if not isinstance(tree, dict):
        return tree
    copy = {key: rewrite_segment_references(value, mapped, f"{location}.{key}") for key, value in tree.items()}
    if tree.get("type") in SEGMENT_LEAVES and isinstance(tree.get("segment_id"), int):
        child_id = mapped(tree["segment_id"])
        if child_id is None:
            raise MissingMappingError(tree["segment_id"], f"{location}.segment_id")
        copy["segment_id"] = child_id
    return copy


def hq_segment_references(tree: Any) -> set[int]:
    """The segment ids a JSON condition tree names (``segment`` / ``account_segment`` leaves)."""
    found: set[int] = set()

    def collect(hq_segment_id: int) -> int:
        found.add(hq_segment_id)
        return hq_segment_id

    rewrite_segment_references(tree, collect)
    return found


def mappings_of(session: Session, workspace_id: int) -> dict[int, int]:
    """The child workspace's mapping: HQ segment id -> its segment id."""
    rows = session.execute(
        select(SegmentMapping.hq_segment_id, SegmentMapping.segment_id).where(
            SegmentMapping.workspace_id == workspace_id
        )
    )
    return dict(rows.all())


def set_mapping(
    session: Session, workspace_id: int, hq_workspace_id: int, hq_segment_id: int, segment_id: int, member_id=None
) -> SegmentMapping:
    """Map an HQ segment to a segment of this workspace (creating or changing the mapping)."""
    mapping = session.scalars(
        select(SegmentMapping).where(
            SegmentMapping.workspace_id == workspace_id, SegmentMapping.hq_segment_id == hq_segment_id
        )
    ).first()
    if mapping is None:
        mapping = SegmentMapping(
            workspace_id=workspace_id, hq_workspace_id=hq_workspace_id, hq_segment_id=hq_segment_id
        )
        session.add(mapping)
    mapping.segment_id = segment_id
    mapping.updated_by_id = member_id
    mapping.updated_at = utcnow()
    session.flush()
    return mapping


def list_mappings(session: Session, workspace_id: int) -> list[dict[str, Any]]:
    """The workspace's segment mappings with both segments' names (the HQ one as HQ named it)."""
    hq = Segment.__table__.alias("hq_segments")
    rows = session.execute(
        select(SegmentMapping, Segment.name, hq.c.name)
        .join(Segment, Segment.id == SegmentMapping.segment_id)
        .outerjoin(
            hq, (hq.c.id == SegmentMapping.hq_segment_id) & (hq.c.workspace_id == SegmentMapping.hq_workspace_id)
        )
        .where(SegmentMapping.workspace_id == workspace_id)
        .order_by(SegmentMapping.hq_segment_id)
    )
    return [
        {
            "hq_workspace_id": m.hq_workspace_id,
            "hq_segment_id": m.hq_segment_id,
            "hq_segment_name": hq_name,
            "segment_id": m.segment_id,
            "segment_name": name,
            "updated_by": m.updated_by_id,
            "updated_at": m.updated_at,
        }
        for m, name, hq_name in rows
    ]


def change_mapping(
    session: Session, workspace_id: int, hq_segment_id: int, segment_id: int, member_id: int | None
) -> SegmentMapping:
    """A child admin points an existing mapping at another of the workspace's segments (same subject type)."""
    mapping = session.scalars(
        select(SegmentMapping).where(
            SegmentMapping.workspace_id == workspace_id, SegmentMapping.hq_segment_id == hq_segment_id
        )
    ).first()
    if mapping is None:
        raise NotFoundError("segment mapping")
    segment = session.get(Segment, segment_id)
    if segment is None or segment.workspace_id != workspace_id:
        raise InvalidError.one("segment_id", f"no segment {segment_id} in this workspace")
    current = session.get(Segment, mapping.segment_id)
    if current is not None and current.subject_type != segment.subject_type:
        raise InvalidError.one("segment_id", f"must be a {current.subject_type} segment, as the HQ segment is")
    return set_mapping(session, workspace_id, mapping.hq_workspace_id, hq_segment_id, segment_id, member_id)
