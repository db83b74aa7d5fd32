"""SQL sources, their models and runs, under ``/api/v1/workspaces/<workspace>/sources``.

A source's URL is answered with its password masked; checking a source or a model answers ``200`` either way
(``{"ok": true}`` or ``{"ok": false, ...}``): the request succeeded, the answer is what the source said.
``POST .../models/<id>/runs`` claims the model's lease in the request and runs it in a background thread (``202``
with the run; poll ``GET .../runs/<run_id>``); ``?wait=true`` runs it in the request (``200``, the finished run).
A run already going answers ``409``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from connector.api.common import MAX_ID, WorkspacePath, workspace_blueprint
from connector.api.context import database, unit_of_work, workspace_id
from connector.api.problems import ProblemError, conflict, not_found
from connector.api.source_documents import model_json, source_json, source_run_json
from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.scheduling import notify_sync_changed
from connector.scheduling.dispatch import SOURCE_RUN_JOB
from connector.security import SecretBox
from connector.sources import service
from connector.sources.config import ModelIn, ModelPatch, SourceIn, SourcePatch
from connector.sources.runs import execute_run, prepare_run

bp = workspace_blueprint("sources", "sources", "/sources")


def blueprints() -> list[APIBlueprint]:
    return [bp]


class SourcePath(WorkspacePath):
    source_id: int = Field(ge=1, le=MAX_ID)


class ModelPath(SourcePath):
    model_id: int = Field(ge=1, le=MAX_ID)


class RunPath(ModelPath):
    run_id: int = Field(ge=1, le=MAX_ID)


class RunStartQuery(BaseModel):
    wait: bool = Field(False, description="Run in the request and answer with the finished run")


class RunListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    before: int | None = Field(None, ge=1, le=MAX_ID, description="Runs older than this run id")


def _box() -> SecretBox:
    return SecretBox(current_app.config["SETTINGS"].secret_key)


@contextmanager
def _service_errors() -> Iterator[None]:
    """Service refusals as problem documents (field paths are in the request body)."""
    try:
        yield
    except InvalidError as exc:
        errors = exc.prefixed("body").errors
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        raise ProblemError(422, "Invalid request", detail, errors=errors) from None
    except NotFoundError as exc:
        raise not_found(exc.what) from None
    except ConflictError as exc:
        errors = [{**e, "field": f"body.{e['field']}"} for e in exc.errors]
        raise ProblemError(409, "Conflict", str(exc), errors=errors) from None
    except IntegrityError:
        raise conflict("the change conflicts with a concurrent one; read the current state and retry") from None


# -- sources -----------------------------------------------------------------------------------------------------


@bp.get("")
def list_sources(path: WorkspacePath):
    """The workspace's sources; URLs with their passwords masked."""
    with unit_of_work() as session:
        return {"data": [source_json(s) for s in service.list_sources(session, workspace_id())]}


@bp.post("")
def create_source(path: WorkspacePath, body: SourceIn):
    """Create a source from a SQLAlchemy URL (stored encrypted) and an optional schedule."""
    with _service_errors(), unit_of_work() as session:
        answer = source_json(service.create_source(session, workspace_id(), _box(), body))
    notify_sync_changed()  # the scheduler reconciles source jobs with sync jobs
    return answer, 201


@bp.get("/<int:source_id>")
def get_source(path: SourcePath):
    with _service_errors(), unit_of_work() as session:
        return source_json(service.get_source(session, workspace_id(), path.source_id))


@bp.patch("/<int:source_id>")
def update_source(path: SourcePath, body: SourcePatch):
    """Rename, re-point (a URL whose password is the mask keeps the stored one), reschedule, enable or disable."""
    with _service_errors(), unit_of_work() as session:
        answer = source_json(service.update_source(session, workspace_id(), path.source_id, _box(), body))
    notify_sync_changed()
    return answer


@bp.delete("/<int:source_id>")
def delete_source(path: SourcePath):
    """Delete a source, its models and their history (the data they wrote stays)."""
    with _service_errors(), unit_of_work() as session:
        service.delete_source(session, workspace_id(), path.source_id)
    notify_sync_changed()
    return "", 204


@bp.post("/<int:source_id>/check")
def check_source(path: SourcePath):
    """Connect: ``{"ok": true}`` or ``{"ok": false, "error": "..."}``."""
    with _service_errors(), unit_of_work() as session:
        source = service.get_source(session, workspace_id(), path.source_id)
    return service.check_source(source, _box())


# -- models ------------------------------------------------------------------------------------------------------


@bp.get("/<int:source_id>/models")
def list_models(path: SourcePath):
    with _service_errors(), unit_of_work() as session:
        return {"data": [model_json(m) for m in service.list_models(session, workspace_id(), path.source_id)]}


@bp.post("/<int:source_id>/models")
def create_model(path: SourcePath, body: ModelIn):
    """Add a model: a SELECT mapped to users, accounts, account links, events or object records."""
    with _service_errors(), unit_of_work() as session:
        return model_json(service.create_model(session, workspace_id(), path.source_id, body)), 201


@bp.get("/<int:source_id>/models/<int:model_id>")
def get_model(path: ModelPath):
    with _service_errors(), unit_of_work() as session:
        return model_json(service.get_model(session, workspace_id(), path.source_id, path.model_id))


@bp.patch("/<int:source_id>/models/<int:model_id>")
def update_model(path: ModelPath, body: ModelPatch):
    """Change a model; a new query or cursor column starts its cursor over."""
    with _service_errors(), unit_of_work() as session:
        model = service.update_model(session, workspace_id(), path.source_id, path.model_id, body)
        return model_json(model)


@bp.delete("/<int:source_id>/models/<int:model_id>")
def delete_model(path: ModelPath):
    with _service_errors(), unit_of_work() as session:
        service.delete_model(session, workspace_id(), path.source_id, path.model_id)
    return "", 204


@bp.post("/<int:source_id>/models/<int:model_id>/check")
def check_model(path: ModelPath):
    """Run the query for its columns only: ``{"ok": true, "columns": [...]}`` or the errors, by field."""
    with _service_errors(), unit_of_work() as session:
        source, model = service.source_and_model(session, workspace_id(), path.source_id, path.model_id)
    return service.check_model(source, model, _box())


# -- runs --------------------------------------------------------------------------------------------------------


@bp.post("/<int:source_id>/models/<int:model_id>/runs")
def start_run(path: ModelPath, query: RunStartQuery):
    """Run the model now: 202 and the run (running in the background), or with ``?wait=true`` 200 and its end."""
    db = database()
    with _service_errors():
        with unit_of_work() as session:
            service.get_model(session, workspace_id(), path.source_id, path.model_id)
        prepared = prepare_run(db, path.model_id, _box(), "api", workspace_id=workspace_id())
    dispatcher = current_app.extensions.get("connector.dispatcher")
    if query.wait:
        execute_run(db, prepared)
    elif dispatcher is not None:  # a broker is configured: a worker runs the claimed run
        dispatcher.enqueue(SOURCE_RUN_JOB, run_id=prepared.run_id)
    else:
        threading.Thread(target=execute_run, args=(db, prepared), name=f"source-run-{prepared.run_id}").start()
    with unit_of_work() as session:
        run = service.get_run(session, workspace_id(), path.source_id, path.model_id, prepared.run_id)
        return source_run_json(run, service.run_errors(session, run.id)), 200 if query.wait else 202


@bp.get("/<int:source_id>/models/<int:model_id>/runs")
def list_runs(path: ModelPath, query: RunListQuery):
    """The model's runs, newest first."""
    with _service_errors(), unit_of_work() as session:
        runs = service.list_runs(session, workspace_id(), path.source_id, path.model_id, query.limit, query.before)
        return {"data": [source_run_json(r) for r in runs]}


@bp.get("/<int:source_id>/models/<int:model_id>/runs/<int:run_id>")
def get_run(path: RunPath):
    """One run with its counts and its invalid rows (key and reason; the first 1,000)."""
    with _service_errors(), unit_of_work() as session:
        run = service.get_run(session, workspace_id(), path.source_id, path.model_id, path.run_id)
        return source_run_json(run, service.run_errors(session, run.id))
