"""Syncs of a workspace: creating, validating, reading, changing and deleting their definitions.

Every function takes the caller's session and a ``workspace_id`` and never commits. Problems a client can fix
are raised as ``InvalidError`` with ``errors = [{"field": "mappings[2].destination", "reason": ...}]`` (paths
relative to the input document); ``NotFoundError`` and ``ConflictError`` say the rest. A schedule is read by
``connector.schedules`` and stored as its typed document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.computed import computed_properties, computed_property
from connector.destinations import Destination as DestinationPlugin
from connector.destinations import UnknownDestinationTypeError, get_destination_type
from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.models import Destination, Segment, SubjectType, Sync, SyncMode, SyncRecord, SyncSegment, Workspace
from connector.schedules import ScheduleError, parse_schedule
from connector.syncs.inputs import MAX_ID, SUBJECT_TYPES, name_taken, reject_nul
from connector.syncs.locks import running_run
from connector.syncs.mapping import FIELDS, AttributeSource, ComputedSource, FieldSource, Mapping


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
    if name_taken(session, Sync, workspace_id, spec["name"]):
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
    if renamed and name_taken(session, Sync, workspace_id, given["name"], sync.id):
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
    cls = _destination_type(session, workspace_id, data["destination_id"], errors)
    if cls is not None and not cls.accepts_object(data["destination_object"]):
        errors.append({"field": "destination_object", "reason": f"must be one of: {', '.join(cls.objects)}"})
    segment_ids = list(dict.fromkeys(data.get("segment_ids") or []))
    _check_segments(session, workspace_id, data.get("segment_ids") or [], subject_type, errors)
    mappings = [m if isinstance(m, Mapping) else Mapping.model_validate(m) for m in data["mappings"]]
    _check_mappings(mappings, subject_type, errors)
    identity_field = (
        data["identity"]["destination"] if isinstance(data["identity"], dict) else data["identity"].destination
    )
    identity_mapping = _identity_mapping(mappings, identity_field, errors)
    mode, mirror_action = _mode(data, mappings, cls, errors)
    schedule = None
    try:
        schedule = parse_schedule(data.get("schedule") or None)
    except ScheduleError as exc:
        errors.extend(exc.errors)
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
        "schedule": schedule.model_dump(),
        "enabled": True if data.get("enabled") is None else data["enabled"],
    }


def _destination_type(
    session: Session, workspace_id: int, destination_id: int, errors: list[dict[str, str]]
) -> type[DestinationPlugin] | None:
    destination = session.scalar(
        select(Destination).where(Destination.id == destination_id, Destination.workspace_id == workspace_id)
    )
    if destination is None:
        errors.append({"field": "destination_id", "reason": "no such destination in this workspace"})
        return None
    try:
        return get_destination_type(destination.type)
    except UnknownDestinationTypeError:
        errors.append({"field": "destination_id", "reason": f"destination type {destination.type!r} is not installed"})
        return None


def _check_segments(
    session: Session, workspace_id: int, segment_ids: list[int], subject_type: SubjectType, errors: list
) -> None:
    if not segment_ids:
        return
    found = dict(
        session.execute(
            select(Segment.id, Segment.subject_type).where(
                Segment.id.in_(set(segment_ids)), Segment.workspace_id == workspace_id
            )
        ).all()
    )
    for i, segment_id in enumerate(segment_ids):
        if segment_id not in found:
            errors.append({"field": f"segment_ids[{i}]", "reason": "no such segment in this workspace"})
        elif found[segment_id] != subject_type:
            errors.append(
                {
                    "field": f"segment_ids[{i}]",
                    "reason": f"a segment of {found[segment_id].value}s, not of {subject_type.value}s like this sync",
                }
            )


def _check_mappings(mappings: list[Mapping], subject_type: SubjectType, errors: list) -> None:
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
        if (
            isinstance(mapping.source, ComputedSource)
            and subject_type not in computed_property(mapping.source.name).subject_types
        ):
            known = ", ".join(p.name for p in computed_properties(subject_type))
            errors.append(
                {
                    "field": f"mappings[{i}].source.name",
                    "reason": f"{subject_type.value}s have no computed property {mapping.source.name!r} "
                    f"(theirs: {known})",
                }
            )


def _identity_mapping(mappings: list[Mapping], identity_field: str, errors: list) -> Mapping | None:
    identity_mapping = next((m for m in mappings if m.destination == identity_field), None)
    if identity_mapping is None:
        errors.append(
            {"field": "identity.destination", "reason": "must be the destination field of one of the mappings"}
        )
    elif not isinstance(identity_mapping.source, AttributeSource | FieldSource):
        errors.append(
            {"field": "identity.destination", "reason": "the identity must come from a field or an attribute"}
        )
    return identity_mapping


def _mode(data: dict[str, Any], mappings: list[Mapping], cls, errors: list) -> tuple[SyncMode, str | None]:
    mode = SyncMode(data.get("mode") or SyncMode.UPSERT)
    mirror_action = data.get("mirror_action")
    if mode != SyncMode.MIRROR:
        if mirror_action is not None:
            errors.append({"field": "mirror_action", "reason": "applies to mode mirror only"})
        return mode, mirror_action
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
    return mode, mirror_action
