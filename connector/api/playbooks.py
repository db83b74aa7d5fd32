"""Playbooks, their firings, and views, under ``/api/v1/workspaces/<workspace>``.

Views read as a page (``GET .../views/<id>/rows?cursor=``), a count (``.../count``) and a streamed CSV export
(``.../export.csv``). A view is computed at each read: it keeps no membership.
"""

from __future__ import annotations

from typing import Literal

from flask import Response, stream_with_context
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field

from connector.api.automation import secret_key, service_errors
from connector.api.automation_documents import firing_json, playbook_json, view_json
from connector.api.common import (
    MAX_ID,
    WorkspacePath,
    decode_cursor,
    decode_id_cursor,
    encode_cursor,
    workspace_blueprint,
)
from connector.api.context import database, unit_of_work, workspace_id
from connector.api.problems import invalid
from connector.automation import playbooks, views
from connector.automation.playbooks import PlaybookInput
from connector.automation.views import ViewInput
from connector.scheduling import notify_sync_changed

bp = workspace_blueprint("playbooks", "playbooks")
views_bp = workspace_blueprint("views", "views")


def blueprints() -> list[APIBlueprint]:
    return [bp, views_bp]


class PlaybookPath(WorkspacePath):
    playbook_id: int = Field(ge=1, le=MAX_ID)


class ViewPath(WorkspacePath):
    view_id: int = Field(ge=1, le=MAX_ID)


class ResumeQuery(BaseModel):
    catch_up: bool = Field(False, description="Fire for what happened while paused instead of resuming from now")


class FiringQuery(BaseModel):
    status: Literal["pending", "succeeded", "failed", "skipped", "suppressed"] | None = None
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200)


class RowsQuery(BaseModel):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200)


# -- playbooks ----------------------------------------------------------------------------------------------------


@bp.get("/playbooks")
def list_playbooks(path: WorkspacePath):
    with unit_of_work() as session:
        return {"data": [playbook_json(p) for p in playbooks.list_playbooks(session, workspace_id())]}


@bp.post("/playbooks")
def create_playbook(path: WorkspacePath, body: PlaybookInput):
    """Create a playbook; an enter/exit playbook fires for membership changes from now on."""
    with service_errors(), unit_of_work() as session:
        playbook = playbooks.save_playbook(session, workspace_id(), body.model_dump(mode="json"), secret_key())
        answer = playbook_json(playbook)
    notify_sync_changed()
    return answer, 201


@bp.get("/playbooks/<int:playbook_id>")
def get_playbook(path: PlaybookPath):
    with service_errors(), unit_of_work() as session:
        return playbook_json(playbooks.get_playbook(session, workspace_id(), path.playbook_id))


@bp.put("/playbooks/<int:playbook_id>")
def update_playbook(path: PlaybookPath, body: PlaybookInput):
    """Replace a playbook's definition (a webhook secret sent back masked keeps the stored one)."""
    with service_errors(), unit_of_work() as session:
        playbook = playbooks.get_playbook(session, workspace_id(), path.playbook_id)
        data = body.model_dump(mode="json")
        answer = playbook_json(playbooks.save_playbook(session, workspace_id(), data, secret_key(), playbook))
    notify_sync_changed()
    return answer


@bp.post("/playbooks/<int:playbook_id>/pause")
def pause_playbook(path: PlaybookPath):
    with service_errors(), unit_of_work() as session:
        playbook = playbooks.get_playbook(session, workspace_id(), path.playbook_id)
        answer = playbook_json(playbooks.set_enabled(session, playbook, False))
    notify_sync_changed()
    return answer


@bp.post("/playbooks/<int:playbook_id>/resume")
def resume_playbook(path: PlaybookPath, query: ResumeQuery):
    """Resume from now (membership changes while paused are not fired), or with ``catch_up=true`` from where it
    stopped."""
    with service_errors(), unit_of_work() as session:
        playbook = playbooks.get_playbook(session, workspace_id(), path.playbook_id)
        answer = playbook_json(playbooks.set_enabled(session, playbook, True, catch_up=query.catch_up))
    notify_sync_changed()
    return answer


@bp.delete("/playbooks/<int:playbook_id>")
def delete_playbook(path: PlaybookPath):
    with service_errors(), unit_of_work() as session:
        playbooks.delete_playbook(session, playbooks.get_playbook(session, workspace_id(), path.playbook_id))
    notify_sync_changed()
    return "", 204


@bp.get("/playbooks/<int:playbook_id>/firings")
def list_firings(path: PlaybookPath, query: FiringQuery):
    """Each firing: subject, trigger, status (pending, succeeded, failed, skipped, suppressed), results, error."""
    after = decode_id_cursor(query.cursor, "after")
    with service_errors(), unit_of_work() as session:
        playbook = playbooks.get_playbook(session, workspace_id(), path.playbook_id)
        found = playbooks.list_firings(session, playbook, status=query.status, after=after, limit=query.limit)
        data = [firing_json(f) for f in found]
    cursor = encode_cursor({"after": found[-1].id}) if len(found) == query.limit else None
    return {"data": data, "next_cursor": cursor}


# -- views --------------------------------------------------------------------------------------------------------


@views_bp.get("/views")
def list_views(path: WorkspacePath):
    with unit_of_work() as session:
        return {"data": [view_json(v) for v in views.list_views(session, workspace_id())]}


@views_bp.post("/views")
def create_view(path: WorkspacePath, body: ViewInput):
    with service_errors(), unit_of_work() as session:
        return view_json(views.save_view(session, workspace_id(), body.model_dump(mode="json"))), 201


@views_bp.get("/views/<int:view_id>")
def get_view(path: ViewPath):
    with service_errors(), unit_of_work() as session:
        return view_json(views.get_view(session, workspace_id(), path.view_id))


@views_bp.put("/views/<int:view_id>")
def update_view(path: ViewPath, body: ViewInput):
    with service_errors(), unit_of_work() as session:
        view = views.get_view(session, workspace_id(), path.view_id)
        return view_json(views.save_view(session, workspace_id(), body.model_dump(mode="json"), view))


@views_bp.delete("/views/<int:view_id>")
def delete_view(path: ViewPath):
    with service_errors(), unit_of_work() as session:
        views.delete_view(session, views.get_view(session, workspace_id(), path.view_id))
    return "", 204


@views_bp.get("/views/<int:view_id>/rows")
def read_view(path: ViewPath, query: RowsQuery):
    """A page of the view's rows, in its sort, with its columns."""
    offset = _offset(query.cursor)
    with service_errors(), unit_of_work() as session:
        view = views.get_view(session, workspace_id(), path.view_id)
        rows, next_offset = views.read_page(session, view, offset=offset, limit=query.limit)
    cursor = encode_cursor({"offset": next_offset}) if next_offset is not None else None
    return {"columns": view.columns, "data": rows, "next_cursor": cursor}


@views_bp.get("/views/<int:view_id>/count")
def count_view(path: ViewPath):
    with service_errors(), unit_of_work() as session:
        return {"count": views.count_view(session, views.get_view(session, workspace_id(), path.view_id))}


@views_bp.get("/views/<int:view_id>/export.csv")
def export_view(path: ViewPath):
    """Every row of the view as CSV, streamed (JSON values such as ``Segments`` are written as JSON)."""
    workspace = workspace_id()
    with service_errors(), unit_of_work() as session:
        view = views.get_view(session, workspace, path.view_id)

    headers = {"Content-Disposition": f'attachment; filename="view-{view.id}.csv"'}
    return Response(stream_with_context(views.csv_text(database().session, view)), mimetype="text/csv", headers=headers)


def _offset(cursor: str | None) -> int:
    values = decode_cursor(cursor)
    offset = values.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_ID:
        raise invalid("query.cursor", "not a cursor returned by this API")
    return offset
