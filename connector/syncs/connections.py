"""Destinations of a workspace: creating, validating, reading, changing and deleting them, and their secrets.

Every function takes the caller's session and a ``workspace_id`` and never commits; refusals are the shared
vocabulary of ``connector.errors`` (field paths relative to the input document).

Secret options of a destination (typed ``SecretStr`` in its ``Config``) are stored only encrypted, in
``secrets_encrypted``; they are shown back as ``MASK`` (``masked_config``), and an update that sends the mask (or
leaves the option out) keeps the stored secret.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.destinations import (
    ConfigError,
    DestinationError,
    UnknownDestinationTypeError,
    config_schema,
    get_destination_type,
    load_destination_types,
    secret_fields,
)
from connector.destinations import Destination as DestinationPlugin
from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.models import Destination, Sync
from connector.security import MASK, SecretBox
from connector.syncs.inputs import name_taken, reject_nul, validation_errors


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
        raise InvalidError(validation_errors(exc, "config")) from None
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


def create_destination(session: Session, workspace_id: int, box: SecretBox, data: DestinationIn) -> Destination:
    for name, value in data.model_dump().items():
        reject_nul(value, name)
    cls = _plugin_type(data.type)
    for name in secret_fields(cls.Config):
        if data.config.get(name) == MASK:
            raise InvalidError.one(f"config.{name}", "send the secret itself; the mask only stands for a stored one")
    plain, secrets = _validated_options(cls, data.config)
    if name_taken(session, Destination, workspace_id, data.name):
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
        if name_taken(session, Destination, workspace_id, data.name, destination.id):
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


def masked_config(destination: Destination, box: SecretBox) -> dict[str, Any]:
    """A destination's options as they may be shown: each stored secret option as ``MASK``, never its value."""
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
    return config


def destination_options(destination: Destination, box: SecretBox) -> dict[str, Any]:
    """The full options of a destination, secrets decrypted: only for building the destination, never shown."""
    return {**(destination.config or {}), **box.decrypt(destination.secrets_encrypted)}


def build_destination(destination: Destination, box: SecretBox) -> DestinationPlugin:
    """A ready destination instance; ``ConfigError`` when its type is gone or its stored options no longer fit."""
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
