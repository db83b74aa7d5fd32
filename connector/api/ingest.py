"""Ingestion endpoints: batches of identify/group/track/page/device/objects items, and CSV imports.

A batch is ``{"batch": [item, ...]}`` with 1 to 1,000 items. The envelope is checked by flask-openapi3 against the
body model; the items are checked one by one by the ingestion service, so that ``?partial=true`` can take the valid
ones. The body models declare their items' real schema for the OpenAPI document (``DocumentedAs``) while letting
any JSON object through to the service.

Answers: 200 ``{"results": [...], "counts": {...}}`` when every item was taken (``ok`` or ``duplicate``). With
invalid items: 422 problem+json listing each item's errors (``body.batch[3].email``) and nothing written, or with
``?partial=true`` 207 with the same results shape, the valid items written and the invalid ones ``invalid`` with
their errors.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Annotated, Any, Literal

from flask import request
from flask_openapi3 import APIBlueprint, RawModel
from flask_openapi3.models import MediaType, RequestBody, Schema
from pydantic import BaseModel, Field, GetJsonSchemaHandler, TypeAdapter

from connector.api.common import WorkspacePath, workspace_blueprint
from connector.api.context import database, workspace_id
from connector.api.problems import ProblemError, invalid
from connector.ingest.accounts import group
from connector.ingest.batches import MAX_BATCH, BatchRejectedError, BatchResult
from connector.ingest.devices import record_devices
from connector.ingest.events import page, track
from connector.ingest.imports import ImportFormatError, import_accounts, import_users, parse_column_types
from connector.ingest.items import DeviceItem, GroupItem, IdentifyItem, ObjectItem, PageItem, TrackItem
from connector.ingest.objects import upsert_objects
from connector.ingest.users import identify
from connector.intake import ingest_batch, ingest_file

bp = workspace_blueprint("ingest", "ingest")
imports = workspace_blueprint("imports", "imports", "/imports")


def blueprints() -> list[APIBlueprint]:
    return [bp, imports]


class DocumentedAs:
    """Annotation: document a field with another type's JSON schema than the one it is validated with."""

    def __init__(self, documented: Any, **extra: Any) -> None:
        self.documented = documented
        self.extra = extra

    def __get_pydantic_json_schema__(self, _core_schema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = handler(TypeAdapter(self.documented).core_schema)
        schema.update(self.extra)
        return schema


def _batch_of(item: type[BaseModel]) -> Any:
    return Annotated[
        list[dict[str, Any]],
        DocumentedAs(list[item], minItems=1, maxItems=MAX_BATCH),
        Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} items"),
    ]


class IdentifyBatch(BaseModel):
    batch: _batch_of(IdentifyItem)


class GroupBatch(BaseModel):
    batch: _batch_of(GroupItem)


class TrackBatch(BaseModel):
    batch: _batch_of(TrackItem)


class PageBatch(BaseModel):
    batch: _batch_of(PageItem)


class DeviceBatch(BaseModel):
    batch: _batch_of(DeviceItem)


class ObjectBatch(BaseModel):
    batch: _batch_of(ObjectItem)


class IngestQuery(BaseModel):
    partial: bool = Field(
        False, description="Write the valid items and report the invalid ones (answer 207 when there are some)"
    )


class ItemError(BaseModel):
    field: str = Field(description="Path inside the item; empty for the item as a whole")
    reason: str


class ItemFate(BaseModel):
    index: int
    status: Literal["ok", "duplicate", "invalid"]
    id: int | None = Field(None, description="Id of the user/account/event/device/object written")
    created: bool | None = None
    errors: list[ItemError] = []


class BatchAnswer(BaseModel):
    results: list[ItemFate]
    counts: dict[str, int]


class ImportErrorRow(BaseModel):
    row: int = Field(description="Line number in the file (the header is line 1)")
    column: str | None
    reason: str


class ImportAnswer(BaseModel):
    rows: int
    created: int
    updated: int
    failed: int
    errors: list[ImportErrorRow] = Field(description="The first 1,000 errors")
    errors_truncated: bool


PROBLEM = {
    "description": "Problem details (RFC 9457)",
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                        },
                    },
                },
            }
        }
    },
}
BATCH_RESPONSES = {200: BatchAnswer, 207: BatchAnswer, 403: PROBLEM, 409: PROBLEM, 422: PROBLEM}


def _ingest(service: Callable[..., BatchResult], items: list[dict[str, Any]], partial: bool):
    """Run one ingestion service and the incremental segment update (``connector.intake``); shape the answer."""
    try:
        result = ingest_batch(database(), workspace_id(), service, items, partial=partial)
    except BatchRejectedError as exc:
        errors = [
            {"field": f"body.batch[{r.index}]" + (f".{e['field']}" if e["field"] else ""), "reason": e["reason"]}
            for r in exc.invalid
            for e in r.errors
        ]
        detail = f"{len(exc.invalid)} of {len(items)} items are invalid; nothing was written"
        raise ProblemError(422, "Invalid request", detail, errors=errors) from exc
    answer = {"results": [r.to_json() for r in result.results], "counts": result.counts()}
    return answer, 207 if result.invalid else 200


@bp.post("/identify", responses=BATCH_RESPONSES)
def post_identify(path: WorkspacePath, query: IngestQuery, body: IdentifyBatch):
    """Create or update users by external id and/or email: attributes (merged), tags, account links."""
    return _ingest(identify, body.batch, query.partial)


@bp.post("/group", responses=BATCH_RESPONSES)
def post_group(path: WorkspacePath, query: IngestQuery, body: GroupBatch):
    """Create or update accounts by external id: domain, name, attributes (merged), tags, user links."""
    return _ingest(group, body.batch, query.partial)


@bp.post("/track", responses=BATCH_RESPONSES)
def post_track(path: WorkspacePath, query: IngestQuery, body: TrackBatch):
    """Record events; unknown users are created. Events whose message_id was seen before are duplicates."""
    return _ingest(track, body.batch, query.partial)


@bp.post("/page", responses=BATCH_RESPONSES)
def post_page(path: WorkspacePath, query: IngestQuery, body: PageBatch):
    """Record page views (events of kind page)."""
    return _ingest(page, body.batch, query.partial)


@bp.post("/device", responses=BATCH_RESPONSES)
def post_device(path: WorkspacePath, query: IngestQuery, body: DeviceBatch):
    """Record users' devices (platform, vendor device id, push token, last seen)."""
    return _ingest(record_devices, body.batch, query.partial)


@bp.post("/objects", responses=BATCH_RESPONSES)
def post_objects(path: WorkspacePath, query: IngestQuery, body: ObjectBatch):
    """Upsert custom object records (orders, subscriptions…), linked to users and accounts."""
    return _ingest(upsert_objects, body.batch, query.partial)


class ImportQuery(BaseModel):
    types: str | None = Field(
        None,
        max_length=10_000,
        description="Types of attribute columns, e.g. lifetime_value:number,signed_up:date "
        "(number, integer, boolean, date, datetime, string); other columns stay strings",
    )


class CsvUpload(RawModel):
    mimetypes = ["multipart/form-data", "text/csv"]


IMPORT_RESPONSES = {200: ImportAnswer, 400: PROBLEM, 403: PROBLEM, 413: PROBLEM, 422: PROBLEM}


def _import(importer, types_spec: str | None) -> tuple[dict, int]:
    try:
        types = parse_column_types(types_spec)
        report = ingest_file(database(), workspace_id(), importer, _upload_stream(), types=types)
    except ImportFormatError as exc:
        raise invalid("query.types" if exc.field == "types" else "body.file", exc.reason) from exc
    return report.to_json(), 200


def _upload_stream() -> io.BufferedIOBase:
    """The uploaded CSV as a byte stream, not read into memory: a multipart ``file`` field or a text/csv body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ImportFormatError("file", "send the CSV as the multipart field 'file' (or as a text/csv body)")
        return upload.stream
    if request.mimetype in ("text/csv", "text/plain", "application/octet-stream"):
        return io.BufferedReader(request.stream)
    raise ImportFormatError("file", "send the CSV as a text/csv body or as the multipart field 'file'")


@imports.post("/users", responses=IMPORT_RESPONSES)
def post_import_users(path: WorkspacePath, query: ImportQuery, raw: CsvUpload):
    """Import users from CSV: external_id and/or email, tags (;-separated), other columns become attributes.

    Rows are taken one by one: bad rows are reported with their line number and reason, good rows are written.
    """
    return _import(import_users, query.types)


@imports.post("/accounts", responses=IMPORT_RESPONSES)
def post_import_accounts(path: WorkspacePath, query: ImportQuery, raw: CsvUpload):
    """Import accounts from CSV: external_id (required), domain, name, tags, other columns become attributes."""
    return _import(import_accounts, query.types)


def _document_csv_body(blueprint: APIBlueprint) -> None:
    # flask-openapi3 documents a raw body as a plain string; say what the upload really is.
    body = RequestBody(
        required=True,
        content={
            "multipart/form-data": MediaType(
                schema=Schema(
                    type="object",
                    properties={"file": Schema(type="string", format="binary")},
                    required=["file"],
                )
            ),
            "text/csv": MediaType(schema=Schema(type="string")),
        },
    )
    for path_item in blueprint.paths.values():
        if path_item.post is not None:
            path_item.post.requestBody = body


_document_csv_body(imports)
