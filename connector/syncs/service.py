"""Destinations and syncs: creating, validating, reading, changing and deleting them, within one workspace.

Every function takes the caller's session and a ``workspace_id`` and never commits. Problems a client can fix
are raised as ``InvalidError`` with ``errors = [{"field": "mappings[2].destination", "reason": ...}]`` (paths
relative to the input document); ``NotFoundError`` and ``ConflictError`` say the rest.

Secret options of a destination (typed ``SecretStr`` in its ``Config``) are stored only encrypted, in
``secrets_encrypted``; they are shown back as ``MASK``, and an update that sends the mask (or leaves the option
out) keeps the stored secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from connector.destinations import (
    Destination as DestinationPlugin,
)
from connector.destinations import (
    UnknownDestinationTypeError,
    config_schema,
    get_destination_type,
    load_destination_types,
    secret_fields,
)
from connector.models import (
    Destination,
    RunStatus,
    Segment,
    SubjectType,
    Sync,
    SyncMode,
    SyncRecord,
    SyncRun,
    SyncRunError,
    SyncSegment,
    utcnow,
)
from connector.security import MASK, SecretBox
from connector.syncs.locks import LEASE_SECONDS, running_run
from connector.syncs.mapping import FIELDS, AttributeSource, FieldSource, Mapping

MAX_ID = 2**63 - 1
SUBJECT_TYPES = {
    "user": SubjectType.USER,
    "users": SubjectType.USER,
    "account": SubjectType.ACCOUNT,
    "accounts": SubjectType.ACCOUNT,
}


class ServiceError(Exception):
    """Base of what a service refuses."""


class InvalidError(ServiceError):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidError:
        return cls([{"field": field, "reason": reason}])


class NotFoundError(ServiceError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")
        self.what = what


class ConflictError(ServiceError):
    """The request contradicts the current state (a name taken, a destination in use, a run going)."""


def reject_nul(document: Any, path: str) -> None:
    """NUL characters cannot be stored (PostgreSQL text and JSONB refuse them): refuse them where they are."""
    if isinstance(document, str):
        if "\x00" in document:
            raise InvalidError.one(path, "must not contain NUL characters")
    elif isinstance(document, dict):
        for key, value in document.items():
            reject_nul(key, path)
            reject_nul(value, f"{path}.{key}")
    elif isinstance(document, list | tuple):
        for i, value in enumerate(document):
            reject_nul(value, f"{path}[{i}]")


def _validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        errors.append({"field": path, "reason": error["msg"]})
    return errors


# -- destinations ------------------------------------------------------------------------------------------------


class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=50)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class DestinationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    config: dict[str, Any] | None = Field(
        None,
        description="Options to change (JSON merge patch): null removes one; a secret sent as the mask or "
        "left out is kept",
    )

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None


def destination_types() -> list[dict[str, Any]]:
    """The installed destination types and their options (for forms and clients)."""
    return [
        {
            "type": name,
            "label": getattr(cls, "label", name),
            "objects": list(cls.objects),
            "supports_remove": cls.supports_remove,
            "max_batch_size": cls.max_batch_size,
            "default_rate_limit": list(cls.default_rate_limit) if cls.default_rate_limit else None,
            "config_schema": config_schema(cls),
        }
        for name, cls in load_destination_types().items()
    ]


def _plugin_type(type_name: str, field: str = "type") -> type[DestinationPlugin]:
    try:
        return get_destination_type(type_name)
    except UnknownDestinationTypeError:
        known = ", ".join(load_destination_types()) or "none"
        raise InvalidError.one(field, f"unknown destination type {type_name!r} (known: {known})") from None


def _validated_options(cls: type[DestinationPlugin], options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate options against the type's Config: (plain options to store, secrets to encrypt)."""
    try:
        model = cls.Config.model_validate(options)
    except ValidationError as exc:
        raise InvalidError(_validation_errors(exc, "config")) from None
    secrets = secret_fields(cls.Config)
    plain = model.model_dump(mode="json", exclude_unset=True, exclude=set(secrets))
    secret_values = {}
    for name in secrets:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            secret_values[name] = value.get_secret_value()
    return plain, secret_values


def _stored_secrets(destination: Destination, box: SecretBox) -> dict[str, Any]:
    try:
        return box.decrypt(destination.secrets_encrypted)
    except ValueError:
        return {}


def list_destinations(session: Session, workspace_id: int) -> list[Destination]:
    return list(
        session.scalars(select(Destination).where(Destination.workspace_id == workspace_id).order_by(Destination.id))
    )


def get_destination(session: Session, workspace_id: int, destination_id: int) -> Destination:
    destination = session.scalar(
        select(Destination).where(Destination.id == destination_id, Destination.workspace_id == workspace_id)
    )
    if destination is None:
        raise NotFoundError("destination")
    return destination


def _name_taken(session: Session, model, workspace_id: int, name: str, own_id: int | None = None) -> bool:
    stmt = select(model.id).where(model.workspace_id == workspace_id, model.name == name)
    if own_id is not None:
        stmt = stmt.where(model.id != own_id)
    return session.scalar(stmt.limit(1)) is not None


def create_destination(session: Session, workspace_id: int, box: SecretBox, data: DestinationIn) -> Destination:
    for name, value in data.model_dump().items():
        reject_nul(value, name)
    cls = _plugin_type(data.type)
    for name in secret_fields(cls.Config):
        if data.config.get(name) == MASK:
            raise InvalidError.one(f"config.{name}", "send the secret itself; the mask only stands for a stored one")
    plain, secrets = _validated_options(cls, data.config)
    if _name_taken(session, Destination, workspace_id, data.name):
        raise ConflictError(f"a destination named {data.name!r} exists in this workspace")
    destination = Destination(
        workspace_id=workspace_id,
        name=data.name,
        type=data.type,
        config=plain,
        secrets_encrypted=box.encrypt(secrets) if secrets else None,
    )
    session.add(destination)
    session.flush()
    return destination


def update_destination(
    session: Session, workspace_id: int, destination_id: int, box: SecretBox, data: DestinationPatch
) -> Destination:
    for name, value in data.model_dump(exclude_unset=True).items():
        reject_nul(value, name)
    destination = get_destination(session, workspace_id, destination_id)
    if data.name is not None and data.name != destination.name:
        if _name_taken(session, Destination, workspace_id, data.name, destination.id):
            raise ConflictError(f"a destination named {data.name!r} exists in this workspace")
        destination.name = data.name
    if data.config is not None:
        cls = _plugin_type(destination.type)
        secrets = set(secret_fields(cls.Config))
        stored_secrets = _stored_secrets(destination, box)
        options = {**destination.config, **stored_secrets}
        for name, value in data.config.items():
            if name in secrets and (value == MASK):
                continue  # the client sent back what it was shown: keep the stored secret
            if value is None:
                options.pop(name, None)
            else:
                options[name] = value
        plain, new_secrets = _validated_options(cls, options)
        destination.config = plain
        destination.secrets_encrypted = box.encrypt(new_secrets) if new_secrets else None
    session.flush()
    return destination


def delete_destination(session: Session, workspace_id: int, destination_id: int) -> None:
    destination = get_destination(session, workspace_id, destination_id)
    users = list(session.scalars(select(Sync.name).where(Sync.destination_id == destination.id).order_by(Sync.id)))
    if users:
        raise ConflictError(f"the destination is used by {len(users)} sync(s): {', '.join(users[:10])}")
    session.delete(destination)
    session.flush()


def destination_json(destination: Destination, box: SecretBox) -> dict[str, Any]:
    """A destination as the API shows it: secret options masked, never their values."""
    config = dict(destination.config or {})
    try:
        cls = get_destination_type(destination.type)
        secrets = secret_fields(cls.Config)
    except UnknownDestinationTypeError:
        secrets = []
    stored = _stored_secrets(destination, box) if destination.secrets_encrypted else {}
    for name in secrets:
        if name in stored or (destination.secrets_encrypted and not stored):
            config[name] = MASK
    return {
        "id": destination.id,
        "name": destination.name,
        "type": destination.type,
        "config": config,
        "created_at": destination.created_at,
        "updated_at": destination.updated_at,
    }


def destination_options(destination: Destination, box: SecretBox) -> dict[str, Any]:
    """The full options of a destination, secrets decrypted: only for building the destination, never shown."""
    return {**(destination.config or {}), **box.decrypt(destination.secrets_encrypted)}


def build_destination(destination: Destination, box: SecretBox) -> DestinationPlugin:
    """A ready destination instance; ``ConfigError`` when its type is gone or its stored options no longer fit."""
    from connector.destinations import ConfigError

    cls = get_destination_type(destination.type)
    try:
        options = destination_options(destination, box)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return cls(cls.Config.model_validate(options))
    except ValidationError as exc:
        fields = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"the destination's options are not valid: {fields}") from None


def check_destination(destination: Destination, box: SecretBox) -> dict[str, Any]:
    """Test the connection: ``{"ok": True}`` or ``{"ok": False, "error": ...}`` (the answer is data, not a fault).

    Talks to the destination: call it outside any transaction.
    """
    from connector.destinations import DestinationError

    plugin = None
    try:
        plugin = build_destination(destination, box)
        plugin.check()
    except DestinationError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a destination answering nonsense must not become our 500
        return {"ok": False, "error": f"unexpected {type(exc).__name__}: {exc}"}
    finally:
        if plugin is not None:
            plugin.close()
    return {"ok": True}


# -- syncs -------------------------------------------------------------------------------------------------------


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination: str = Field(min_length=1, max_length=100, description="The destination field of one mapping")


SubjectTypeIn = Literal["user", "users", "account", "accounts"]


class SyncFields(BaseModel):
    """What create and update share (all optional here; create requires its own)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    destination_id: int | None = Field(None, ge=1, le=MAX_ID)
    subject_type: SubjectTypeIn | None = None
    destination_object: str | None = Field(None, min_length=1, max_length=100)
    segment_ids: list[int] | None = Field(None, max_length=500, description="Members of ANY of them; empty: all")
    mappings: list[Mapping] | None = Field(None, min_length=1, max_length=200)
    identity: IdentityIn | None = None
    mode: SyncMode | None = None
    mirror_action: Literal["clear", "remove"] | None = None
    schedule: dict[str, Any] | None = Field(None, description='{"kind": "manual" | "interval" | "cron", ...}')
    enabled: bool | None = None

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None

    @field_validator("segment_ids")
    @classmethod
    def _ids(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            for segment_id in value:
                if not 1 <= segment_id <= MAX_ID:
                    raise ValueError("segment ids are positive integers")
        return value


class SyncIn(SyncFields):
    name: str = Field(min_length=1, max_length=200)
    destination_id: int = Field(ge=1, le=MAX_ID)
    subject_type: SubjectTypeIn
    destination_object: str = Field(min_length=1, max_length=100)
    mappings: list[Mapping] = Field(min_length=1, max_length=200)
    identity: IdentityIn


class SyncPatch(SyncFields):
    """A change to a sync: only the fields given change (``mappings`` replace the whole list)."""


def list_syncs(session: Session, workspace_id: int) -> list[Sync]:
    return list(session.scalars(select(Sync).where(Sync.workspace_id == workspace_id).order_by(Sync.id)))


def get_sync(session: Session, workspace_id: int, sync_id: int) -> Sync:
    sync = session.scalar(select(Sync).where(Sync.id == sync_id, Sync.workspace_id == workspace_id))
    if sync is None:
        raise NotFoundError("sync")
    return sync


def find_sync(session: Session, ref: str, workspace_slug: str | None = None) -> Sync:
    """A sync by id or by name (the name within ``workspace_slug`` when given; it must then be unambiguous)."""
    from connector.models import Workspace

    stmt = select(Sync).join(Workspace, Workspace.id == Sync.workspace_id)
    if workspace_slug:
        stmt = stmt.where(Workspace.slug == workspace_slug)
    found = []
    if ref.isdecimal() and len(ref) < 19:
        found = list(session.scalars(stmt.where(Sync.id == int(ref))))
    if not found:
        found = list(session.scalars(stmt.where(Sync.name == ref).limit(2)))
    if not found:
        raise NotFoundError("sync")
    if len(found) > 1:
        raise ConflictError(f"several workspaces have a sync named {ref!r}: name the workspace")
    return found[0]


def segment_ids_of(session: Session, sync_id: int) -> list[int]:
    return list(
        session.scalars(
            select(SyncSegment.segment_id).where(SyncSegment.sync_id == sync_id).order_by(SyncSegment.segment_id)
        )
    )


def create_sync(session: Session, workspace_id: int, data: SyncIn) -> Sync:
    for name, value in data.model_dump(by_alias=True).items():
        reject_nul(value, name)
    spec = _resolve(session, workspace_id, {**data.model_dump(exclude_unset=True), "mappings": data.mappings})
    if _name_taken(session, Sync, workspace_id, spec["name"]):
        raise ConflictError(f"a sync named {spec['name']!r} exists in this workspace")
    segment_ids = spec.pop("segment_ids")
    sync = Sync(workspace_id=workspace_id, **spec)
    session.add(sync)
    session.flush()
    session.add_all(SyncSegment(sync_id=sync.id, segment_id=s) for s in segment_ids)
    session.flush()
    return sync


def update_sync(session: Session, workspace_id: int, sync_id: int, data: SyncPatch) -> Sync:
    """Change a sync. What makes earlier deliveries meaningless (another destination, object, subject type or
    identity) also forgets its record state, so the next run sends everything; refused while a run is going."""
    for name, value in data.model_dump(exclude_unset=True, by_alias=True).items():
        reject_nul(value, name)
    sync = get_sync(session, workspace_id, sync_id)
    given = data.model_dump(exclude_unset=True)
    if "mappings" in given:
        given["mappings"] = data.mappings
    renamed = given.get("name") is not None and given["name"] != sync.name
    if renamed and _name_taken(session, Sync, workspace_id, given["name"], sync.id):
        raise ConflictError(f"a sync named {given['name']!r} exists in this workspace")
    for key, value in given.items():
        if value is None and key not in ("mirror_action",):
            raise InvalidError.one(key, "must not be null")
    current = {
        "name": sync.name,
        "destination_id": sync.destination_id,
        "subject_type": sync.subject_type.value,
        "destination_object": sync.destination_object,
        "segment_ids": segment_ids_of(session, sync.id),
        "mappings": sync.mappings,
        "identity": {"destination": (sync.identity or {}).get("destination", "")},
        "mode": sync.mode,
        "mirror_action": sync.mirror_action,
        "schedule": sync.schedule,
        "enabled": sync.enabled,
    }
    if "mode" in given and given["mode"] != SyncMode.MIRROR and "mirror_action" not in given:
        current["mirror_action"] = None
    merged = {**current, **given}
    if "mappings" not in given:
        merged["mappings"] = [Mapping.model_validate(m) for m in sync.mappings]
    spec = _resolve(session, workspace_id, merged)
    resets = (
        spec["destination_id"] != sync.destination_id
        or spec["destination_object"] != sync.destination_object
        or spec["subject_type"] != sync.subject_type
        or spec["identity"]["destination"] != (sync.identity or {}).get("destination")
    )
    if running_run(session, sync.id) is not None and (resets or "segment_ids" in given):
        raise ConflictError("a run of this sync is in progress; change its destination, scope or identity after it")
    segment_ids = spec.pop("segment_ids")
    for key, value in spec.items():
        setattr(sync, key, value)
    if "segment_ids" in given:
        session.execute(delete(SyncSegment).where(SyncSegment.sync_id == sync.id))
        session.add_all(SyncSegment(sync_id=sync.id, segment_id=s) for s in segment_ids)
    if resets:
        session.execute(delete(SyncRecord).where(SyncRecord.sync_id == sync.id))
    session.flush()
    return sync


def delete_sync(session: Session, workspace_id: int, sync_id: int) -> None:
    sync = get_sync(session, workspace_id, sync_id)
    if running_run(session, sync.id) is not None:
        raise ConflictError("a run of this sync is in progress; delete it when the run has finished")
    session.delete(sync)
    session.flush()


def _resolve(session: Session, workspace_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Check a complete sync definition against the workspace and the destination type; the columns to store."""
    errors: list[dict[str, str]] = []
    subject_type = (
        SUBJECT_TYPES[data["subject_type"]] if isinstance(data["subject_type"], str) else data["subject_type"]
    )

    destination = session.scalar(
        select(Destination).where(Destination.id == data["destination_id"], Destination.workspace_id == workspace_id)
    )
    cls = None
    if destination is None:
        errors.append({"field": "destination_id", "reason": "no such destination in this workspace"})
    else:
        try:
            cls = get_destination_type(destination.type)
        except UnknownDestinationTypeError:
            errors.append(
                {"field": "destination_id", "reason": f"destination type {destination.type!r} is not installed"}
            )
    if cls is not None and not cls.accepts_object(data["destination_object"]):
        errors.append({"field": "destination_object", "reason": f"must be one of: {', '.join(cls.objects)}"})

    segment_ids = list(dict.fromkeys(data.get("segment_ids") or []))
    if segment_ids:
        found = dict(
            session.execute(
                select(Segment.id, Segment.subject_type).where(
                    Segment.id.in_(segment_ids), Segment.workspace_id == workspace_id
                )
            ).all()
        )
        for i, segment_id in enumerate(data.get("segment_ids") or []):
            if segment_id not in found:
                errors.append({"field": f"segment_ids[{i}]", "reason": "no such segment in this workspace"})
            elif found[segment_id] != subject_type:
                errors.append(
                    {
                        "field": f"segment_ids[{i}]",
                        "reason": f"a segment of {found[segment_id].value}s, not of "
                        f"{subject_type.value}s like this sync",
                    }
                )

    mappings: list[Mapping] = [m if isinstance(m, Mapping) else Mapping.model_validate(m) for m in data["mappings"]]
    seen: dict[str, int] = {}
    for i, mapping in enumerate(mappings):
        if mapping.destination in seen:
            errors.append(
                {
                    "field": f"mappings[{i}].destination",
                    "reason": f"already written by mappings[{seen[mapping.destination]}]",
                }
            )
        seen.setdefault(mapping.destination, i)
        if isinstance(mapping.source, FieldSource) and mapping.source.name not in FIELDS[subject_type]:
            errors.append(
                {
                    "field": f"mappings[{i}].source.name",
                    "reason": f"{subject_type.value}s have no field "
                    f"{mapping.source.name!r} (fields: {', '.join(FIELDS[subject_type])})",
                }
            )

    identity_field = (
        data["identity"]["destination"] if isinstance(data["identity"], dict) else data["identity"].destination
    )
    identity_mapping = next((m for m in mappings if m.destination == identity_field), None)
    if identity_mapping is None:
        errors.append(
            {"field": "identity.destination", "reason": "must be the destination field of one of the mappings"}
        )
    elif not isinstance(identity_mapping.source, AttributeSource | FieldSource):
        errors.append(
            {"field": "identity.destination", "reason": "the identity must come from a field or an attribute"}
        )

    mode = SyncMode(data.get("mode") or SyncMode.UPSERT)
    mirror_action = data.get("mirror_action")
    if mode != SyncMode.MIRROR:
        if mirror_action is not None:
            errors.append({"field": "mirror_action", "reason": "applies to mode mirror only"})
    else:
        mirror_action = mirror_action or "clear"
        if mirror_action == "clear" and not any(m.is_segments for m in mappings):
            errors.append(
                {
                    "field": "mirror_action",
                    "reason": "clear empties the mapped Segments fields: map the computed Segments, or use remove",
                }
            )
        if mirror_action == "remove" and cls is not None and not cls.supports_remove:
            errors.append({"field": "mirror_action", "reason": f"{cls.type} destinations cannot remove records"})

    schedule = data.get("schedule") or {"kind": "manual"}
    schedule_problem = _schedule_problem(schedule)
    if schedule_problem is not None:
        errors.append(schedule_problem)

    if errors:
        raise InvalidError(errors)
    return {
        "name": data["name"],
        "destination_id": data["destination_id"],
        "subject_type": subject_type,
        "destination_object": data["destination_object"],
        "segment_ids": segment_ids,
        "mappings": [m.stored() for m in mappings],
        "identity": {"source": identity_mapping.stored()["source"], "destination": identity_field},
        "mode": mode,
        "mirror_action": mirror_action,
        "schedule": _normal_schedule(schedule),
        "enabled": True if data.get("enabled") is None else data["enabled"],
    }


def _schedule_problem(schedule: Any) -> dict[str, str] | None:
    from connector.scheduling.triggers import ScheduleError, trigger_for

    if isinstance(schedule, dict):
        allowed = {"manual": {"kind"}, "interval": {"kind", "minutes"}, "cron": {"kind", "expression", "timezone"}}
        extra = set(schedule) - allowed.get(schedule.get("kind"), set(schedule))
        if extra:
            return {"field": f"schedule.{sorted(extra)[0]}", "reason": "not a setting of this kind of schedule"}
    try:
        trigger_for(schedule)
    except ScheduleError as exc:
        field = "schedule" if exc.field == "schedule" else f"schedule.{exc.field}"
        return {"field": field, "reason": exc.reason}
    return None


def _normal_schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    if schedule["kind"] == "cron":
        return {
            "kind": "cron",
            "expression": " ".join(schedule["expression"].split()),
            "timezone": schedule.get("timezone", "UTC"),
        }
    return dict(schedule)


# -- runs --------------------------------------------------------------------------------------------------------

COUNTS = ("planned", "added", "changed", "removed", "rejected", "invalid", "unchanged", "unsent", "existing")


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


def last_runs(session: Session, sync_ids: Sequence[int]) -> dict[int, SyncRun]:
    """The latest real (not dry) run of each sync."""
    if not sync_ids:
        return {}
    latest = (
        select(func.max(SyncRun.id))
        .where(SyncRun.sync_id.in_(sync_ids), SyncRun.dry_run.is_(False))
        .group_by(SyncRun.sync_id)
    )
    return {run.sync_id: run for run in session.scalars(select(SyncRun).where(SyncRun.id.in_(latest)))}


def sync_json(
    sync: Sync,
    segment_ids: Sequence[int],
    last_run: SyncRun | None,
    next_run_time: datetime | None,
    running: bool = False,
) -> dict[str, Any]:
    """A sync as the API shows it. ``status`` is ``running`` while a run holds the lease, else the last run's
    status (``never_run`` before the first)."""
    return {
        "id": sync.id,
        "name": sync.name,
        "destination_id": sync.destination_id,
        "subject_type": sync.subject_type,
        "destination_object": sync.destination_object,
        "segment_ids": list(segment_ids),
        "mappings": sync.mappings,
        "identity": {"destination": (sync.identity or {}).get("destination")},
        "mode": sync.mode,
        "mirror_action": sync.mirror_action,
        "schedule": sync.schedule,
        "enabled": sync.enabled,
        "status": "running" if running else (last_run.status.value if last_run is not None else "never_run"),
        "last_run": run_json(last_run) if last_run is not None else None,
        "next_run_time": next_run_time,
        "created_at": sync.created_at,
        "updated_at": sync.updated_at,
    }


def running_sync_ids(session: Session, sync_ids: Sequence[int]) -> set[int]:
    """The syncs among ``sync_ids`` with a run in progress (a live lease; dry runs do not count)."""
    if not sync_ids:
        return set()
    fresh = utcnow() - timedelta(seconds=LEASE_SECONDS)
    return set(
        session.scalars(
            select(SyncRun.sync_id).where(
                SyncRun.sync_id.in_(sync_ids),
                SyncRun.status == RunStatus.RUNNING,
                SyncRun.dry_run.is_(False),
                SyncRun.heartbeat_at >= fresh,
            )
        )
    )


def segment_ids_by_sync(session: Session, sync_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {sync_id: [] for sync_id in sync_ids}
    if sync_ids:
        rows = session.execute(
            select(SyncSegment.sync_id, SyncSegment.segment_id)
            .where(SyncSegment.sync_id.in_(sync_ids))
            .order_by(SyncSegment.sync_id, SyncSegment.segment_id)
        )
        for sync_id, segment_id in rows:
            found[sync_id].append(segment_id)
    return found


def next_run_times(session: Session, sync_ids: Sequence[int]) -> dict[int, datetime | None]:
    """When the scheduler runs each sync next (its job store knows); None where it does not or cannot say."""
    try:
        from connector.scheduling.store import next_run_times as scheduled
    except ImportError:
        return dict.fromkeys(sync_ids)
    try:
        with session.begin_nested():
            return scheduled(session, sync_ids)
    except Exception:  # no job table yet (an older schema) must not hide the sync itself
        return dict.fromkeys(sync_ids)


def list_runs(session: Session, sync_id: int, limit: int, before_id: int | None) -> list[SyncRun]:
    stmt = select(SyncRun).where(SyncRun.sync_id == sync_id)
    if before_id is not None:
        stmt = stmt.where(SyncRun.id < before_id)
    return list(session.scalars(stmt.order_by(SyncRun.id.desc()).limit(limit)))


def get_run(session: Session, sync_id: int, run_id: int) -> SyncRun:
    run = session.scalar(select(SyncRun).where(SyncRun.id == run_id, SyncRun.sync_id == sync_id))
    if run is None:
        raise NotFoundError("run")
    return run


def list_run_errors(session: Session, run_id: int, limit: int, after_id: int | None) -> list[SyncRunError]:
    stmt = select(SyncRunError).where(SyncRunError.run_id == run_id)
    if after_id is not None:
        stmt = stmt.where(SyncRunError.id > after_id)
    return list(session.scalars(stmt.order_by(SyncRunError.id).limit(limit)))


def run_error_json(error: SyncRunError) -> dict[str, Any]:
    return {
        "id": error.id,
        "subject_id": error.subject_id,
        "identity": error.identity,
        "kind": error.kind,
        "reason": error.reason,
    }
