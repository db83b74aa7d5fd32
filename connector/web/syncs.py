"""Syncs: create and edit (segment filter, field mappings against the destination's real properties, identity,
mode, schedule), run now, dry run, run history, and a run's page with its rejected and invalid records.

Saving goes through ``connector.syncs.definitions`` (then the scheduler is told, as the API does); runs start through
``connector.syncs.launch``; the destination's properties are read with ``connector.syncs.fields``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from connector.api.context import database
from connector.models import SubjectType
from connector.scheduling import notify_sync_changed, overview
from connector.security import SecretBox
from connector.segments import service as segments
from connector.syncs import connections, definitions, history, launch
from connector.syncs.definitions import SyncIn, SyncPatch
from connector.syncs.fields import destination_fields
from connector.web.context import db, go, is_htmx, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_syncs", "/syncs")
SOURCE_KINDS = ("attribute", "field", "computed", "constant")
FORMATS = ("", "text", "number", "bool", "date", "datetime")
BLANK_ROWS = 2
ERRORS_PAGE = 50


def _settings():
    return current_app.config["SETTINGS"]


def _box() -> SecretBox:
    return SecretBox(_settings().secret_key)


# -- the form --------------------------------------------------------------------------------------------------------


def _form_from_sync(sync, segment_ids: list[int]) -> dict[str, Any]:
    schedule = sync.schedule or {"kind": "manual"}
    rows = []
    for m in sync.mappings or []:
        source = m.get("source", {})
        rows.append(
            {
                "kind": source.get("kind", "attribute"),
                "source": str(source.get("value", "")) if source.get("kind") == "constant" else source.get("name", ""),
                "destination": m.get("destination", ""),
                "as": m.get("as") or "",
                "format": m.get("format") or "",
            }
        )
    return {
        "name": sync.name,
        "destination_id": str(sync.destination_id),
        "subject_type": "accounts" if sync.subject_type == SubjectType.ACCOUNT else "users",
        "destination_object": sync.destination_object,
        "segment_ids": [str(i) for i in segment_ids],
        "mappings": rows,
        "identity": (sync.identity or {}).get("destination", ""),
        "mode": sync.mode.value if hasattr(sync.mode, "value") else sync.mode,
        "mirror_action": sync.mirror_action or "clear",
        "schedule_kind": schedule.get("kind", "manual"),
        "minutes": str(schedule.get("minutes", "")),
        "expression": schedule.get("expression", ""),
        "timezone": schedule.get("timezone", ""),
        "enabled": bool(sync.enabled),
    }


def _form_from_request() -> dict[str, Any]:
    f = request.form
    rows = []
    indices = sorted({int(k[1:].split(".")[0]) for k in f if k.startswith("m") and k[1:].split(".")[0].isdigit()})
    for i in indices:
        rows.append(
            {name: f.get(f"m{i}.{name}", "").strip() for name in ("kind", "source", "destination", "as", "format")}
        )
    return {
        "name": f.get("name", ""),
        "destination_id": f.get("destination_id", ""),
        "subject_type": f.get("subject_type", "users"),
        "destination_object": f.get("destination_object", ""),
        "segment_ids": f.getlist("segment_ids"),
        "mappings": rows,
        "identity": f.get("identity", "").strip(),
        "mode": f.get("mode", "upsert"),
        "mirror_action": f.get("mirror_action", "clear"),
        "schedule_kind": f.get("schedule_kind", "manual"),
        "minutes": f.get("minutes", "").strip(),
        "expression": f.get("expression", "").strip(),
        "timezone": f.get("timezone", "").strip(),
        "enabled": f.get("enabled") == "on",
    }


def _blank_form() -> dict[str, Any]:
    return {
        "name": "",
        "destination_id": request.args.get("destination_id", ""),
        "subject_type": "users",
        "destination_object": "",
        "segment_ids": [],
        "mappings": [
            {"kind": "field", "source": "email", "destination": "email", "as": "", "format": ""},
            {"kind": "computed", "source": "Segments", "destination": "", "as": "multi_select", "format": ""},
        ],
        "identity": "email",
        "mode": "upsert",
        "mirror_action": "clear",
        "schedule_kind": "manual",
        "minutes": "",
        "expression": "",
        "timezone": "",
        "enabled": True,
    }


def _definition(form: dict[str, Any]) -> dict[str, Any]:
    """The sync as the service takes it; blank mapping rows are left out."""
    mappings = []
    for row in form["mappings"]:
        if not row["destination"] and not row["source"]:
            continue
        if row["kind"] == "constant":
            source: dict[str, Any] = {"kind": "constant", "value": row["source"]}
        else:
            source = {"kind": row["kind"], "name": row["source"]}
        mapping: dict[str, Any] = {"source": source, "destination": row["destination"]}
        if row["as"]:
            mapping["as"] = row["as"]
        if row["format"]:
            mapping["format"] = row["format"]
        mappings.append(mapping)
    kind = form["schedule_kind"]
    schedule: dict[str, Any] = {"kind": kind}
    if kind == "interval":
        schedule["minutes"] = int(form["minutes"]) if form["minutes"].isdigit() else form["minutes"]
    elif kind == "cron":
        schedule.update(expression=form["expression"], timezone=form["timezone"] or g.workspace.time_zone)
    definition: dict[str, Any] = {
        "name": form["name"],
        "destination_id": int(form["destination_id"]) if form["destination_id"].isdigit() else None,
        "subject_type": form["subject_type"],
        "destination_object": form["destination_object"],
        "segment_ids": [int(i) for i in form["segment_ids"] if i.isdigit()],
        "mappings": mappings,
        "identity": {"destination": form["identity"]},
        "mode": form["mode"],
        "schedule": schedule,
        "enabled": form["enabled"],
    }
    if form["mode"] == "mirror":
        definition["mirror_action"] = form["mirror_action"]
    return definition


def _form_page(form: dict[str, Any], refusal: Refusal | None, sync_id: int | None):
    """The create/edit form, with the chosen destination's objects and real properties."""
    with db() as session:
        destinations = connections.list_destinations(session, workspace_id())
        subject = SubjectType.ACCOUNT if form["subject_type"] in ("account", "accounts") else SubjectType.USER
        choices = [s for s in segments.list_segments(session, workspace_id()) if s.subject_type == subject]
    types = {t["type"]: t for t in connections.destination_types()}
    chosen = next((d for d in destinations if str(d.id) == form["destination_id"]), None)
    objects = types[chosen.type]["objects"] if chosen is not None and chosen.type in types else []
    if chosen is not None and objects and form["destination_object"] not in objects:
        form["destination_object"] = objects[0]
    fields = None
    if chosen is not None and form["destination_object"]:
        fields = destination_fields(chosen, _box(), form["destination_object"])
    blank = BLANK_ROWS + (BLANK_ROWS if request.form.get("op") == "more" else 0)
    while sum(1 for r in form["mappings"] if not r["destination"] and not r["source"]) < blank:
        form["mappings"].append({"kind": "attribute", "source": "", "destination": "", "as": "", "format": ""})
    return render(
        "syncs/form.html",
        422 if refusal else 200,
        form=form,
        refusal=refusal,
        sync_id=sync_id,
        destinations=destinations,
        objects=objects,
        fields=fields,
        segments=choices,
        source_kinds=SOURCE_KINDS,
        formats=FORMATS,
        partial=is_htmx(),
    )


@bp.get("")
def index():
    with db() as session:
        syncs = definitions.list_syncs(session, workspace_id())
        ids = [s.id for s in syncs]
        last = history.last_runs(session, ids)
        upcoming = overview.upcoming_runs(session, ids)
        running = history.running_sync_ids(session, ids)
        destinations = {d.id: d for d in connections.list_destinations(session, workspace_id())}
    return render(
        "syncs/index.html", syncs=syncs, last=last, upcoming=upcoming, running=running, destinations=destinations
    )


@bp.route("/new", methods=["GET", "POST"])
def new():
    require_editor()
    if request.method == "GET":
        return _form_page(_blank_form(), None, None)
    form = _form_from_request()
    if request.form.get("op") != "save":
        return _form_page(form, None, None)
    try:
        with refusals(), db() as session:
            sync_id = definitions.create_sync(session, workspace_id(), SyncIn.model_validate(_definition(form))).id
    except Refusal as exc:
        return _form_page(form, exc, None)
    notify_sync_changed(sync_id)
    return go(ws_url("ui_syncs.show", sync_id=sync_id))


@bp.route("/<int:sync_id>/edit", methods=["GET", "POST"])
def edit(sync_id: int):
    require_editor()
    if request.method == "GET":
        with refusals(), db() as session:
            sync = definitions.get_sync(session, workspace_id(), sync_id)
            form = _form_from_sync(sync, definitions.segment_ids_of(session, sync.id))
        return _form_page(form, None, sync_id)
    form = _form_from_request()
    if request.form.get("op") != "save":
        return _form_page(form, None, sync_id)
    try:
        with refusals(), db() as session:
            definitions.update_sync(session, workspace_id(), sync_id, SyncPatch.model_validate(_definition(form)))
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _form_page(form, exc, sync_id)
    notify_sync_changed(sync_id)
    return go(ws_url("ui_syncs.show", sync_id=sync_id))


# -- a sync, its runs ------------------------------------------------------------------------------------------------


def _show(sync_id: int, *, dry=None, refusal: Refusal | None = None, status: int = 200):
    with refusals(), db() as session:
        sync = definitions.get_sync(session, workspace_id(), sync_id)
        runs = history.list_runs(session, sync.id, 20, None)
        next_run = overview.upcoming_runs(session, [sync.id]).get(sync.id)
        running = sync.id in history.running_sync_ids(session, [sync.id])
        segment_ids = definitions.segment_ids_of(session, sync.id)
        names = {s.id: s.name for s in segments.list_segments(session, workspace_id())}
        destination = connections.get_destination(session, workspace_id(), sync.destination_id)
    return render(
        "syncs/show.html",
        status,
        sync=sync,
        runs=runs,
        next_run=next_run,
        running=running,
        segment_names=[names.get(i, f"#{i}") for i in segment_ids],
        destination=destination,
        dry=dry,
        refusal=refusal,
    )


@bp.get("/<int:sync_id>")
def show(sync_id: int):
    return _show(sync_id)


@bp.post("/<int:sync_id>/run")
def run_now(sync_id: int):
    try:
        with refusals():
            run = launch.start_run(database(), workspace_id(), sync_id, "ui", _settings().secret_key)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _show(sync_id, refusal=exc, status=exc.status)
    return go(ws_url("ui_syncs.run", sync_id=sync_id, run_id=run.id))


@bp.post("/<int:sync_id>/dry-run")
def dry_run(sync_id: int):
    with refusals():
        outcome = launch.dry_run(database(), workspace_id(), sync_id, "ui", _settings().secret_key)
    return _show(sync_id, dry=outcome)


@bp.post("/<int:sync_id>/delete")
def delete(sync_id: int):
    try:
        with refusals(), db() as session:
            definitions.delete_sync(session, workspace_id(), sync_id)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _show(sync_id, refusal=exc, status=exc.status)
    notify_sync_changed(sync_id)
    return go(ws_url("ui_syncs.index"))


@bp.get("/<int:sync_id>/runs/<int:run_id>")
def run(sync_id: int, run_id: int):
    """A run: status, counts, duration; its rejected and invalid records with reasons, a page at a time. While it
    runs, the progress part reloads itself every second (htmx) or with the page."""
    after = request.args.get("after", "")
    with refusals(), db() as session:
        sync = definitions.get_sync(session, workspace_id(), sync_id)
        found = history.get_run(session, sync.id, run_id)
        errors = history.list_run_errors(
            session, found.id, ERRORS_PAGE + 1, int(after) if after.isdigit() and len(after) < 19 else None
        )
    more = len(errors) > ERRORS_PAGE
    template = "syncs/_progress.html" if is_htmx() and request.args.get("part") == "progress" else "syncs/run.html"
    return render(template, sync=sync, run=found, errors=errors[:ERRORS_PAGE], more=more)
