"""View pages: the list, create / edit with the condition builder (so ``segment`` in / not in is a leaf), columns
and sort, and a view's rows a page at a time with its count and a CSV download. Every change and read goes through
``connector.automation.views``, as the API's (``connector.api.playbooks``) does."""

from __future__ import annotations

from typing import Any

from flask import Response, request, stream_with_context

from connector.api.automation_documents import view_json
from connector.api.context import database
from connector.automation import views
from connector.computed import computed_properties
from connector.models import SubjectType
from connector.segments import service
from connector.web import builder
from connector.web.context import db, go, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_views", "/views")
ROWS_PAGE = 50


def _subject_type(value: Any) -> SubjectType:
    return SubjectType.ACCOUNT if value in ("account", "accounts", SubjectType.ACCOUNT) else SubjectType.USER


def builder_context(session, tree: dict[str, Any], subject_type: SubjectType) -> dict[str, Any]:
    """What the builder's node macro (``segments/_node.html``) needs, for pages other than a segment's."""
    segments = service.list_segments(session, workspace_id())
    return {
        "tree": tree,
        "subject_type": subject_type,
        "b": builder,
        "user_segments": [s for s in segments if s.subject_type == SubjectType.USER],
        "account_segments": [s for s in segments if s.subject_type == SubjectType.ACCOUNT],
    }


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.replace(",", "\n").splitlines() if c.strip()]


@bp.get("")
def index():
    with db() as session:
        found = views.list_views(session, workspace_id())
    return render("automation/views.html", views=found)


@bp.route("/new", methods=["GET", "POST"])
def new():
    return _edit(None)


@bp.route("/<int:view_id>/edit", methods=["GET", "POST"])
def edit(view_id: int):
    return _edit(view_id)


def _edit(view_id: int | None):
    require_editor()
    refusal = None
    form = request.form
    if request.method == "POST":
        subject_type = _subject_type(form.get("subject_type"))
        tree = builder.tree_from_form(form)
        fields = {
            "name": form.get("name", ""),
            "columns": form.get("columns", ""),
            "sort_by": form.get("sort_by", "id"),
            "direction": form.get("direction", "asc"),
        }
        op = form.get("op", "")
        if op == "save":
            data = {
                "name": fields["name"],
                "subject_type": subject_type.value,
                "conditions": tree,
                "columns": _columns(fields["columns"]),
                "sort": {"by": fields["sort_by"], "direction": fields["direction"]},
            }
            try:
                with refusals(), db() as session:
                    current = views.get_view(session, workspace_id(), view_id) if view_id else None
                    saved_id = views.save_view(session, workspace_id(), data, current).id
                return go(ws_url("ui_views.show", view_id=saved_id))
            except Refusal as exc:
                if exc.status == 404 and not exc.fields:
                    raise
                refusal = exc
        elif op:
            tree = builder.apply(tree, op)
    elif view_id is not None:
        with refusals(), db() as session:
            view = views.get_view(session, workspace_id(), view_id)
            subject_type, tree = _subject_type(view.subject_type), view.conditions
            fields = {
                "name": view.name,
                "columns": "\n".join(view.columns),
                "sort_by": view.sort.get("by", "id"),
                "direction": view.sort.get("direction", "asc"),
            }
    else:
        subject_type = _subject_type(request.args.get("subject_type"))
        tree = builder.new_node("all")
        fields = {"name": "", "columns": "id\nemail" if subject_type == SubjectType.USER else "id\nname"}
        fields |= {"sort_by": "id", "direction": "asc"}
    with db() as session:
        context = builder_context(session, tree, subject_type)
    known = [
        *views.FIELDS[subject_type],
        "attributes.<name>",
        *sorted(p.name for p in computed_properties(subject_type)),
    ]
    return render(
        "automation/view_form.html",
        refusal.status if refusal else 200,
        **context,
        fields=fields,
        refusal=refusal,
        view_id=view_id,
        sort_fields=views.FIELDS[subject_type],
        known_columns=known,
    )


@bp.get("/<int:view_id>")
def show(view_id: int):
    page = request.args.get("page", "")
    offset = int(page) * ROWS_PAGE if page.isdigit() and len(page) < 12 else 0
    with refusals(), db() as session:
        view = views.get_view(session, workspace_id(), view_id)
        rows, next_offset = views.read_page(session, view, offset=offset, limit=ROWS_PAGE)
        count = views.count_view(session, view)
        shown = view_json(view)
    return render(
        "automation/view.html",
        view=shown,
        rows=[[views.cell_text(row.get(c)) for c in shown["columns"]] for row in rows],
        count=count,
        page=offset // ROWS_PAGE,
        more=next_offset is not None,
    )


@bp.get("/<int:view_id>/rows.csv")
def export(view_id: int):
    """Every row as CSV (a header of the columns first), streamed."""
    with refusals(), db() as session:
        view = views.get_view(session, workspace_id(), view_id)
    return Response(
        stream_with_context(views.csv_text(database().session, view)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="view-{view_id}.csv"'},
    )


@bp.post("/<int:view_id>/delete")
def delete(view_id: int):
    with refusals(), db() as session:
        views.delete_view(session, views.get_view(session, workspace_id(), view_id))
    return go(ws_url("ui_views.index"))
