"""Sources: add and edit a SQL source (its URL write-only, shown masked once stored), test the connection, add and
edit models (a SELECT mapped to users, accounts, account links, events or objects) with a column check, run a model
now, its run history and a run's invalid rows with their reasons.

The same services as ``connector/api/sources.py``: ``connector.sources.service`` for reads and writes, and
``prepare_run`` / ``execute_run`` to run a model (claimed in the request, run in a background thread).
"""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app, request

from connector.api.context import database
from connector.api.source_documents import model_json
from connector.scheduling import notify_sync_changed
from connector.security import SecretBox
from connector.sources import service
from connector.sources.config import ModelIn, ModelPatch, SourceIn, SourcePatch
from connector.sources.runs import execute_run, prepare_run
from connector.web.context import db, go, is_htmx, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_sources", "/sources")
KINDS = ("users", "accounts", "account_links", "events", "objects")
# The mapping's fields as the model form shows them: (name, label, help).
MAPPING_FIELDS = (
    ("external_id", "External id column", "users, accounts, objects"),
    ("email", "Email column", "users"),
    ("domain", "Domain column", "accounts"),
    ("name", "Name column", "accounts"),
    ("user_external_id", "User external id column", "account links, events, objects"),
    ("user_email", "User email column", "events, objects"),
    ("account_external_id", "Account external id column", "account links, events, objects"),
    ("message_id", "Message id column", "events: makes a row's event unique"),
    ("occurred_at", "Timestamp column", "events: when it happened"),
    ("event_name", "Event name column", "events (or one event name below)"),
    ("event", "Event name (one for every row)", "events"),
    ("object_type", "Object type (one for every row)", "objects"),
)
RUNS_SHOWN = 20


def _box() -> SecretBox:
    return SecretBox(current_app.config["SETTINGS"].secret_key)


def _schedule(form) -> dict[str, Any]:
    kind = form.get("schedule_kind", "manual")
    if kind == "interval":
        minutes = form.get("minutes", "").strip()
        return {"kind": "interval", "minutes": int(minutes) if minutes.isdigit() and len(minutes) < 9 else minutes}
    if kind == "cron":
        return {"kind": "cron", "expression": form.get("expression", ""), "timezone": form.get("timezone") or "UTC"}
    return {"kind": "manual"}


def _source_values(source=None) -> dict[str, Any]:
    if source is None:
        return {"name": "", "schedule_kind": "manual", "minutes": "", "expression": "", "timezone": "", "enabled": True}
    schedule = source.schedule or {"kind": "manual"}
    return {
        "name": source.name,
        "schedule_kind": schedule.get("kind", "manual"),
        "minutes": str(schedule.get("minutes", "")),
        "expression": schedule.get("expression", ""),
        "timezone": schedule.get("timezone", ""),
        "enabled": bool(source.enabled),
    }


def _source_values_from_form() -> dict[str, Any]:
    f = request.form
    return {
        "name": f.get("name", ""),
        "schedule_kind": f.get("schedule_kind", "manual"),
        "minutes": f.get("minutes", "").strip(),
        "expression": f.get("expression", "").strip(),
        "timezone": f.get("timezone", "").strip(),
        "enabled": f.get("enabled") == "on",
    }


# -- sources ---------------------------------------------------------------------------------------------------------


@bp.get("")
def index():
    with db() as session:
        sources = service.list_sources(session, workspace_id())
        models = {s.id: service.list_models(session, workspace_id(), s.id) for s in sources}
    return render("sources/index.html", sources=sources, models=models)


@bp.route("/new", methods=["GET", "POST"])
def new():
    require_editor()
    values, refusal = _source_values(), None
    if request.method == "POST":
        values = _source_values_from_form()
        try:
            with refusals(), db() as session:
                data = SourceIn(
                    name=values["name"],
                    url=request.form.get("url", ""),
                    schedule=_schedule(request.form),
                    enabled=values["enabled"],
                )
                source_id = service.create_source(session, workspace_id(), _box(), data).id
        except Refusal as exc:
            refusal = exc
        else:
            notify_sync_changed()
            return go(ws_url("ui_sources.show", source_id=source_id, saved=1))
    return render("sources/form.html", 422 if refusal else 200, source=None, values=values, refusal=refusal, check=None)


def _source_page(source_id: int, *, values=None, refusal=None, check=None, saved=False, model_check=None):
    with refusals(), db() as session:
        source = service.get_source(session, workspace_id(), source_id)
        models = service.list_models(session, workspace_id(), source_id)
        last = {m.id: next(iter(service.list_runs(session, workspace_id(), source_id, m.id, 1)), None) for m in models}
    return render(
        "sources/form.html",
        422 if refusal else 200,
        source=source,
        values=values or _source_values(source),
        refusal=refusal,
        check=check,
        saved=saved,
        models=models,
        last=last,
        model_check=model_check,
    )


@bp.route("/<int:source_id>", methods=["GET", "POST"])
def show(source_id: int):
    """A source's form: change it (POST; an empty URL keeps the stored one) or look at it; ``check`` connects."""
    if request.method == "GET" and not request.args.get("check"):
        return _source_page(source_id, saved=request.args.get("saved") == "1")
    values = None
    if request.method == "POST":
        values = _source_values_from_form()
        try:
            with refusals(), db() as session:
                data = SourcePatch(
                    name=values["name"],
                    url=request.form.get("url", "").strip() or None,
                    schedule=_schedule(request.form),
                    enabled=values["enabled"],
                )
                service.update_source(session, workspace_id(), source_id, _box(), data)
        except Refusal as exc:
            if exc.status == 404:
                raise
            return _source_page(source_id, values=values, refusal=exc)
        notify_sync_changed()
        values = None
    check = None
    if request.form.get("op") == "check" or request.args.get("check"):
        with refusals(), db() as session:
            source = service.get_source(session, workspace_id(), source_id)
            session.expunge(source)
        # Connecting talks to the outside world: outside any transaction.
        check = service.check_source(source, _box())
    return _source_page(source_id, values=values, check=check, saved=request.method == "POST")


@bp.post("/<int:source_id>/delete")
def delete(source_id: int):
    try:
        with refusals(), db() as session:
            service.delete_source(session, workspace_id(), source_id)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return render("error.html", exc.status, status=exc.status, message=exc.message)
    notify_sync_changed()
    return go(ws_url("ui_sources.index"))


# -- models ----------------------------------------------------------------------------------------------------------


def _model_values(model=None) -> dict[str, Any]:
    if model is None:
        return {"name": "", "kind": "users", "query": "", "cursor_column": "", "deletes": "none", "enabled": True,
                "mapping": {}, "attributes": ""}  # fmt: skip
    mapping = dict(model.mapping or {})
    attributes = mapping.pop("attributes", None)
    return {
        "name": model.name,
        "kind": model_json(model)["kind"],
        "query": model.query,
        "cursor_column": model.cursor_column or "",
        "deletes": model.deletes,
        "enabled": bool(model.enabled),
        "mapping": {k: v for k, v in mapping.items() if v is not None},
        "attributes": ", ".join(attributes) if attributes is not None else "",
    }


def _model_values_from_form() -> dict[str, Any]:
    f = request.form
    return {
        "name": f.get("name", ""),
        "kind": f.get("kind", "users"),
        "query": f.get("query", ""),
        "cursor_column": f.get("cursor_column", "").strip(),
        "deletes": f.get("deletes", "none"),
        "enabled": f.get("enabled") == "on",
        "mapping": {name: f.get(f"mapping.{name}", "").strip() for name, _, _ in MAPPING_FIELDS},
        "attributes": f.get("attributes", "").strip(),
    }


def _model_body(values: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = {k: v for k, v in values["mapping"].items() if v}
    if values["attributes"]:
        mapping["attributes"] = [c.strip() for c in values["attributes"].split(",") if c.strip()]
    return {
        "name": values["name"],
        "kind": values["kind"],
        "query": values["query"],
        "mapping": mapping,
        "cursor_column": values["cursor_column"] or None,
        "deletes": values["deletes"],
        "enabled": values["enabled"],
    }


def _model_form(source_id: int, model, values, refusal=None, check=None):
    with refusals(), db() as session:
        source = service.get_source(session, workspace_id(), source_id)
    return render(
        "sources/model.html",
        422 if refusal else 200,
        source=source,
        model=model,
        values=values,
        refusal=refusal,
        check=check,
        kinds=KINDS,
        mapping_fields=MAPPING_FIELDS,
    )


@bp.route("/<int:source_id>/models/new", methods=["GET", "POST"])
def new_model(source_id: int):
    require_editor()
    if request.method == "GET":
        return _model_form(source_id, None, _model_values())
    values = _model_values_from_form()
    try:
        with refusals(), db() as session:
            body = ModelIn.model_validate(_model_body(values))
            model_id = service.create_model(session, workspace_id(), source_id, body).id
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _model_form(source_id, None, values, exc)
    return go(ws_url("ui_sources.model", source_id=source_id, model_id=model_id, check=1))


@bp.route("/<int:source_id>/models/<int:model_id>", methods=["GET", "POST"])
def model(source_id: int, model_id: int):
    """A model's form, its column check (``check``), and its runs."""
    refusal = None
    if request.method == "POST":
        values = _model_values_from_form()
        try:
            with refusals(), db() as session:
                body = ModelPatch.model_validate(_model_body(values))
                service.update_model(session, workspace_id(), source_id, model_id, body)
        except Refusal as exc:
            if exc.status == 404:
                raise
            refusal = exc
    with refusals(), db() as session:
        source, found = service.source_and_model(session, workspace_id(), source_id, model_id)
        runs = service.list_runs(session, workspace_id(), source_id, model_id, RUNS_SHOWN)
        session.expunge_all()
    check = None
    if refusal is None and (request.form.get("op") == "check" or request.args.get("check")):
        check = service.check_model(source, found, _box())
    return render(
        "sources/model.html",
        422 if refusal else 200,
        source=source,
        model=found,
        values=_model_values_from_form() if refusal else _model_values(found),
        refusal=refusal,
        check=check,
        check_fields={e["field"]: e["reason"] for e in (check or {}).get("errors", [])},
        kinds=KINDS,
        mapping_fields=MAPPING_FIELDS,
        runs=runs,
        saved=request.method == "POST" and refusal is None,
    )


@bp.post("/<int:source_id>/models/<int:model_id>/delete")
def delete_model(source_id: int, model_id: int):
    try:
        with refusals(), db() as session:
            service.delete_model(session, workspace_id(), source_id, model_id)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return render("error.html", exc.status, status=exc.status, message=exc.message)
    return go(ws_url("ui_sources.show", source_id=source_id))


@bp.post("/<int:source_id>/models/<int:model_id>/run")
def run_now(source_id: int, model_id: int):
    """Claim a run in the request (a run already going is refused), run it in the background, show its page."""
    try:
        with refusals():
            with db() as session:
                service.get_model(session, workspace_id(), source_id, model_id)
            prepared = prepare_run(database(), model_id, _box(), "ui", workspace_id=workspace_id())
    except Refusal as exc:
        if exc.status == 404:
            raise
        return render("error.html", exc.status, status=exc.status, message=exc.message)
    thread = threading.Thread(
        target=execute_run, args=(database(), prepared), name=f"source-run-{prepared.run_id}", daemon=True
    )
    thread.start()
    return go(ws_url("ui_sources.run", source_id=source_id, model_id=model_id, run_id=prepared.run_id))


@bp.get("/<int:source_id>/models/<int:model_id>/runs/<int:run_id>")
def run(source_id: int, model_id: int, run_id: int):
    """A run: status, counts and its invalid rows with their reasons. While it runs, its part reloads (htmx)."""
    with refusals(), db() as session:
        source, found = service.source_and_model(session, workspace_id(), source_id, model_id)
        run = service.get_run(session, workspace_id(), source_id, model_id, run_id)
        errors = service.run_errors(session, run.id)
        session.expunge_all()
    part = is_htmx() and request.args.get("part") == "progress"
    template = "sources/_run.html" if part else "sources/run.html"
    return render(template, source=source, model=found, run=run, errors=errors)
