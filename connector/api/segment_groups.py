"""Segment groups: list, create (and sync to child workspaces from HQ), read with their segments, rename or
describe, delete (the segments stay, ungrouped). Under ``/api/v1/workspaces/<workspace>/segment-groups``."""

from __future__ import annotations

from flask import g
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, ConfigDict, Field

from connector.api.common import MAX_ID, WorkspacePath, workspace_blueprint
from connector.api.context import unit_of_work, workspace_id
from connector.api.problems import invalid
from connector.api.segment_documents import group_json, segment_json
from connector.api.segments import service_errors
from connector.models import Member
from connector.segments import groups, hq, service

groups_bp = workspace_blueprint("segment_groups", "segments", "/segment-groups")


def blueprints() -> list[APIBlueprint]:
    return [groups_bp]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupPath(WorkspacePath):
    group_id: int = Field(ge=1, le=MAX_ID)


class GroupBody(_Body):
    name: str = Field(min_length=1, max_length=service.NAME_MAX)
    description: str = Field("", max_length=service.DESCRIPTION_MAX)
    sync_to_children: bool = Field(False, description="An HQ workspace: sync it to all child workspaces at once")


class GroupUpdate(_Body):
    name: str | None = Field(None, min_length=1, max_length=service.NAME_MAX)
    description: str | None = Field(None, max_length=service.DESCRIPTION_MAX)


@groups_bp.get("")
def list_groups(path: WorkspacePath):
    """The workspace's segment groups, by name, with their number of segments."""
    with unit_of_work() as session:
        return {"data": [group_json(grp, n) for grp, n in groups.list_groups(session, workspace_id())]}


@groups_bp.post("")
def create_group(path: WorkspacePath, body: GroupBody):
    """Create a segment group (a folder of segments); ``sync_to_children`` as for segments."""
    with service_errors(), unit_of_work() as session:
        group = groups.create_group(session, workspace_id(), body.name, body.description)
        answer = group_json(group, 0)
        if body.sync_to_children:
            answer["hq_sync"] = hq.sync_to_children(
                session, session.get(Member, g.member.id), g.access, items={"segment_groups": [group.id]}
            )
        return answer, 201


@groups_bp.get("/<int:group_id>")
def get_group(path: GroupPath):
    """One group with its segments."""
    with service_errors(), unit_of_work() as session:
        group = groups.get_group(session, workspace_id(), path.group_id)
        segments = service.list_segments(session, workspace_id(), group_id=group.id)
        counts = service.member_counts(session, [s.id for s in segments])
        return {**group_json(group, len(segments)), "segments": [segment_json(s, counts[s.id]) for s in segments]}


@groups_bp.patch("/<int:group_id>")
def rename_group(path: GroupPath, body: GroupUpdate):
    """Rename and/or describe a group."""
    given = {name: getattr(body, name) for name in body.model_fields_set}
    for name, value in given.items():
        if value is None:
            raise invalid(f"body.{name}", "must not be null")
    with service_errors(), unit_of_work() as session:
        group = groups.update_group(session, groups.get_group(session, workspace_id(), path.group_id), **given)
        count = len(service.list_segments(session, workspace_id(), group_id=group.id))
        return group_json(group, count)


@groups_bp.delete("/<int:group_id>")
def delete_group(path: GroupPath):
    """Delete a group; its segments stay, outside any group."""
    with service_errors(), unit_of_work() as session:
        groups.delete_group(session, groups.get_group(session, workspace_id(), path.group_id))
    return "", 204
