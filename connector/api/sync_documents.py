"""Destinations, syncs, runs and run errors as the API shows them (JSON shaping only; reads are the services')."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.models import Destination, SyncRun, SyncRunError
from connector.security import SecretBox
from connector.syncs.connections import masked_config
from connector.syncs.history import COUNTS, SyncState


def destination_json(destination: Destination, box: SecretBox) -> dict[str, Any]:
    """A destination as the API shows it: secret options masked, never their values."""
    return {
        "id": destination.id,
        "name": destination.name,
        "type": destination.type,
        "config": masked_config(destination, box),
        "created_at": destination.created_at,
        "updated_at": destination.updated_at,
    }


def run_json(run: SyncRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "sync_id": run.sync_id,
        "status": run.status,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "heartbeat_at": run.heartbeat_at,
        "counts": {name: getattr(run, name) or 0 for name in COUNTS},
        "first_error": run.first_error,
    }


def sync_json(state: SyncState, next_run_time: datetime | None) -> dict[str, Any]:
    """A sync as the API shows it. ``status`` is ``running`` while a run holds the lease, else the last run's
    status (``never_run`` before the first)."""
    sync, last_run = state.sync, state.last_run
    return {
        "id": sync.id,
        "name": sync.name,
        "destination_id": sync.destination_id,
        "subject_type": sync.subject_type,
        "destination_object": sync.destination_object,
        "segment_ids": list(state.segment_ids),
        "mappings": sync.mappings,
        "identity": {"destination": (sync.identity or {}).get("destination")},
        "mode": sync.mode,
        "mirror_action": sync.mirror_action,
        "schedule": sync.schedule,
        "enabled": sync.enabled,
        "status": "running" if state.running else (last_run.status.value if last_run is not None else "never_run"),
        "last_run": run_json(last_run) if last_run is not None else None,
        "next_run_time": next_run_time,
        "created_at": sync.created_at,
        "updated_at": sync.updated_at,
    }


def run_error_json(error: SyncRunError) -> dict[str, Any]:
    return {
        "id": error.id,
        "subject_id": error.subject_id,
        "identity": error.identity,
        "kind": error.kind,
        "reason": error.reason,
    }
