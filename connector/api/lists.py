"""List syncs, under ``/api/v1/workspaces/<workspace>/syncs/<sync_id>/lists``: a sync to HubSpot contacts (or
companies) that also keeps one static list per chosen segment, its members following the segment's.

``PUT .../lists`` with ``{"enabled": true}`` makes the sync a list sync (422 when it has no segments or does not
write HubSpot contacts or companies); its next run creates, renames and fills the lists. ``GET .../lists`` answers
each segment's list and its acknowledged member count.
"""

from __future__ import annotations

from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, ConfigDict, Field

from connector.api.common import MAX_ID, WorkspacePath, workspace_blueprint
from connector.api.context import unit_of_work, workspace_id
from connector.api.problems import ProblemError, not_found
from connector.errors import InvalidError, NotFoundError
from connector.syncs.lists import enable_lists, list_state

bp = workspace_blueprint("lists", "syncs")


def blueprints() -> list[APIBlueprint]:
    return [bp]


class SyncPath(WorkspacePath):
    sync_id: int = Field(ge=1, le=MAX_ID)


class ListsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="Keep a HubSpot static list per segment of the sync")


@bp.get("/syncs/<int:sync_id>/lists")
def get_lists(path: SyncPath):
    try:
        with unit_of_work() as session:
            return list_state(session, workspace_id(), path.sync_id)
    except NotFoundError as exc:
        raise not_found(exc.what) from None


@bp.put("/syncs/<int:sync_id>/lists")
def put_lists(path: SyncPath, body: ListsIn):
    try:
        with unit_of_work() as session:
            enable_lists(session, workspace_id(), path.sync_id, body.enabled)
            return list_state(session, workspace_id(), path.sync_id)
    except NotFoundError as exc:
        raise not_found(exc.what) from None
    except InvalidError as exc:
        errors = exc.prefixed("body").errors
        raise ProblemError(422, "Invalid request", errors[0]["reason"], errors=errors) from None
