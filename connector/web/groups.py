"""Segment group pages: the list (and a new group, synced to every child workspace on request from an HQ), one
group with its segments, rename / describe, moving segments in and out, and deleting a group (its segments stay,
ungrouped). The same services as ``/segment-groups`` in the API (``service``, ``groups``, ``hq``)."""

from __future__ import annotations

from flask import request

from connector.segments import groups, hq, service
from connector.web.context import db, go, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals
from connector.web.workspaces import form_ids, sync_children

bp = workspace_blueprint("ui_groups", "/segment-groups")


@bp.get("")
def index():
    return _index()


def _index(refusal: Refusal | None = None, fields: dict[str, str] | None = None):
    with db() as session:
        listed = groups.list_groups(session, workspace_id())
        is_hq = bool(hq.child_workspaces(session, workspace_id()))
    return render(
        "groups/index.html",
        refusal.status if refusal else 200,
        groups=listed,
        is_hq=is_hq,
        refusal=refusal,
        fields=fields or {"name": "", "description": ""},
    )


@bp.post("")
def create():
    """A new group; with "sync to all child workspaces" (an HQ's admins), synced at once and the report shown."""
    fields = {"name": request.form.get("name", ""), "description": request.form.get("description", "")}
    try:
        with refusals(), db() as session:
            group = groups.create_group(session, workspace_id(), fields["name"], fields["description"])
            report = None
            if request.form.get("sync_to_children") == "on":
                report = sync_children(session, {"segment_groups": [group.id]})
            group_id = group.id
    except Refusal as exc:
        return _index(exc, fields)
    if report is None:
        return go(ws_url("ui_groups.show", group_id=group_id))
    return _show(group_id, report=report)


@bp.get("/<int:group_id>")
def show(group_id: int):
    return _show(group_id)


def _show(group_id: int, refusal: Refusal | None = None, report: dict | None = None, form: str = ""):
    with refusals(), db() as session:
        group = groups.get_group(session, workspace_id(), group_id)
        everything = service.list_segments(session, workspace_id())
        counts = service.member_counts(session, [s.id for s in everything if s.group_id == group.id])
        names = {grp.id: grp.name for grp, _ in groups.list_groups(session, workspace_id())}
    return render(
        "groups/show.html",
        refusal.status if refusal else 200,
        group=group,
        segments=[s for s in everything if s.group_id == group.id],
        others=[s for s in everything if s.group_id != group.id],
        counts=counts,
        names=names,
        refusal=refusal,
        form=form,
        report=report,
    )


def _change(group_id: int, form: str, change) -> object:
    """Run ``change(session, group)`` for an editor; the group's page with the refusal beside ``form`` if refused."""
    require_editor()
    try:
        with refusals(), db() as session:
            change(session, groups.get_group(session, workspace_id(), group_id))
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _show(group_id, exc, form=form)
    return None


@bp.post("/<int:group_id>/edit")
def edit(group_id: int):
    """Rename and describe."""
    name, description = request.form.get("name", ""), request.form.get("description", "")
    refused = _change(group_id, "edit", lambda s, grp: groups.update_group(s, grp, name=name, description=description))
    return refused or go(ws_url("ui_groups.show", group_id=group_id))


@bp.post("/<int:group_id>/segments")
def move(group_id: int):
    """Move the ticked segments in (``add``) and out (``remove``, ungrouped)."""
    try:
        add, remove = form_ids("add"), form_ids("remove")
    except Refusal as exc:
        return _show(group_id, exc, form="move")
    refused = _change(group_id, "move", lambda s, grp: groups.move_segments(s, grp, add=add, remove=remove))
    return refused or go(ws_url("ui_groups.show", group_id=group_id))


@bp.post("/<int:group_id>/delete")
def delete(group_id: int):
    """Delete the group; its segments stay, in no group."""
    refused = _change(group_id, "delete", groups.delete_group)
    return refused or go(ws_url("ui_groups.index"))
