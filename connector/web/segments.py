"""Segment pages: the list, the condition builder with live preview, a segment's members, explain, CSV in and out,
rename and delete. Every change goes through ``connector.segments.service`` / ``manual``, as the API's do."""

from __future__ import annotations

from typing import Any

from flask import Response, g, redirect, request, stream_with_context

from connector import directory, logins
from connector.models import SegmentKind, SubjectType
from connector.segments import exports, hq, manual, reads, service, sharing
from connector.segments import groups as segment_groups
from connector.web import builder
from connector.web.context import (
    can_administer,
    db,
    go,
    is_htmx,
    render,
    require_editor,
    workspace_blueprint,
    workspace_id,
    ws_url,
)
from connector.web.refusals import Refusal, refusals
from connector.web.workspaces import member, sync_children

bp = workspace_blueprint("ui_segments", "/segments")
MEMBERS_PAGE = 50


def _subject_type(value: str | None) -> SubjectType:
    return SubjectType.ACCOUNT if value in ("account", "accounts") else SubjectType.USER


@bp.get("")
def index():
    with db() as session:
        segments = service.list_segments(session, workspace_id())
        counts = service.member_counts(session, [s.id for s in segments])
        groups = {grp.id: grp.name for grp, _ in segment_groups.list_groups(session, workspace_id())}
        people = {s.created_by_id for s in segments} | {s.updated_by_id for s in segments}
        emails = logins.member_emails(session, g.workspace.company_id, people)
    return render("segments/index.html", segments=segments, counts=counts, groups=groups, emails=emails)


# -- the builder -----------------------------------------------------------------------------------------------------


def _builder_context(session, tree: dict[str, Any], subject_type: SubjectType, **extra: Any) -> dict[str, Any]:
    segments = [s for s in service.list_segments(session, workspace_id()) if s.id != extra.get("segment_id")]
    return {
        "tree": tree,
        "subject_type": subject_type,
        "user_segments": [s for s in segments if s.subject_type == SubjectType.USER],
        "account_segments": [s for s in segments if s.subject_type == SubjectType.ACCOUNT],
        "groups": segment_groups.list_groups(session, workspace_id()),
        "b": builder,
        "result": None,
        "preview_refusal": None,
        "can_sync": extra.get("segment_id") is None
        and can_administer()
        and bool(hq.child_workspaces(session, workspace_id())),
        **extra,
    }


@bp.route("/new", methods=["GET", "POST"])
def new():
    """A new segment: dynamic (the builder) or manual (a name and, optionally, a CSV of members)."""
    require_editor()
    form = request.form if request.method == "POST" else request.args
    subject_type = _subject_type(form.get("subject_type"))
    kind = SegmentKind.MANUAL if form.get("kind") == "manual" else SegmentKind.DYNAMIC
    tree = builder.tree_from_form(form) if request.method == "POST" else builder.new_node("all")
    fields = {"name": form.get("name", ""), "description": form.get("description", ""), "group_id": ""}
    fields["group_id"] = form.get("group_id", "")
    refusal = report = hq_report = None
    op = form.get("op", "")
    if request.method == "POST" and op == "save":
        try:
            with refusals(), db() as session:
                segment = service.create_segment(
                    session,
                    workspace_id(),
                    name=fields["name"],
                    subject_type=subject_type,
                    kind=kind,
                    conditions=tree if kind == SegmentKind.DYNAMIC else None,
                    description=fields["description"],
                    group_id=int(fields["group_id"]) if fields["group_id"].isdigit() else None,
                    member_id=g.member.id,
                )
                upload = request.files.get("file")
                if kind == SegmentKind.MANUAL and upload is not None and upload.filename:
                    report = manual.change_manual_members(
                        session, segment, manual.references_from_csv(upload.stream)
                    ).as_dict()
                if form.get("sync_to_children") == "on":
                    hq_report = sync_children(session, {"segments": [segment.id]})
                segment_id = segment.id
            if report is None and hq_report is None:
                return go(ws_url("ui_segments.show", segment_id=segment_id))
            if is_htmx():  # the builder's form is swapped by htmx: load the page, which cannot carry the report
                return go(ws_url("ui_workspaces.hq_syncs", opened=hq_report["id"]) + f"#past-{hq_report['id']}")
            return _show(segment_id, report=report, hq_report=hq_report)
        except Refusal as exc:
            refusal = exc
    elif op:
        tree = builder.apply(tree, op)
    with db() as session:
        context = _builder_context(
            session, tree, subject_type, kind=kind, fields=fields, refusal=refusal, segment_id=None
        )
    return _builder_page(context, op)


@bp.route("/<int:segment_id>/edit", methods=["GET", "POST"])
def edit(segment_id: int):
    require_editor()
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        if segment.kind != SegmentKind.DYNAMIC:
            return redirect(ws_url("ui_segments.show", segment_id=segment_id))
        subject_type = segment.subject_type
        fields = {"name": segment.name, "description": segment.description, "group_id": str(segment.group_id or "")}
        tree = segment.conditions or builder.new_node("all")
    refusal = None
    op = request.form.get("op", "")
    if request.method == "POST":
        tree = builder.tree_from_form(request.form)
        fields = {k: request.form.get(k, "") for k in fields}
        if op == "save":
            try:
                with refusals(), db() as session:
                    segment = service.get_segment(session, workspace_id(), segment_id)
                    service.update_segment(
                        session,
                        segment,
                        name=fields["name"],
                        description=fields["description"],
                        conditions=tree,
                        group_id=int(fields["group_id"]) if fields["group_id"].isdigit() else None,
                        member_id=g.member.id,
                    )
                return go(ws_url("ui_segments.show", segment_id=segment_id))
            except Refusal as exc:
                refusal = exc
        elif op:
            tree = builder.apply(tree, op)
    with db() as session:
        context = _builder_context(
            session,
            tree,
            subject_type,
            kind=SegmentKind.DYNAMIC,
            fields=fields,
            refusal=refusal,
            segment_id=segment_id,
        )
    return _builder_page(context, op)


def _builder_page(context: dict[str, Any], op: str):
    """The builder after an edit: only the form for htmx (and a nudge to the preview), else the whole page."""
    status = 422 if context["refusal"] else 200
    if is_htmx() and op:
        body, _ = render("segments/_builder.html", **context)
        return body, status, {"HX-Trigger": "previewRefresh"}
    if op == "preview" and context["kind"] == SegmentKind.DYNAMIC:
        context["result"], context["preview_refusal"] = _preview(
            context["tree"], context["subject_type"], context["segment_id"]
        )
    return render("segments/edit.html", status, **context)


def _preview(tree: dict[str, Any], subject_type: SubjectType, segment_id: int | None):
    try:
        with refusals(), db() as session:
            result = service.preview_segment(
                session, workspace_id(), subject_type=subject_type, conditions=tree, segment_id=segment_id
            )
        return result, None
    except Refusal as exc:
        return None, exc


@bp.post("/preview")
def preview():
    """The live preview: what the definition being edited matches now (and, when editing, who would enter/leave)."""
    subject_type = _subject_type(request.form.get("subject_type"))
    segment_id = request.form.get("segment_id", "")
    tree = builder.tree_from_form(request.form)
    result, refusal = _preview(tree, subject_type, int(segment_id) if segment_id.isdigit() else None)
    return render("segments/_preview.html", result=result, refusal=refusal)


# -- one segment -----------------------------------------------------------------------------------------------------


@bp.get("/<int:segment_id>")
def show(segment_id: int):
    return _show(segment_id)


def _show(
    segment_id: int,
    report: dict | None = None,
    refusal: Refusal | None = None,
    status: int = 200,
    hq_report: dict | None = None,
):
    search = request.args.get("search", "").strip()[:320]
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        count = service.member_counts(session, [segment.id])[segment.id]
        members, more = _member_page(session, segment, None, search)
        usages = service.find_usages(session, segment)
        emails = logins.member_emails(session, g.workspace.company_id, {segment.created_by_id, segment.updated_by_id})
        groups = segment_groups.list_groups(session, workspace_id())
        names = {s.id: s.name for s in service.list_segments(session, workspace_id())}
    return render(
        "segments/show.html",
        status,
        segment=segment,
        count=count,
        members=members,
        more=more,
        search=search,
        usages=usages,
        emails=emails,
        groups=groups,
        names=names,
        report=report,
        hq_report=hq_report,
        refusal=refusal,
    )


@bp.get("/<int:segment_id>/members")
def members(segment_id: int):
    """A page of members (htmx swaps it into the segment page; the search box and "more" link use it)."""
    search = request.args.get("search", "").strip()[:320]
    after = request.args.get("after", "")
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        rows, more = _member_page(session, segment, int(after) if after.isdigit() and len(after) < 19 else None, search)
    if not is_htmx():
        return redirect(ws_url("ui_segments.show", segment_id=segment_id, search=search or None))
    return render("segments/_members.html", segment=segment, members=rows, more=more, search=search)


def _member_page(session, segment, after: int | None, search: str):
    """A page of members and whether more follow."""
    rows = reads.member_page(session, segment, MEMBERS_PAGE + 1, after, search or None)
    return rows[:MEMBERS_PAGE], len(rows) > MEMBERS_PAGE


@bp.get("/<int:segment_id>/members.csv")
def export(segment_id: int):
    """Every member as CSV: the API's export, streamed."""
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        subject_type = segment.subject_type
    return Response(
        stream_with_context(exports.member_csv(db, segment_id, subject_type, [])),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="segment-{segment_id}.csv"'},
    )


@bp.get("/<int:segment_id>/explain")
def explain(segment_id: int):
    """Why one person (by email, external id or id) is or is not in the segment."""
    ref = request.args.get("person", "").strip()[:320]
    result = None
    message = None
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        subject = None
        if ref:
            if segment.subject_type == SubjectType.USER:
                by = "email" if "@" in ref else "id" if ref.isdigit() else "external_id"
                subject = directory.find_user(session, workspace_id(), by, ref) or (
                    directory.find_user(session, workspace_id(), "external_id", ref) if by == "id" else None
                )
            else:
                subject = directory.find_account(session, workspace_id(), "id" if ref.isdigit() else "external_id", ref)
            if subject is None:
                message = f"No one in this workspace is {ref!r}."
            else:
                result = service.explain_membership(session, segment, subject.id)
        else:
            message = "Type an email, external id or id."
        names = {s.id: s.name for s in service.list_segments(session, workspace_id())}
    template = "segments/_explain.html" if is_htmx() else "segments/explain.html"
    return render(template, segment=segment, result=result, message=message, ref=ref, names=names)


@bp.post("/<int:segment_id>/upload")
def upload(segment_id: int):
    """Add (or remove) members of a manual segment from a CSV; every row naming nobody is reported."""
    mode = "remove" if request.form.get("mode") == "remove" else "add"
    file = request.files.get("file")
    if file is None or not file.filename:
        return _show(segment_id, refusal=Refusal(422, "Choose a CSV file.", {"file": "choose a CSV file"}), status=422)
    try:
        with refusals(), db() as session:
            segment = service.get_segment(session, workspace_id(), segment_id)
            result = manual.change_manual_members(session, segment, manual.references_from_csv(file.stream, mode))
            report = result.as_dict()
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _show(segment_id, refusal=exc, status=exc.status)
    return _show(segment_id, report=report)


@bp.post("/<int:segment_id>/rename")
def rename(segment_id: int):
    try:
        with refusals(), db() as session:
            segment = service.get_segment(session, workspace_id(), segment_id)
            service.update_segment(session, segment, name=request.form.get("name", ""), member_id=g.member.id)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _show(segment_id, refusal=exc, status=exc.status)
    return redirect(ws_url("ui_segments.show", segment_id=segment_id))


@bp.post("/<int:segment_id>/delete")
def delete(segment_id: int):
    try:
        with refusals(), db() as session:
            sharing.delete_segment(session, member(session), service.get_segment(session, workspace_id(), segment_id))
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _show(segment_id, refusal=exc, status=exc.status)
    return redirect(ws_url("ui_segments.index"))
