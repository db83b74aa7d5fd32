"""What each sync last prepared at its destination, kept in the database (``sync_preparations``).

A run prepares its destination (creates missing fields and options) only when the write plan differs from the one
recorded for the sync, or the destination's schema version changed since: a new segment name or mapping, an edited
destination (``updated_at``), a new version of the destination type's preparation (``schema_version``). The record
is shared by every process (API, scheduler, CLI), so a CLI run with one change spends no setup request.

Multi-select options follow the plan: a choice the previous plan made sure of and the new one does not (a deleted
or renamed segment) is *retired*; once no record of any sync on the destination holds it and no other sync's plan
uses it, the engine asks the destination to drop the option (``retired_unheld``, ``drop_retired``).

``Preparer`` is what a run uses: it checks the record, prepares with each request retried alone by the run's
policy (when the destination routes its requests through it; else the whole preparation is retried), records the
result, and drops unheld retired options after a complete run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.db import Database
from connector.destinations import ConfigError, WritePlan
from connector.destinations import Destination as DestinationPlugin
from connector.models import Destination, Sync, SyncPreparation, SyncRecord, utcnow
from connector.syncs.retry import RetryPolicy

log = logging.getLogger(__name__)


def fingerprint(plan: WritePlan) -> str:
    """SHA-256 of the plan's canonical JSON: equal plans, equal fingerprints, in any process."""
    document = asdict(plan)
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=list).encode()).hexdigest()


def schema_version(destination: Destination, plugin: DestinationPlugin) -> str:
    """The destination's schema version: its type's preparation version and when its options last changed."""
    changed = destination.updated_at or destination.created_at
    return f"{plugin.type}/{plugin.schema_version}/{changed.isoformat() if changed else '-'}"[:200]


def is_prepared(session: Session, sync_id: int, plan_hash: str, version: str) -> bool:
    row = session.get(SyncPreparation, sync_id)
    return row is not None and row.plan_hash == plan_hash and row.schema_version == version


def _options(plan: WritePlan) -> dict[str, list[str]]:
    return {spec.name: list(spec.options) for spec in plan.fields if spec.kind == "multi_select"}


def record_prepared(
    session: Session, sync_id: int, destination_id: int, plan: WritePlan, plan_hash: str, version: str
) -> None:
    """Remember that the destination is prepared for ``plan``; choices the previous plan had for a field this one
    still writes, and this one no longer has, become retired."""
    options = _options(plan)
    row = session.get(SyncPreparation, sync_id)
    if row is None:
        row = SyncPreparation(sync_id=sync_id, destination_id=destination_id, options={}, retired={})
        session.add(row)
    retired = {field: set(choices) for field, choices in (row.retired or {}).items()}
    for field, old in (row.options or {}).items():
        if field in options:
            retired.setdefault(field, set()).update(set(old) - set(options[field]))
    row.retired = {
        field: sorted(choices - set(options.get(field, ())))
        for field, choices in retired.items()
        if field in options and choices - set(options[field])
    }
    row.destination_id, row.plan_hash, row.schema_version = destination_id, plan_hash, version
    row.options, row.prepared_at = options, utcnow()
    session.flush()


def forget(session: Session, sync_id: int) -> None:
    """Prepare again at the next run (the destination refused its configuration or a record: check it again).
    Retired choices are kept, so they are still dropped once unheld."""
    row = session.get(SyncPreparation, sync_id)
    if row is not None:
        row.plan_hash = ""
        session.flush()


def retired_unheld(session: Session, sync_id: int, encode: Callable[[Sequence[str]], str]) -> dict[str, list[str]]:
    """The sync's retired choices, by field, that may go now: no other sync on the destination writes them and no
    record of any sync on the destination holds them (its acknowledged payload's value, encoded by ``encode``,
    e.g. HubSpot's ``a;b``, names them)."""
    row = session.get(SyncPreparation, sync_id)
    if row is None or not row.retired:
        return {}
    in_use: dict[str, set[str]] = {}
    others = session.scalars(
        select(SyncPreparation.options).where(
            SyncPreparation.destination_id == row.destination_id, SyncPreparation.sync_id != sync_id
        )
    )
    for options in others:
        for field, choices in (options or {}).items():
            in_use.setdefault(field, set()).update(choices)
    syncs = select(Sync.id).where(Sync.destination_id == row.destination_id).scalar_subquery()
    unheld: dict[str, list[str]] = {}
    for field, choices in row.retired.items():
        candidates = [c for c in choices if c not in in_use.get(field, set())]
        if not candidates:
            continue
        value = SyncRecord.payload[field].as_string()
        held: set[str] = set()
        for text in session.scalars(select(value).where(SyncRecord.sync_id.in_(syncs), value.is_not(None)).distinct()):
            held.update(text.split(";"))
        free = [c for c in candidates if encode([c]) not in held]
        if free:
            unheld[field] = free
    return unheld


def drop_retired(session: Session, sync_id: int, dropped: dict[str, list[str]]) -> None:
    """The destination dropped these options: they are no longer retired."""
    row = session.get(SyncPreparation, sync_id)
    if row is None:
        return
    retired = {
        field: [c for c in choices if c not in set(dropped.get(field, ()))] for field, choices in row.retired.items()
    }
    row.retired = {field: choices for field, choices in retired.items() if choices}
    session.flush()


class Preparer:
    """Preparation for one run of a sync: ``answered`` wraps each destination call (the run's rate-limiter
    tracking); every method opens its own short transaction."""

    def __init__(
        self,
        db: Database,
        sync_id: int,
        destination_id: int,
        version: str,
        plugin: DestinationPlugin,
        retry: RetryPolicy,
        answered: Callable[[Callable[..., Any]], Callable[..., Any]],
    ) -> None:
        self.db, self.sync_id, self.destination_id, self.version = db, sync_id, destination_id, version
        self.plugin, self.retry, self.answered = plugin, retry, answered

    def prepare(self, plan: WritePlan) -> None:
        """Prepare the destination for ``plan`` unless the database says it is prepared for it and this version."""
        plan_hash = fingerprint(plan)
        with self.db.session() as session:
            if is_prepared(session, self.sync_id, plan_hash, self.version):
                return
        self._each_request_retried(self.plugin.prepare, plan)
        with self.db.session() as session:
            record_prepared(session, self.sync_id, self.destination_id, plan, plan_hash, self.version)

    def inspect(self, plan: WritePlan) -> None:
        """Raise ``ConfigError`` with every reason the destination would refuse ``plan``, found by reading only (a
        dry run changes nothing remotely, yet reports a mapping the destination cannot take)."""
        problems = self._each_request_retried(self.plugin.inspect, plan)
        if problems:
            raise ConfigError("; ".join(problems))

    def forget(self) -> None:
        try:
            with self.db.session() as session:
                forget(session, self.sync_id)
        except Exception as exc:  # the database may be gone (the run is failing): the next run checks anyway
            log.warning("sync %s: could not forget its preparation: %s", self.sync_id, exc)

    def retire_options(self, object_type: str) -> None:
        """Drop multi-select options of segments gone or renamed once no record holds them (call after a complete
        run, which rewrote every record that held them). A failure leaves them retired for the next run."""
        try:
            with self.db.session() as session:
                unheld = retired_unheld(session, self.sync_id, self.plugin.render_multi_select)
            if not unheld:
                return
            for field, choices in unheld.items():
                self._each_request_retried(self.plugin.retire_options, object_type, field, choices)
            with self.db.session() as session:
                drop_retired(session, self.sync_id, unheld)
            log.info("sync %s: options no record holds any more removed: %s", self.sync_id, unheld)
        except Exception as exc:
            log.warning("sync %s: removing retired options failed: %s", self.sync_id, exc)

    def _each_request_retried(self, call: Callable[..., Any], *args: Any) -> Any:
        if self.plugin.retries_each_request:
            with self.plugin.requests_retried(self.retry.call):
                return self.answered(call)(*args)
        return self.retry.call(self.answered(call), *args)
