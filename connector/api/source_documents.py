"""SQL sources, their models and runs as JSON documents (the API's shapes; the web UI reads the same)."""

from __future__ import annotations

from typing import Any

from connector.models import ModelKind, Source, SourceModel, SourceRun, SourceRunError


def source_json(source: Source) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "url": source.display_url,
        "schedule": source.schedule,
        "enabled": source.enabled,
        "created_at": source.created_at.isoformat(),
        "updated_at": source.updated_at.isoformat(),
    }


def model_json(model: SourceModel) -> dict[str, Any]:
    return {
        "id": model.id,
        "source_id": model.source_id,
        "name": model.name,
        "kind": ModelKind(model.kind).value,
        "query": model.query,
        "mapping": model.mapping,
        "cursor_column": model.cursor_column,
        "cursor": model.cursor_state,
        "deletes": model.deletes,
        "enabled": model.enabled,
    }


def source_run_json(run: SourceRun, errors: list[SourceRunError] | None = None) -> dict[str, Any]:
    body = {
        "id": run.id,
        "model_id": run.model_id,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "counts": {
            "rows_read": run.rows_read,
            "created": run.created,
            "changed": run.changed,
            "unchanged": run.unchanged,
            "invalid": run.invalid,
            "deleted": run.deleted,
        },
        "error": run.error,
    }
    if errors is not None:
        body["errors"] = [{"key": e.row_key, "reason": e.reason} for e in errors]
    return body
