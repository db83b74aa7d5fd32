"""Destinations, syncs, runs and their errors, under ``/api/v1/workspaces/<workspace>``.

Runs: ``POST .../syncs/<id>/runs`` claims the sync's lease in the request and runs the sync in the background
(``scheduling.runs``: on the scheduler's executor when it runs in this process), answering ``202`` with the run
(poll ``GET .../runs/<run_id>``); ``?wait=true`` runs it in the request and answers ``200`` with the finished run.
A run already in progress answers ``409`` naming it (the refused attempt is recorded as a ``skipped`` run).
``POST .../dry-run`` answers the plan: counts and sample payloads, nothing sent.

Checking a destination answers ``200`` either way: ``{"ok": true}`` or ``{"ok": false, "error": ...}``; the
request itself succeeded, the answer is what the destination said.
"""

from __future__ import annotations

from flask import current_app, url_for
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field

from connector.api.common import WorkspacePath, decode_id_cursor, encode_cursor, workspace_blueprint
from connector.api.context import database, unit_of_work, workspace_id
from connector.api.problems import concurrent_change, conflict
from connector.api.sync_documents import destination_json, run_error_json, run_json, sync_json
from connector.models import RunStatus
from connector.scheduling import notify_sync_changed
from connector.scheduling.overview import sync_overview, sync_overviews
from connector.scheduling.runs import start_claimed_run
from connector.security import SecretBox
from connector.syncs import connections, definitions, history
from connector.syncs.connections import DestinationIn, DestinationPatch
from connector.syncs.definitions import SyncIn, SyncPatch
from connector.syncs.engine import execute_run, run_sync
from connector.syncs.inputs import MAX_ID
from connector.syncs.locks import claim_run

bp = workspace_blueprint("syncs", "syncs")


def blueprints() -> list[APIBlueprint]:
    return [bp]


class DestinationPath(WorkspacePath):
    destination_id: int = Field(ge=1, le=MAX_ID)


class SyncPath(WorkspacePath):
    sync_id: int = Field(ge=1, le=MAX_ID)


class RunPath(SyncPath):
    run_id: int = Field(ge=1, le=MAX_ID)


class PageQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")


class RunStartQuery(BaseModel):
    wait: bool = Field(False, description="Run in the request and answer with the finished run")


def _box() -> SecretBox:
    return SecretBox(current_app.config["SETTINGS"].secret_key)


def _service_errors():
    """A concurrent change as a conflict (the services' own refusals are translated by ``api.problems``)."""
    return concurrent_change("the change conflicts with a concurrent one; read the current state and retry")


# -- destinations ------------------------------------------------------------------------------------------------


@bp.get("/destination-types")
def list_destination_types(path: WorkspacePath):
    """The installed destination types, their objects and their options (JSON schema; ``secretFields``)."""
    return {"data": connections.destination_types()}


@bp.get("/destinations")
def list_destinations(path: WorkspacePath):
    """The workspace's destinations; secret options are masked."""
    box = _box()
    with unit_of_work() as session:
        return {"data": [destination_json(d, box) for d in connections.list_destinations(session, workspace_id())]}


@bp.post("/destinations")
def create_destination(path: WorkspacePath, body: DestinationIn):
    """Create a destination; its options are validated by its type (secret ones are stored encrypted)."""
    box = _box()
    with _service_errors(), unit_of_work() as session:
        destination = connections.create_destination(session, workspace_id(), box, body)
        return destination_json(destination, box), 201


@bp.get("/destinations/<int:destination_id>")
def get_destination(path: DestinationPath):
    box = _box()
    with _service_errors(), unit_of_work() as session:
        return destination_json(connections.get_destination(session, workspace_id(), path.destination_id), box)


@bp.patch("/destinations/<int:destination_id>")
def update_destination(path: DestinationPath, body: DestinationPatch):
    """Rename a destination or change its options (a merge patch; a secret sent back masked is kept)."""
    box = _box()
    with _service_errors(), unit_of_work() as session:
        destination = connections.update_destination(session, workspace_id(), path.destination_id, box, body)
        return destination_json(destination, box)


@bp.delete("/destinations/<int:destination_id>")
def delete_destination(path: DestinationPath):
    """Delete a destination; refused (409) while syncs use it."""
    with _service_errors(), unit_of_work() as session:
        connections.delete_destination(session, workspace_id(), path.destination_id)
    return "", 204


@bp.post("/destinations/<int:destination_id>/check")
def check_destination(path: DestinationPath):
    """Test the connection and credentials: ``{"ok": true}`` or ``{"ok": false, "error": "..."}``."""
    with _service_errors(), unit_of_work() as session:
        destination = connections.get_destination(session, workspace_id(), path.destination_id)
    # The check talks to the outside world: outside any transaction.
    return connections.check_destination(destination, _box())


# -- syncs -------------------------------------------------------------------------------------------------------


def _after_save(sync_id: int) -> dict:
    """Once the change is committed: bring the scheduler's job in step (at once when it runs in this process;
    other processes reconcile within 30 s), then answer with the sync as it now stands, next run included."""
    notify_sync_changed(sync_id)
    with unit_of_work() as session:
        return sync_json(*sync_overview(session, workspace_id(), sync_id))


@bp.get("/syncs")
def list_syncs(path: WorkspacePath):
    """The workspace's syncs, each with its last run and next scheduled run."""
    with unit_of_work() as session:
        return {"data": [sync_json(state, next_run) for state, next_run in sync_overviews(session, workspace_id())]}


@bp.post("/syncs")
def create_sync(path: WorkspacePath, body: SyncIn):
    """Create a sync: subjects (segment filter), field mappings, identity, mode and schedule."""
    with _service_errors(), unit_of_work() as session:
        sync_id = definitions.create_sync(session, workspace_id(), body).id
    return _after_save(sync_id), 201


@bp.get("/syncs/<int:sync_id>")
def get_sync(path: SyncPath):
    """A sync with its status, last run and next scheduled run (null when the scheduler has none)."""
    with unit_of_work() as session:
        return sync_json(*sync_overview(session, workspace_id(), path.sync_id))


@bp.patch("/syncs/<int:sync_id>")
def update_sync(path: SyncPath, body: SyncPatch):
    """Change a sync; a new destination, object, subject type or identity makes the next run send everything."""
    with _service_errors(), unit_of_work() as session:
        sync_id = definitions.update_sync(session, workspace_id(), path.sync_id, body).id
    return _after_save(sync_id)


@bp.delete("/syncs/<int:sync_id>")
def delete_sync(path: SyncPath):
    """Delete a sync and its history; refused (409) while it runs."""
    with _service_errors(), unit_of_work() as session:
        definitions.delete_sync(session, workspace_id(), path.sync_id)
    notify_sync_changed(path.sync_id)
    return "", 204


# -- runs --------------------------------------------------------------------------------------------------------


@bp.post("/syncs/<int:sync_id>/runs")
def start_run(path: SyncPath, query: RunStartQuery):
    """Run a sync now: 202 with the running run (it goes on in the background), or 200 when ``wait=true``."""
    with _service_errors(), unit_of_work() as session:
        sync = definitions.get_sync(session, workspace_id(), path.sync_id)
        run = claim_run(session, sync.id, "api")
        session.flush()
        document = run_json(run)
    if run.status == RunStatus.SKIPPED:
        raise conflict(document["first_error"] or "a run of this sync is in progress", run=document)
    db, secret_key = database(), current_app.config["SETTINGS"].secret_key
    if query.wait:
        execute_run(db, run.id, sync.id, "api", secret_key=secret_key)
        with unit_of_work() as session:
            return run_json(history.get_run(session, sync.id, run.id))
    start_claimed_run(db, run.id, sync.id, "api", secret_key=secret_key)
    location = url_for(".get_run", workspace=path.workspace, sync_id=sync.id, run_id=run.id)
    return document, 202, {"Location": location}


@bp.post("/syncs/<int:sync_id>/dry-run")
def dry_run(path: SyncPath):
    """What a run would send now: counts and up to 10 sample payloads. Sends nothing, changes no record state."""
    with _service_errors(), unit_of_work() as session:
        sync = definitions.get_sync(session, workspace_id(), path.sync_id)
    outcome = run_sync(database(), sync.id, "api", dry_run=True, secret_key=current_app.config["SETTINGS"].secret_key)
    with unit_of_work() as session:
        document = run_json(history.get_run(session, sync.id, outcome.run_id))
    document["samples"] = outcome.samples
    return document


@bp.get("/syncs/<int:sync_id>/runs")
def list_runs(path: SyncPath, query: PageQuery):
    """The sync's runs, newest first."""
    before = decode_id_cursor(query.cursor, "before")
    with _service_errors(), unit_of_work() as session:
        sync = definitions.get_sync(session, workspace_id(), path.sync_id)
        runs = history.list_runs(session, sync.id, query.limit + 1, before)
        more = len(runs) > query.limit
        runs = runs[: query.limit]
        return {
            "data": [run_json(r) for r in runs],
            "next_cursor": encode_cursor({"before": runs[-1].id}) if more else None,
        }


@bp.get("/syncs/<int:sync_id>/runs/<int:run_id>")
def get_run(path: RunPath):
    """One run: status, times, counts, first error."""
    with _service_errors(), unit_of_work() as session:
        sync = definitions.get_sync(session, workspace_id(), path.sync_id)
        return run_json(history.get_run(session, sync.id, path.run_id))


@bp.get("/syncs/<int:sync_id>/runs/<int:run_id>/errors")
def list_run_errors(path: RunPath, query: PageQuery):
    """The records of a run that were invalid, rejected (with the destination's reason) or left unsent."""
    after = decode_id_cursor(query.cursor, "after")
    with _service_errors(), unit_of_work() as session:
        sync = definitions.get_sync(session, workspace_id(), path.sync_id)
        run = history.get_run(session, sync.id, path.run_id)
        errors = history.list_run_errors(session, run.id, query.limit + 1, after)
        more = len(errors) > query.limit
        errors = errors[: query.limit]
        return {
            "data": [run_error_json(e) for e in errors],
            "next_cursor": encode_cursor({"after": errors[-1].id}) if more else None,
        }
