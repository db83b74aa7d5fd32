"""Sequence pages (list, create / edit, enrolments, manual enrol and exit) and a user segment's daily action.

Every change goes through ``connector.automation.sequences`` / ``segment_actions``, as the API's
(``connector.api.automation``) does; a webhook secret is write-only: the form never shows it, and leaving it empty
keeps the stored one.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, request

from connector.api.automation_documents import action_json, action_run_json, enrolment_json, sequence_json
from connector.automation import segment_actions, sequences
from connector.automation.sequences import MAX_STEPS
from connector.models import SubjectType
from connector.scheduling import notify_sync_changed
from connector.scheduling.automation import next_segment_action_run
from connector.segments import service
from connector.web.context import db, go, render, require_editor, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_automation")
CHANNELS = ("email", "sms", "push", "whatsapp", "in_app")
STEP_ROWS = 5
ENROLMENTS_PAGE = 50


def _secret_key() -> str:
    return current_app.config["SETTINGS"].secret_key


def _sequence_form(form) -> dict[str, Any]:
    """The form as the service's input: blank step rows are left out, an empty secret keeps the stored one."""
    steps = []
    rows = form.get("step_rows", "")
    for i in range(min(int(rows), MAX_STEPS + 1) if rows.isdigit() and len(rows) < 6 else STEP_ROWS):
        name, delay = form.get(f"steps-{i}-name", "").strip(), form.get(f"steps-{i}-delay", "").strip()
        if name or delay:
            steps.append({"name": name, "delay_minutes": delay or "0"})
    return {
        "name": form.get("name", ""),
        "description": form.get("description", ""),
        "channels": [c for c in CHANNELS if form.get(f"channel-{c}")],
        "steps": steps,
        "webhook_url": form.get("webhook_url", "").strip() or None,
        "webhook_secret": form.get("webhook_secret", "") or None,
    }


@bp.get("/sequences")
def sequences_index():
    with db() as session:
        found = sequences.list_sequences(session, workspace_id())
    return render("automation/sequences.html", sequences=found)


@bp.route("/sequences/new", methods=["GET", "POST"])
def sequence_new():
    return _sequence_edit(None)


@bp.route("/sequences/<int:sequence_id>/edit", methods=["GET", "POST"])
def sequence_edit(sequence_id: int):
    return _sequence_edit(sequence_id)


def _sequence_edit(sequence_id: int | None):
    require_editor()
    refusal = None
    if request.method == "POST":
        data = _sequence_form(request.form)
        try:
            with refusals(), db() as session:
                current = sequences.get_sequence(session, workspace_id(), sequence_id) if sequence_id else None
                saved = sequences.save_sequence(session, workspace_id(), data, _secret_key(), current)
                saved_id = saved.id
            return go(ws_url("ui_automation.sequence_show", sequence_id=saved_id))
        except Refusal as exc:
            if exc.status == 404:
                raise
            refusal = exc
        values = {**data, "has_secret": False}
    elif sequence_id is not None:
        with refusals(), db() as session:
            sequence = sequences.get_sequence(session, workspace_id(), sequence_id)
            values = sequence_json(sequence) | {"has_secret": bool(sequence.secrets_encrypted)}
    else:
        values = {"name": "", "description": "", "channels": ["email"], "steps": [], "webhook_url": None}
        values["has_secret"] = False
    rows = max(STEP_ROWS, len(values["steps"]) + 1)
    steps = list(values["steps"]) + [{"name": "", "delay_minutes": ""}] * (min(rows, MAX_STEPS) - len(values["steps"]))
    return render(
        "automation/sequence_form.html",
        422 if refusal else 200,
        values=values,
        steps=steps,
        channels=CHANNELS,
        refusal=refusal,
        sequence_id=sequence_id,
    )


@bp.get("/sequences/<int:sequence_id>")
def sequence_show(sequence_id: int):
    return _sequence_show(sequence_id)


def _sequence_show(sequence_id: int, refusal: Refusal | None = None, notice: str | None = None, status: int = 200):
    state = request.args.get("state") if request.args.get("state") in ("active", "finished", "exited") else None
    after = request.args.get("after", "")
    with refusals(), db() as session:
        sequence = sequences.get_sequence(session, workspace_id(), sequence_id)
        found = sequences.list_enrolments(
            session,
            workspace_id(),
            sequence_id=sequence_id,
            state=state,
            after=int(after) if after.isdigit() and len(after) < 19 else None,
            limit=ENROLMENTS_PAGE + 1,
        )
        enrolments = [enrolment_json(e) for e in found[:ENROLMENTS_PAGE]]
        shown = sequence_json(sequence)
    return render(
        "automation/sequence.html",
        status,
        sequence=shown,
        enrolments=enrolments,
        more=enrolments[-1]["id"] if len(found) > ENROLMENTS_PAGE else None,
        state=state,
        channels=CHANNELS,
        refusal=refusal,
        notice=notice,
    )


@bp.post("/sequences/<int:sequence_id>/enrol")
def sequence_enrol(sequence_id: int):
    """Enrol people by id (one per line or comma-separated) on their channel or the fallback."""
    raw = request.form.get("user_ids", "").replace(",", " ").split()
    channel = request.form.get("fallback_channel", "")
    if not raw or not all(r.isdigit() and len(r) < 19 for r in raw) or len(raw) > 1000:
        reason = "give up to 1,000 person ids (numbers), separated by spaces, commas or lines"
        return _sequence_show(sequence_id, Refusal(422, "Some fields need attention.", {"user_ids": reason}), None, 422)
    if channel not in CHANNELS:
        return _sequence_show(
            sequence_id,
            Refusal(422, "Some fields need attention.", {"fallback_channel": "choose a channel"}),
            None,
            422,
        )
    try:
        with refusals(), db() as session:
            sequence = sequences.get_sequence(session, workspace_id(), sequence_id)
            sequences.check_channel(sequence, channel, "fallback_channel")
            ids = sorted({int(r) for r in raw})
            enrolled = sequences.enrol(session, sequence, ids, fallback_channel=channel, source="ui")
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _sequence_show(sequence_id, exc, None, exc.status)
    notify_sync_changed()
    skipped = len(ids) - len(enrolled)
    return _sequence_show(sequence_id, None, f"Enrolled {len(enrolled)}; {skipped} already enrolled or unknown.")


@bp.post("/sequences/<int:sequence_id>/enrolments/<int:enrolment_id>/exit")
def enrolment_exit(sequence_id: int, enrolment_id: int):
    try:
        with refusals(), db() as session:
            enrolment = sequences.get_enrolment(session, workspace_id(), enrolment_id)
            if enrolment.sequence_id != sequence_id:
                raise Refusal(404, "No such enrolment in this sequence.")
            sequences.exit_enrolment(session, workspace_id(), enrolment_id)
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _sequence_show(sequence_id, exc, None, exc.status)
    return go(ws_url("ui_automation.sequence_show", sequence_id=sequence_id))


@bp.post("/sequences/<int:sequence_id>/delete")
def sequence_delete(sequence_id: int):
    try:
        with refusals(), db() as session:
            sequences.delete_sequence(session, sequences.get_sequence(session, workspace_id(), sequence_id))
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _sequence_show(sequence_id, exc, None, exc.status)
    return go(ws_url("ui_automation.sequences_index"))


# -- a segment's daily action -------------------------------------------------------------------------------------


@bp.route("/segments/<int:segment_id>/action", methods=["GET", "POST"])
def segment_action(segment_id: int):
    """The segment's daily action: its settings, last and next run, and each run's enrolments."""
    refusal = notice = None
    if request.method == "POST":
        form = request.form
        data = {
            "sequence_id": form.get("sequence_id", ""),
            "time": form.get("time", ""),
            "timezone": form.get("timezone", "").strip(),
            "fallback_channel": form.get("fallback_channel", ""),
            "enabled": form.get("enabled") == "on",
        }
        if form.get("op") == "delete":
            try:
                with refusals(), db() as session:
                    action = segment_actions.get_segment_action(session, workspace_id(), segment_id)
                    segment_actions.delete_segment_action(session, action)
                notify_sync_changed()
                return go(ws_url("ui_automation.segment_action", segment_id=segment_id))
            except Refusal as exc:
                refusal = exc
        else:
            try:
                with refusals(), db() as session:
                    segment_actions.put_segment_action(session, workspace_id(), segment_id, data)
                notify_sync_changed()
                return go(ws_url("ui_automation.segment_action", segment_id=segment_id, saved=1))
            except Refusal as exc:
                if exc.status == 404 and not exc.fields:
                    raise
                refusal = exc
    elif request.args.get("saved"):
        notice = "Saved."
    with refusals(), db() as session:
        segment = service.get_segment(session, workspace_id(), segment_id)
        if segment.subject_type != SubjectType.USER:
            raise Refusal(404, "Only a user segment has a daily action.")
        try:
            with refusals():
                action = segment_actions.get_segment_action(session, workspace_id(), segment_id)
        except Refusal:
            action = None
        shown = runs = None
        if action is not None:
            shown = action_json(action, next_segment_action_run(action))
            if shown["next_run_at"] is not None:
                local = shown["next_run_at"].astimezone(ZoneInfo(action.timezone))
                shown["next_run_local"] = f"{local:%Y-%m-%d %H:%M} {action.timezone}"
            runs = []
            for run in segment_actions.list_runs(session, action):
                who = sequences.list_enrolments(
                    session, workspace_id(), source="segment_action", source_id=run.id, limit=20
                )
                runs.append(action_run_json(run) | {"who": [e.user_id for e in who]})
        all_sequences = [(s.id, s.name) for s in sequences.list_sequences(session, workspace_id())]
        segment_name = segment.name
    values = dict(request.form) if refusal else (shown or {"time": "09:00", "timezone": "UTC", "enabled": True})
    if refusal:
        values["enabled"] = request.form.get("enabled") == "on"
    return render(
        "automation/segment_action.html",
        refusal.status if refusal else 200,
        segment_id=segment_id,
        segment_name=segment_name,
        action=shown,
        runs=runs or [],
        values=values,
        sequences=all_sequences,
        channels=CHANNELS,
        refusal=refusal,
        notice=notice,
    )
