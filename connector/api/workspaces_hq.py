"""Across workspaces: HQ syncs, segment mappings (mapped values), sharing segments, shared-segment evaluations, and
moving segments in and out of groups.

Routes, under ``/api/v1/workspaces/<workspace>``:

- ``POST /hq-syncs`` (HQ admins): push segments, groups, views, playbooks to every child; ``dry_run`` answers the
  report without writing. ``GET /hq-syncs``, ``GET /hq-syncs/<id>``: reports; a child sees its own part of its HQ's
  reports.
- ``GET /mapped-values/segments``, ``PUT /mapped-values/segments/<hq_segment_id>`` (the child's admins).
- ``GET|PUT /segments/<id>/sharing``: which workspaces a segment is shared with; ``GET /segments/<id>/evaluations``.
- ``POST /segment-groups/<id>/segments``: ``{"add": [...], "remove": [...]}``.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, ConfigDict, Field

from connector.api.automation import secret_key
from connector.api.common import MAX_ID, WorkspacePath, workspace_blueprint
from connector.api.context import require_role, unit_of_work, workspace_id
from connector.api.segments import SegmentPath, service_errors
from connector.models import Member, Role
from connector.segments import groups, hq, mapping, service, sharing

hq_bp = workspace_blueprint("hq_syncs", "workspaces", "/hq-syncs")
mapped_bp = workspace_blueprint("mapped_values", "workspaces", "/mapped-values")
sharing_bp = workspace_blueprint("segment_sharing", "segments", "/segments")
group_members_bp = workspace_blueprint("segment_group_members", "segments", "/segment-groups")

MAX_ITEMS = 1_000


def blueprints() -> list[APIBlueprint]:
    return [hq_bp, mapped_bp, sharing_bp, group_members_bp]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HqSyncBody(_Body):
    segments: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)
    segment_groups: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)
    views: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)
    playbooks: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)
    include_group_segments: bool = Field(False, description="Sync the groups' segments with them")
    mode: hq.Mode = Field(hq.Mode.UPDATE_EXISTING, description="What to do in children that have the item already")
    dry_run: bool = False


class ReportPath(WorkspacePath):
    report_id: int = Field(ge=1, le=MAX_ID)


class MappingPath(WorkspacePath):
    hq_segment_id: int = Field(ge=1, le=MAX_ID)


class MappingBody(_Body):
    segment_id: int = Field(ge=1, le=MAX_ID)


class SharingBody(_Body):
    workspaces: list[int] = Field(max_length=MAX_ITEMS, description="Ids of the workspaces to share with")


class GroupPath(WorkspacePath):
    group_id: int = Field(ge=1, le=MAX_ID)


class MoveBody(_Body):
    add: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)
    remove: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)


def _member(session) -> Member:
    return session.get(Member, g.member.id)


# -- HQ syncs --------------------------------------------------------------------------------------------------------


@hq_bp.post("")
def sync_to_children(path: WorkspacePath, body: HqSyncBody):
    """Sync segments, segment groups, views and playbooks from this HQ workspace to all its child workspaces; the
    report per child."""
    with unit_of_work() as session:
        report = hq.sync_to_children(
            session,
            _member(session),
            g.access,
            items=body.model_dump(include={"segments", "segment_groups", "views", "playbooks"}),
            include_group_segments=body.include_group_segments,
            mode=body.mode,
            dry_run=body.dry_run,
            secret_key=secret_key(),
        )
        return report, 200 if body.dry_run else 201


@hq_bp.get("")
def list_reports(path: WorkspacePath):
    """Reports of HQ syncs from this workspace, or (in a child) this workspace's part of its HQ's syncs."""
    with unit_of_work() as session:
        return {"data": hq.list_reports(session, workspace_id())}


@hq_bp.get("/<int:report_id>")
def get_report(path: ReportPath):
    """One HQ sync report."""
    with unit_of_work() as session:
        return hq.get_report(session, workspace_id(), path.report_id)


# -- mapped values ---------------------------------------------------------------------------------------------------


@mapped_bp.get("/segments")
def list_segment_mappings(path: WorkspacePath):
    """HQ segment -> this workspace's segment, as HQ syncs made them or admins changed them."""
    with unit_of_work() as session:
        return {"data": mapping.list_mappings(session, workspace_id())}


@mapped_bp.put("/segments/<int:hq_segment_id>")
def change_segment_mapping(path: MappingPath, body: MappingBody):
    """Point an HQ segment's mapping at another segment of this workspace (workspace admins)."""
    require_role(Role.WORKSPACE_ADMIN)
    with unit_of_work() as session:
        mapping.change_mapping(session, workspace_id(), path.hq_segment_id, body.segment_id, g.member.id)
        found = [m for m in mapping.list_mappings(session, workspace_id()) if m["hq_segment_id"] == path.hq_segment_id]
        return found[0]


# -- sharing ---------------------------------------------------------------------------------------------------------


@sharing_bp.get("/<int:segment_id>/sharing")
def get_sharing(path: SegmentPath):
    """The workspaces this member may see, each with ``shared``, and how many others the segment is shared with."""
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        return sharing.sharing_of(session, _member(session), segment)


@sharing_bp.put("/<int:segment_id>/sharing")
def set_sharing(path: SegmentPath, body: SharingBody):
    """Share the segment with exactly these workspaces (among those this member may see)."""
    require_role(Role.WORKSPACE_ADMIN)
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        return sharing.set_sharing(session, _member(session), segment, body.workspaces)


@sharing_bp.get("/<int:segment_id>/evaluations")
def evaluations(path: SegmentPath):
    """The segment's evaluations that changed its membership, newest first: when, and its member count then."""
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        return {"data": sharing.shared_evaluations(session, segment)}


# -- groups ----------------------------------------------------------------------------------------------------------


@group_members_bp.post("/<int:group_id>/segments")
def move_segments(path: GroupPath, body: MoveBody):
    """Move segments into this group (from wherever they were) and out of it (ungrouped)."""
    with service_errors(), unit_of_work() as session:
        group = groups.get_group(session, workspace_id(), path.group_id)
        moved: dict[str, Any] = groups.move_segments(session, group, add=body.add, remove=body.remove)
        return moved
