"""Pages across workspaces: the HQ sync dialog and past reports, a child's mapped values (HQ segment -> its
segment), a segment's sharing tab and a (shared) segment's evaluations. Each calls the service the API calls
(``connector.segments.hq``, ``mapping``, ``sharing``) with the same role checks: syncing, changing a mapping and
sharing are for workspace admins; reading is for every member of the workspace."""

from __future__ import annotations

from flask import g, request

from connector import logins
from connector.models import Member, SegmentKind, SubjectType
from connector.segments import groups as segment_groups
from connector.segments import hq, mapping, service, sharing
from connector.web.context import db, go, render, require_admin, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_workspaces")
MODES = {hq.Mode.UPDATE_EXISTING.value: "Update existing", hq.Mode.ONLY_WHERE_MISSING.value: "Only where missing"}


def form_ids(name: str) -> list[int]:
    """The ids a form's checkboxes (or one select) send under ``name``; anything else is refused beside the field."""
    values = request.form.getlist(name)
    if any(not v.isdigit() or len(v) > 18 for v in values):
        raise Refusal(422, "Some fields need attention.", {name: "must be ids of this page's choices"})
    return [int(v) for v in values]


def member(session) -> Member:
    return session.get(Member, g.member.id)


def sync_children(session, items: dict[str, list[int]], **options) -> dict:
    """Sync items of this (HQ) workspace to all its children, as ``POST .../hq-syncs`` does."""
    return hq.sync_to_children(session, member(session), g.access, items=items, **options)


# -- HQ syncs --------------------------------------------------------------------------------------------------------


@bp.route("/hq-syncs", methods=["GET", "POST"])
def hq_syncs():
    """The HQ sync dialog (an HQ's admins) and the reports of past syncs (a child sees its own part of them)."""
    chosen: dict[str, list[int]] = {"segments": [], "segment_groups": []}
    options = {"mode": hq.Mode.UPDATE_EXISTING.value, "include_group_segments": False, "dry_run": False}
    report = refusal = None
    if request.method == "POST":
        require_admin()
        form = request.form
        options = {
            "mode": form.get("mode", ""),
            "include_group_segments": form.get("include_group_segments") == "on",
            "dry_run": form.get("dry_run") == "on",
        }
        try:
            chosen = {key: form_ids(key) for key in chosen}
            if options["mode"] not in MODES:
                raise Refusal(
                    422, "Some fields need attention.", {"mode": "choose update existing or only where missing"}
                )
            with refusals(), db() as session:
                report = sync_children(session, chosen, **options)
        except Refusal as exc:
            if exc.status in (403, 404):
                raise
            refusal = exc
    with db() as session:
        children = hq.child_workspaces(session, workspace_id())
        segments = [s for s in service.list_segments(session, workspace_id()) if s.kind != SegmentKind.SHARED]
        groups = segment_groups.list_groups(session, workspace_id())
        past = hq.list_reports(session, workspace_id())
        emails = logins.member_emails(session, g.workspace.company_id, {r["created_by"] for r in past})
    return render(
        "hq/syncs.html",
        422 if refusal else 200,
        children=children,
        segments=segments,
        groups=groups,
        past=past,
        opened=request.args.get("opened", type=int),
        emails=emails,
        chosen=chosen,
        options=options,
        modes=MODES,
        report=report,
        refusal=refusal,
    )


# -- mapped values ---------------------------------------------------------------------------------------------------


@bp.get("/mapped-values/segments")
def mapped_segments():
    return _mapped_segments(saved=request.args.get("saved", type=int))


def _mapped_segments(refusal: Refusal | None = None, refused: int | None = None, saved: int | None = None):
    with db() as session:
        mappings = mapping.list_mappings(session, workspace_id())
        segments = [s for s in service.list_segments(session, workspace_id()) if s.kind != SegmentKind.SHARED]
    kinds = {s.id: s.subject_type for s in segments}
    return render(
        "hq/mapped_segments.html",
        refusal.status if refusal else 200,
        mappings=mappings,
        choices={
            m["hq_segment_id"]: [s for s in segments if s.subject_type == kinds.get(m["segment_id"])] for m in mappings
        },
        refusal=refusal,
        refused=refused,
        saved=saved,
    )


@bp.post("/mapped-values/segments/<int:hq_segment_id>")
def change_mapped_segment(hq_segment_id: int):
    """Point an HQ segment's mapping at another segment of this workspace (its admins)."""
    require_admin()
    try:
        (segment_id,) = form_ids("segment_id") or [0]
        with refusals(), db() as session:
            mapping.change_mapping(session, workspace_id(), hq_segment_id, segment_id, g.member.id)
    except (Refusal, ValueError) as exc:
        refusal = exc if isinstance(exc, Refusal) else Refusal(422, "Choose one segment.", {"segment_id": "choose one"})
        if refusal.status == 404:
            raise refusal from None
        return _mapped_segments(refusal, refused=hq_segment_id)
    return go(ws_url("ui_workspaces.mapped_segments", saved=hq_segment_id) + f"#mapping-{hq_segment_id}")


# -- sharing and evaluations -----------------------------------------------------------------------------------------


@bp.route("/segments/<int:segment_id>/sharing", methods=["GET", "POST"])
def segment_sharing(segment_id: int):
    """The workspaces this member may see, ticked where the segment is shared, and the count of hidden shares."""
    refusal, saved = None, False
    if request.method == "POST":
        require_admin()
        try:
            targets = form_ids("workspaces")
            with refusals(), db() as session:
                segment = service.get_segment(session, workspace_id(), segment_id)
                sharing.set_sharing(session, member(session), segment, targets)
            saved = True
        except Refusal as exc:
            if exc.status == 404:
                raise
            refusal = exc
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        state = sharing.sharing_of(session, member(session), segment)
    shareable = segment.subject_type == SubjectType.USER and segment.kind != SegmentKind.SHARED
    status = refusal.status if refusal else 200
    return render(
        "hq/sharing.html", status, segment=segment, state=state, shareable=shareable, refusal=refusal, saved=saved
    )


@bp.get("/segments/<int:segment_id>/evaluations")
def segment_evaluations(segment_id: int):
    """The evaluations that changed the segment's membership here: when, and its member count in this workspace."""
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        evaluations = sharing.shared_evaluations(session, segment)
        count = service.member_counts(session, [segment.id])[segment.id]
    return render("hq/evaluations.html", segment=segment, evaluations=evaluations, count=count)
