"""Destinations: add HubSpot, webhook or file; edit (secrets write-only, masked once stored); test the connection.

The form is made from the type's options schema (``destination_types``): secret options are password fields that
are never filled in; left empty on an edit, the stored secret is kept (the API's mask rule). A failed check is shown
next to the option it concerns.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from connector.api import sync_documents
from connector.security import MASK, SecretBox
from connector.syncs import connections
from connector.syncs.connections import DestinationIn, DestinationPatch
from connector.web.context import db, go, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_destinations", "/destinations")


def _box() -> SecretBox:
    return SecretBox(current_app.config["SETTINGS"].secret_key)


def _types() -> dict[str, dict[str, Any]]:
    return {t["type"]: t for t in connections.destination_types()}


def _options(kind: dict[str, Any]) -> list[dict[str, Any]]:
    """The type's options as form fields: name, label, help, input kind, choices, required."""
    schema = kind["config_schema"]
    secrets = set(schema.get("secretFields", []))
    found = []
    for name, spec in schema.get("properties", {}).items():
        input_kind = "password" if name in secrets else "text"
        if "enum" in spec:
            input_kind = "select"
        elif spec.get("type") in ("array", "object"):
            input_kind = "json"
        elif spec.get("type") in ("integer", "number"):
            input_kind = "number"
        found.append(
            {
                "name": name,
                "label": spec.get("title", name),
                "help": spec.get("description", ""),
                "input": input_kind,
                "choices": spec.get("enum", []),
                "required": name in schema.get("required", []),
                "secret": name in secrets,
            }
        )
    return found


def _config_from_form(options: list[dict[str, Any]], editing: bool) -> dict[str, Any]:
    """The options the form gives: empty ones are left out (defaults apply; an empty secret keeps the stored one)."""
    config: dict[str, Any] = {}
    for option in options:
        raw = request.form.get(f"config.{option['name']}", "").strip()
        if not raw:
            if editing and option["secret"]:
                config[option["name"]] = MASK
            elif editing:
                config[option["name"]] = None
            continue
        if option["input"] == "json" or option["input"] == "number":
            try:
                config[option["name"]] = json.loads(raw)
            except ValueError:
                config[option["name"]] = raw
        else:
            config[option["name"]] = raw
    return config


def _shown(config: dict[str, Any]) -> dict[str, str]:
    """Stored options as the form shows them (JSON for lists and objects; secrets never)."""
    return {
        k: (json.dumps(v) if isinstance(v, list | dict) else "" if v is None or v == MASK else str(v))
        for k, v in config.items()
    }


def check_fields(error: str, options: list[dict[str, Any]]) -> dict[str, str]:
    """Which option a failed check is about: the secret for a refused credential, the address for a failed
    connection; else the form as a whole (key ``""``)."""
    lowered = error.lower()
    secret = next((o["name"] for o in options if o["secret"]), None)
    address = next((o["name"] for o in options if o["name"] in ("base_url", "url", "directory")), None)
    if secret and any(w in lowered for w in ("token", "401", "403", "unauthori", "credential", "secret", "scope")):
        return {f"config.{secret}": error}
    if address and any(w in lowered for w in ("connect", "answer", "resolve", "url", "host", "directory", "timed")):
        return {f"config.{address}": error}
    return {"": error}


@bp.get("")
def index():
    box = _box()
    with db() as session:
        destinations = connections.list_destinations(session, workspace_id())
        shown = {d.id: sync_documents.destination_json(d, box) for d in destinations}
    return render("destinations/index.html", destinations=destinations, shown=shown, types=_types())


@bp.route("/new", methods=["GET", "POST"])
def new():
    require_editor()
    types = _types()
    kind = types.get(request.values.get("type", "hubspot")) or types["hubspot"]
    options = _options(kind)
    values = {"name": request.form.get("name", "")}
    refusal = None
    if request.method == "POST":
        config = _config_from_form(options, editing=False)
        try:
            with refusals(), db() as session:
                data = DestinationIn(name=values["name"], type=kind["type"], config=config)
                destination_id = connections.create_destination(session, workspace_id(), _box(), data).id
            return go(ws_url("ui_destinations.show", destination_id=destination_id, saved=1))
        except Refusal as exc:
            refusal = exc
        values.update(_shown({k: v for k, v in config.items() if not _is_secret(options, k)}))
    return render(
        "destinations/form.html",
        422 if refusal else 200,
        kind=kind,
        types=types,
        options=options,
        values=values,
        refusal=refusal,
        destination=None,
        stored_secrets=set(),
        check=None,
    )


def _is_secret(options: list[dict[str, Any]], name: str) -> bool:
    return any(o["name"] == name and o["secret"] for o in options)


@bp.route("/<int:destination_id>", methods=["GET", "POST"])
def show(destination_id: int):
    """A destination's form: change it (POST) or look at it; ``check`` runs the connection test."""
    box = _box()
    types = _types()
    refusal = None
    check = None
    with refusals(), db() as session:
        destination = connections.get_destination(session, workspace_id(), destination_id)
        stored = sync_documents.destination_json(destination, box)
    kind = types.get(destination.type) or {"type": destination.type, "label": destination.type, "config_schema": {}}
    options = _options(kind)
    values = {"name": destination.name, **_shown(stored["config"])}
    stored_secrets = {k for k, v in stored["config"].items() if v == MASK}
    if request.method == "POST":
        values["name"] = request.form.get("name", "")
        config = _config_from_form(options, editing=True)
        try:
            with refusals(), db() as session:
                data = DestinationPatch(name=values["name"], config=config)
                destination = connections.update_destination(session, workspace_id(), destination_id, box, data)
                stored = sync_documents.destination_json(destination, box)
            values = {"name": destination.name, **_shown(stored["config"])}
            stored_secrets = {k for k, v in stored["config"].items() if v == MASK}
        except Refusal as exc:
            refusal = exc
            values.update(_shown({k: v for k, v in config.items() if not _is_secret(options, k)}))
    if refusal is None and (request.form.get("op") == "check" or request.args.get("check")):
        # The check talks to the outside world: outside any transaction.
        result = connections.check_destination(destination, box)
        check = {"ok": True} if result["ok"] else {"ok": False, "fields": check_fields(result["error"], options)}
    return render(
        "destinations/form.html",
        422 if refusal else 200,
        kind=kind,
        types=types,
        options=options,
        values=values,
        refusal=refusal,
        destination=destination,
        stored_secrets=stored_secrets,
        check=check,
        saved=request.args.get("saved") == "1" or (request.method == "POST" and refusal is None),
    )


@bp.post("/<int:destination_id>/delete")
def delete(destination_id: int):
    try:
        with refusals(), db() as session:
            connections.delete_destination(session, workspace_id(), destination_id)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return render("error.html", exc.status, status=exc.status, message=exc.message)
    return go(ws_url("ui_destinations.index"))
