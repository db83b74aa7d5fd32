"""Playbook pages: the list, create / edit (trigger, conditions with the builder, actions), pause and resume (from
now, or catching up), and a playbook's firings with their result and error. Every change goes through
``connector.automation.playbooks``, as the API's (``connector.api.playbooks``) does; a webhook action's secret is
write-only (left empty, the stored one is kept)."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from connector.api.automation_documents import firing_json, playbook_json
from connector.automation import playbooks, sequences
from connector.automation.playbooks import MASK
from connector.models import SubjectType
from connector.scheduling import notify_sync_changed
from connector.segments import service
from connector.web import builder
from connector.web.context import db, go, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals
from connector.web.saved_views import builder_context

bp = workspace_blueprint("ui_playbooks", "/playbooks")
ACTION_TYPES = ("enrol", "set_attribute", "remove_attribute", "add_tag", "remove_tag", "webhook", "run_sync")
ACTION_ROWS = 3
FIRINGS_PAGE = 50
STATUSES = ("pending", "succeeded", "failed", "skipped", "suppressed")


def _action(form, i: int, editing: bool) -> dict[str, Any] | None:
    """Action row ``i`` of the form as the service's input (None when its type is left empty)."""
    kind = form.get(f"actions-{i}-type", "")
    if not kind:
        return None
    get = lambda name: form.get(f"actions-{i}-{name}", "").strip()  # noqa: E731
    if kind == "enrol":
        return {"type": kind, "sequence_id": get("sequence_id"), "fallback_channel": get("fallback_channel")}
    if kind == "set_attribute":
        return {"type": kind, "name": get("name"), "value": builder._scalar(get("value"), "")}
    if kind == "remove_attribute":
        return {"type": kind, "name": get("name")}
    if kind in ("add_tag", "remove_tag"):
        return {"type": kind, "tag": get("tag")}
    if kind == "webhook":
        secret = form.get(f"actions-{i}-secret", "")
        return {"type": kind, "url": get("url"), "secret": secret or (MASK if editing else "")}
    if kind == "run_sync":
        return {"type": kind, "sync_id": get("sync_id")}
    return {"type": kind}


def _form_data(form, editing: bool) -> dict[str, Any]:
    kind = form.get("trigger_kind", "enters")
    if kind == "schedule":
        trigger = {"kind": kind, "expression": form.get("expression", ""), "timezone": form.get("timezone", "UTC")}
    else:
        trigger = {"kind": kind, "segment_id": form.get("segment_id", "")}
    actions = [a for i in range(ACTION_ROWS) if (a := _action(form, i, editing)) is not None]
    tree = builder.tree_from_form(form)
    return {
        "name": form.get("name", ""),
        "subject_type": "account" if form.get("subject_type") == "account" else "user",
        "trigger": trigger,
        "conditions": tree if tree.get("children") or tree.get("type") not in builder.GROUPS else None,
        "actions": actions,
        "enabled": form.get("enabled") == "on",
    }


@bp.get("")
def index():
    with db() as session:
        found = [playbook_json(p) for p in playbooks.list_playbooks(session, workspace_id())]
        names = {s.id: s.name for s in service.list_segments(session, workspace_id())}
    return render("automation/playbooks.html", playbooks=found, names=names)


@bp.route("/new", methods=["GET", "POST"])
def new():
    return _edit(None)


@bp.route("/<int:playbook_id>/edit", methods=["GET", "POST"])
def edit(playbook_id: int):
    return _edit(playbook_id)


def _edit(playbook_id: int | None):
    require_editor()
    refusal = None
    if request.method == "POST":
        data = _form_data(request.form, playbook_id is not None)
        tree = builder.tree_from_form(request.form)
        op = request.form.get("op", "")
        if op == "save":
            try:
                with refusals(), db() as session:
                    current = playbooks.get_playbook(session, workspace_id(), playbook_id) if playbook_id else None
                    key = current_app.config["SETTINGS"].secret_key
                    saved_id = playbooks.save_playbook(session, workspace_id(), data, key, current).id
                notify_sync_changed()
                return go(ws_url("ui_playbooks.show", playbook_id=saved_id))
            except Refusal as exc:
                if exc.status == 404 and not exc.fields:
                    raise
                refusal = exc
        elif op:
            tree = builder.apply(tree, op)
    elif playbook_id is not None:
        with refusals(), db() as session:
            data = playbook_json(playbooks.get_playbook(session, workspace_id(), playbook_id))
        tree = data["conditions"] or builder.new_node("all")
    else:
        subject_type = "account" if request.args.get("subject_type") == "account" else "user"
        data = {"name": "", "subject_type": subject_type, "trigger": {"kind": "enters"}, "actions": []}
        data["enabled"] = True
        tree = builder.new_node("all")
    subject_type = SubjectType(data["subject_type"])
    actions = [{**a, "secret": ""} if a.get("type") == "webhook" else a for a in data["actions"] if isinstance(a, dict)]
    actions += [{"type": ""}] * (ACTION_ROWS - len(actions))
    with db() as session:
        context = builder_context(session, tree, subject_type)
        seqs = [(s.id, s.name) for s in sequences.list_sequences(session, workspace_id())]
    return render(
        "automation/playbook_form.html",
        refusal.status if refusal else 200,
        **context,
        data=data,
        actions=actions,
        action_types=ACTION_TYPES,
        sequences=seqs,
        channels=("email", "sms", "push", "whatsapp", "in_app"),
        refusal=refusal,
        playbook_id=playbook_id,
    )


@bp.get("/<int:playbook_id>")
def show(playbook_id: int):
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    after = request.args.get("after", "")
    with refusals(), db() as session:
        playbook = playbooks.get_playbook(session, workspace_id(), playbook_id)
        found = playbooks.list_firings(
            session,
            playbook,
            status=status,
            after=int(after) if after.isdigit() and len(after) < 19 else None,
            limit=FIRINGS_PAGE + 1,
        )
        firings = [firing_json(f) for f in found[:FIRINGS_PAGE]]
        shown = playbook_json(playbook)
        names = {s.id: s.name for s in service.list_segments(session, workspace_id())}
    return render(
        "automation/playbook.html",
        playbook=shown,
        firings=firings,
        more=firings[-1]["id"] if len(found) > FIRINGS_PAGE else None,
        status=status,
        statuses=STATUSES,
        names=names,
    )


@bp.post("/<int:playbook_id>/pause")
def pause(playbook_id: int):
    with refusals(), db() as session:
        playbooks.set_enabled(session, playbooks.get_playbook(session, workspace_id(), playbook_id), False)
    notify_sync_changed()
    return go(ws_url("ui_playbooks.show", playbook_id=playbook_id))


@bp.post("/<int:playbook_id>/resume")
def resume(playbook_id: int):
    """Resume from now, or (``catch_up`` ticked) fire for what happened while paused."""
    catch_up = request.form.get("catch_up") == "on"
    with refusals(), db() as session:
        playbook = playbooks.get_playbook(session, workspace_id(), playbook_id)
        playbooks.set_enabled(session, playbook, True, catch_up=catch_up)
    notify_sync_changed()
    return go(ws_url("ui_playbooks.show", playbook_id=playbook_id))


@bp.post("/<int:playbook_id>/delete")
def delete(playbook_id: int):
    with refusals(), db() as session:
        playbooks.delete_playbook(session, playbooks.get_playbook(session, workspace_id(), playbook_id))
    notify_sync_changed()
    return go(ws_url("ui_playbooks.index"))
