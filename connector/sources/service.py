"""Sources and their models within one workspace: creating, reading, changing, deleting, checking; run history.

Functions take the caller's session and never commit. The source's URL is stored only encrypted; reads show it
with its password (and query values named like secrets) masked as ``MASK``, and an update whose URL carries the
mask as password keeps the stored one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from connector.errors import ConflictError, InvalidError, NotFoundError
from connector.models import ModelKind, Source, SourceModel, SourceRun, SourceRunError
from connector.security import MASK, SecretBox
from connector.sources.config import (
    Mapping,
    ModelIn,
    ModelPatch,
    SourceIn,
    SourcePatch,
    check_mapping,
    check_schedule,
    missing_columns,
)
from connector.sources.reader import open_engine, parse_url, query_columns

SECRET_QUERY_WORDS = ("pass", "secret", "token", "key", "credential")


def masked_url(url: URL) -> str:
    query = {k: MASK if any(word in k.lower() for word in SECRET_QUERY_WORDS) else v for k, v in url.query.items()}
    shown = url.set(password=MASK if url.password else None, query=query)
    return shown.render_as_string(hide_password=False).replace(quote_plus(MASK), MASK)


def _stored_url(source: Source, box: SecretBox) -> str:
    return box.decrypt(source.url_encrypted)["url"]


def _new_url(url: str, box: SecretBox, previous: Source | None = None) -> tuple[str, str]:
    """(encrypted URL, display URL). The mask in place of the password (or a secret query value) keeps the
    stored value."""
    parse_url(url)
    parsed = make_url(url)
    if previous is not None:
        old = make_url(_stored_url(previous, box))
        if parsed.password == MASK:
            parsed = parsed.set(password=old.password)
        query = {k: old.query.get(k, v) if v == MASK else v for k, v in parsed.query.items()}
        parsed = parsed.set(query=query)
    plain = parsed.render_as_string(hide_password=False)
    return box.encrypt({"url": plain}), masked_url(parsed)


def list_sources(session: Session, workspace_id: int) -> list[Source]:
    return list(session.scalars(select(Source).where(Source.workspace_id == workspace_id).order_by(Source.id)))


def get_source(session: Session, workspace_id: int, source_id: int) -> Source:
    source = session.scalar(select(Source).where(Source.id == source_id, Source.workspace_id == workspace_id))
    if source is None:
        raise NotFoundError("source")
    return source


def _name_free(session: Session, model, scope, name: str, own_id: int | None = None) -> None:
    clash = session.scalar(select(model.id).where(scope, model.name == name, model.id != (own_id or 0)))
    if clash is not None:
        raise ConflictError(f"the name {name!r} is taken", [{"field": "name", "reason": "is taken"}])


def create_source(session: Session, workspace_id: int, box: SecretBox, data: SourceIn) -> Source:
    schedule = check_schedule(data.schedule)
    encrypted, display = _new_url(data.url, box)
    _name_free(session, Source, Source.workspace_id == workspace_id, data.name)
    source = Source(
        workspace_id=workspace_id,
        name=data.name,
        url_encrypted=encrypted,
        display_url=display,
        schedule=schedule,
        enabled=data.enabled,
    )
    session.add(source)
    session.flush()
    return source


def update_source(session: Session, workspace_id: int, source_id: int, box: SecretBox, data: SourcePatch) -> Source:
    source = get_source(session, workspace_id, source_id)
    if data.name is not None:
        _name_free(session, Source, Source.workspace_id == workspace_id, data.name, source.id)
        source.name = data.name
    if data.url is not None:
        source.url_encrypted, source.display_url = _new_url(data.url, box, source)
    if "schedule" in data.model_fields_set:
        source.schedule = check_schedule(data.schedule)
    if data.enabled is not None:
        source.enabled = data.enabled
    session.flush()
    return source


def delete_source(session: Session, workspace_id: int, source_id: int) -> None:
    source = get_source(session, workspace_id, source_id)
    if _running(session, source_id=source.id):
        raise ConflictError("a run of this source is in progress")
    session.delete(source)
    session.flush()


def check_source(source: Source, box: SecretBox) -> dict[str, Any]:
    """Connect and run ``SELECT 1``: ``{"ok": true}`` or ``{"ok": false, "error": ...}`` (no secret in it)."""
    try:
        engine = open_engine(_stored_url(source, box))
        try:
            with engine.connect() as connection:
                query_columns(connection, "SELECT 1 AS ok")
        finally:
            engine.dispose()
    except InvalidError as exc:
        return {"ok": False, "error": exc.errors[0]["reason"]}
    except Exception as exc:  # a driver's connection error: reported, never raised to the client
        return {"ok": False, "error": f"cannot connect: {type(exc).__name__}"}
    return {"ok": True}


# -- models ------------------------------------------------------------------------------------------------------


def list_models(session: Session, workspace_id: int, source_id: int) -> list[SourceModel]:
    get_source(session, workspace_id, source_id)
    return list(
        session.scalars(
            select(SourceModel)
            .where(SourceModel.source_id == source_id, SourceModel.workspace_id == workspace_id)
            .order_by(SourceModel.id)
        )
    )


def get_model(session: Session, workspace_id: int, source_id: int, model_id: int) -> SourceModel:
    model = session.scalar(
        select(SourceModel).where(
            SourceModel.id == model_id, SourceModel.source_id == source_id, SourceModel.workspace_id == workspace_id
        )
    )
    if model is None:
        raise NotFoundError("model")
    return model


def create_model(session: Session, workspace_id: int, source_id: int, data: ModelIn) -> SourceModel:
    source = get_source(session, workspace_id, source_id)
    kind = ModelKind(data.kind)
    check_mapping(kind, data.mapping, data.deletes)
    _name_free(session, SourceModel, SourceModel.source_id == source.id, data.name)
    model = SourceModel(
        workspace_id=workspace_id,
        source_id=source.id,
        name=data.name,
        kind=kind,
        query=data.query,
        mapping=data.mapping.model_dump(exclude_none=True),
        cursor_column=data.cursor_column,
        deletes=data.deletes,
        enabled=data.enabled,
    )
    session.add(model)
    session.flush()
    return model


def update_model(session: Session, workspace_id: int, source_id: int, model_id: int, data: ModelPatch) -> SourceModel:
    """Change a model; a new query or cursor column starts the cursor over (rows unchanged are still not written)."""
    model = get_model(session, workspace_id, source_id, model_id)
    if data.name is not None:
        _name_free(session, SourceModel, SourceModel.source_id == source_id, data.name, model.id)
        model.name = data.name
    mapping = data.mapping if data.mapping is not None else None
    deletes = data.deletes or model.deletes
    if mapping is not None or data.deletes is not None:
        from_stored = mapping or _stored_mapping(model)
        check_mapping(ModelKind(model.kind), from_stored, deletes)
        model.mapping = from_stored.model_dump(exclude_none=True)
        model.deletes = deletes
    if data.query is not None and data.query != model.query:
        model.query = data.query
        model.cursor_state = None
    if "cursor_column" in data.model_fields_set and data.cursor_column != model.cursor_column:
        model.cursor_column = data.cursor_column
        model.cursor_state = None
    if data.enabled is not None:
        model.enabled = data.enabled
    session.flush()
    return model


def _stored_mapping(model: SourceModel) -> Mapping:
    return Mapping.model_validate(model.mapping)


def delete_model(session: Session, workspace_id: int, source_id: int, model_id: int) -> None:
    model = get_model(session, workspace_id, source_id, model_id)
    if _running(session, model_id=model.id):
        raise ConflictError("a run of this model is in progress")
    session.delete(model)
    session.flush()


def source_and_model(session: Session, workspace_id: int, source_id: int, model_id: int):
    """A model with its source (to check it outside the transaction)."""
    return get_source(session, workspace_id, source_id), get_model(session, workspace_id, source_id, model_id)


def check_model(source: Source, model: SourceModel, box: SecretBox) -> dict[str, Any]:
    """Run the model's query for its columns (no rows): ``{"ok": true, "columns": [...]}`` or the errors."""
    try:
        engine = open_engine(_stored_url(source, box))
        try:
            with engine.connect() as connection:
                columns = query_columns(connection, model.query)
        finally:
            engine.dispose()
    except InvalidError as exc:
        return {"ok": False, "errors": exc.errors}
    except Exception as exc:
        return {"ok": False, "errors": [{"field": "url", "reason": f"cannot connect: {type(exc).__name__}"}]}
    errors = missing_columns(model.mapping, model.cursor_column, columns)
    return {"ok": not errors, "columns": columns, **({"errors": errors} if errors else {})}


# -- runs --------------------------------------------------------------------------------------------------------


def _running(session: Session, *, source_id: int | None = None, model_id: int | None = None) -> bool:
    query = select(func.count()).select_from(SourceRun).where(SourceRun.status == "running")
    if model_id is not None:
        query = query.where(SourceRun.model_id == model_id)
    else:
        query = query.join(SourceModel, SourceModel.id == SourceRun.model_id).where(SourceModel.source_id == source_id)
    return bool(session.scalar(query))


def list_runs(
    session: Session, workspace_id: int, source_id: int, model_id: int, limit: int = 50, before_id: int | None = None
) -> list[SourceRun]:
    get_model(session, workspace_id, source_id, model_id)
    query = select(SourceRun).where(SourceRun.model_id == model_id).order_by(SourceRun.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(SourceRun.id < before_id)
    return list(session.scalars(query))


def get_run(session: Session, workspace_id: int, source_id: int, model_id: int, run_id: int) -> SourceRun:
    get_model(session, workspace_id, source_id, model_id)
    run = session.scalar(select(SourceRun).where(SourceRun.id == run_id, SourceRun.model_id == model_id))
    if run is None:
        raise NotFoundError("run")
    return run


def run_errors(session: Session, run_id: int, limit: int = 1000) -> list[SourceRunError]:
    return list(
        session.scalars(
            select(SourceRunError).where(SourceRunError.run_id == run_id).order_by(SourceRunError.id).limit(limit)
        )
    )


def find_source(session: Session, workspace_id: int, ref: str) -> Source:
    """A source by id or name (for the CLI)."""
    query = select(Source).where(Source.workspace_id == workspace_id)
    source = session.scalar(query.where(Source.name == ref))
    if source is None and ref.isdigit():
        source = session.scalar(query.where(Source.id == int(ref)))
    if source is None:
        raise NotFoundError("source")
    return source
