"""Segments: definitions, membership, history, preview, explain, manual members, export.

Every route is under ``/api/v1/workspaces/<workspace>``. Saving a dynamic definition answers at once with
``evaluation: {"status": "pending", "progress": 0}`` and evaluates it on an executor (``GET`` the segment to follow
it); ``?wait=true`` evaluates it before the answer, so the ``member_count`` in the answer is current. Errors are
problem documents naming the field (``body.conditions.children[1].count.value``); deleting (or changing the subject
type of) a segment that something uses is a 409 listing the users in ``usages``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

from flask import Response, current_app, g, request, stream_with_context
from flask_openapi3 import APIBlueprint, RawModel
from flask_openapi3.models import MediaType, RequestBody, Schema
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.api.common import (
    MAX_ID,
    WorkspacePath,
    decode_id_cursor,
    encode_cursor,
    workspace_blueprint,
)
from connector.api.context import database, unit_of_work, workspace_id
from connector.api.problems import concurrent_change, invalid, located
from connector.api.segment_documents import evaluation_json, members_result_json, segment_json
from connector.models import (
    Member,
    Segment,
    SegmentKind,
    SubjectType,
)
from connector.scheduling.evaluations import start_evaluation
from connector.segments import evaluation, exports, hq, manual, reads, service, sharing

segments_bp = workspace_blueprint("segments", "segments", "/segments")

PAGE_MAX = 500
MAX_EXPORT_ATTRIBUTES = 50
_ATTRIBUTE_NAME = re.compile(r'\A[^"\\\x00-\x1f\x7f,]{1,100}\Z')


def blueprints() -> list[APIBlueprint]:
    return [segments_bp]


# -- models ----------------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentPath(WorkspacePath):
    segment_id: int = Field(ge=1, le=MAX_ID)


class EvaluationQuery(BaseModel):
    wait: bool = Field(False, description="Evaluate the definition before answering (default: on an executor)")


class SegmentCreate(_Body):
    name: str = Field(min_length=1, max_length=service.NAME_MAX)
    description: str = Field("", max_length=service.DESCRIPTION_MAX)
    subject_type: SubjectType = SubjectType.USER
    kind: SegmentKind = SegmentKind.DYNAMIC
    group_id: int | None = Field(None, ge=1, le=MAX_ID)
    conditions: dict[str, Any] | None = Field(None, description="The condition tree (dynamic segments)")
    sync_to_children: bool = Field(False, description="An HQ workspace: sync it to all child workspaces at once")


class SegmentUpdate(_Body):
    name: str | None = Field(None, min_length=1, max_length=service.NAME_MAX)
    description: str | None = Field(None, max_length=service.DESCRIPTION_MAX)
    subject_type: SubjectType | None = None
    kind: SegmentKind | None = None
    group_id: int | None = Field(None, ge=1, le=MAX_ID, description="null takes the segment out of its group")
    conditions: dict[str, Any] | None = None


class SegmentListQuery(BaseModel):
    subject_type: SubjectType | None = None
    group_id: int | None = Field(None, ge=1, le=MAX_ID)


class PageQuery(BaseModel):
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=PAGE_MAX)


class MembersQuery(PageQuery):
    search: str | None = Field(None, min_length=1, max_length=320, description="Prefix of email or external id")

    @field_validator("search")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("must not contain control characters")
        return value


class HistoryQuery(PageQuery):
    since: datetime | None = Field(None, description="Only changes at or after this instant (ISO 8601)")


class SubjectHistoryQuery(HistoryQuery):
    subject_type: SubjectType
    subject_id: int = Field(ge=1, le=MAX_ID)


class ExplainQuery(BaseModel):
    subject_id: int = Field(ge=1, le=MAX_ID)


class ExportQuery(BaseModel):
    attributes: str | None = Field(None, max_length=5_000, description="Comma-separated attribute names")


class PreviewBody(_Body):
    subject_type: SubjectType = SubjectType.USER
    conditions: dict[str, Any]
    segment_id: int | None = Field(None, ge=1, le=MAX_ID, description="Diff against this segment's membership")


class MembersBody(_Body):
    add: list[Any] = Field(default_factory=list, max_length=10_000)
    remove: list[Any] = Field(default_factory=list, max_length=10_000)


class UploadQuery(BaseModel):
    mode: Literal["add", "remove"] = "add"


class UploadCreateQuery(BaseModel):
    name: str = Field(min_length=1, max_length=service.NAME_MAX)
    subject_type: SubjectType = SubjectType.USER
    description: str = Field("", max_length=1_000)
    group_id: int | None = Field(None, ge=1, le=MAX_ID)


class CsvUpload(RawModel):
    mimetypes = ["multipart/form-data", "text/csv"]


# -- errors ----------------------------------------------------------------------------------------------------------


@contextmanager
def service_errors(location: str = "body") -> Iterator[None]:
    """The segment services' refusals with their fields in ``location`` (translated by ``api.problems``), and a
    concurrent change as a conflict."""
    with located(location), concurrent_change("Another request changed the same segment at the same time; try again."):
        yield


# -- shaping ---------------------------------------------------------------------------------------------------------


def _segment_answer(session, segment: Segment) -> dict[str, Any]:
    return segment_json(segment, service.member_counts(session, [segment.id])[segment.id])


# -- segments --------------------------------------------------------------------------------------------------------


@segments_bp.get("")
def list_segments(path: WorkspacePath, query: SegmentListQuery):
    """The workspace's segments, by name, each with its current number of members."""
    with unit_of_work() as session:
        segments = service.list_segments(
            session, workspace_id(), subject_type=query.subject_type, group_id=query.group_id
        )
        counts = service.member_counts(session, [s.id for s in segments])
        return {"data": [segment_json(s, counts[s.id]) for s in segments]}


@segments_bp.post("")
def create_segment(path: WorkspacePath, body: SegmentCreate, query: EvaluationQuery):
    """Create a segment. A dynamic one is evaluated on an executor (``evaluation`` says how far), or before the
    answer with ``wait=true``. With ``sync_to_children`` (HQ admins), it is synced to every child workspace too and
    the answer has the report."""
    with service_errors(), unit_of_work() as session:
        segment = service.create_segment(
            session,
            workspace_id(),
            name=body.name,
            subject_type=body.subject_type,
            kind=body.kind,
            conditions=body.conditions,
            description=body.description,
            group_id=body.group_id,
            member_id=g.member.id,
            evaluate=query.wait,
        )
        answer = _segment_answer(session, segment)
        if body.sync_to_children:
            answer["hq_sync"] = hq.sync_to_children(
                session, session.get(Member, g.member.id), g.access, items={"segments": [segment.id]}
            )
    _evaluate_later(answer)
    return answer, 201


@segments_bp.get("/<int:segment_id>")
def get_segment(path: SegmentPath):
    """One segment with its current number of members."""
    with service_errors(), unit_of_work() as session:
        return _segment_answer(session, service.get_segment(session, workspace_id(), path.segment_id))


@segments_bp.patch("/<int:segment_id>")
def update_segment(path: SegmentPath, body: SegmentUpdate, query: EvaluationQuery):
    """Change a segment: rename, describe, regroup, redefine. A new definition is evaluated as on creation."""
    given = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("name", "description", "subject_type", "kind"):
        if name in given and given[name] is None:
            raise invalid(f"body.{name}", "must not be null")
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        service.update_segment(session, segment, member_id=g.member.id, evaluate=query.wait, **given)
        answer = _segment_answer(session, segment)
    _evaluate_later(answer)
    return answer


def _evaluate_later(answer: dict[str, Any]) -> None:
    """Once the saved definition is committed: evaluate it on the executor if it waits for that."""
    if answer["evaluation"]["status"] == evaluation.PENDING:
        dispatcher = current_app.extensions.get("connector.dispatcher")  # with a broker: on a worker
        start_evaluation(database(), workspace_id(), answer["id"], dispatcher)


@segments_bp.delete("/<int:segment_id>")
def delete_segment(path: SegmentPath):
    """Delete a segment; 409 listing what uses it (segments, syncs, …, and uses where it is shared) while anything
    does."""
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        sharing.delete_segment(session, session.get(Member, g.member.id), segment)
    return "", 204


@segments_bp.post("/<int:segment_id>/refresh")
def refresh_segment(path: SegmentPath):
    """Fully re-evaluate one segment (and, for the subjects that changed, the segments referencing it)."""
    with service_errors(), unit_of_work() as session:
        return evaluation_json(service.refresh(session, workspace_id(), path.segment_id))


@segments_bp.post("/refresh")
def refresh_all(path: WorkspacePath):
    """Fully re-evaluate every dynamic segment of the workspace, in dependency order."""
    with unit_of_work() as session:
        return evaluation_json(service.refresh(session, workspace_id()))


@segments_bp.post("/preview")
def preview(path: WorkspacePath, body: PreviewBody):
    """Evaluate a definition without saving it: count, up to 20 members, and would_add / would_remove against
    ``segment_id``'s current membership."""
    with service_errors(), unit_of_work() as session:
        return service.preview_segment(
            session,
            workspace_id(),
            subject_type=body.subject_type,
            conditions=body.conditions,
            segment_id=body.segment_id,
        )


@segments_bp.get("/<int:segment_id>/explain")
def explain(path: SegmentPath, query: ExplainQuery):
    """Why a subject is (or is not) in the segment: every node of the tree, matched or not, with what was seen."""
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        return service.explain_membership(session, segment, query.subject_id)


# -- members ---------------------------------------------------------------------------------------------------------


@segments_bp.get("/<int:segment_id>/members")
def list_members(path: SegmentPath, query: MembersQuery):
    """Current members, in id order, ``limit`` at a time (``next_cursor`` fetches the next page); ``search``
    keeps those whose email or external id starts with it."""
    after = decode_id_cursor(query.cursor, "after")
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        rows = reads.member_page(session, segment, query.limit + 1, after, query.search)
    page = rows[: query.limit]
    data = [{"id": r.subject_id, **_identity(r), "entered_at": r.entered_at} for r in page]
    next_cursor = encode_cursor({"after": page[-1].subject_id}) if len(rows) > query.limit else None
    return {"data": data, "next_cursor": next_cursor}


@segments_bp.post("/<int:segment_id>/members")
def change_members(path: SegmentPath, body: MembersBody):
    """Add and remove members of a manual segment by ``id``, ``email`` or ``external_id``. People who do not exist
    are reported in ``unknown`` (by field); the others are applied."""
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        references = manual.references_from_json(body.add, body.remove)
        result = manual.change_manual_members(session, segment, references)
        answer = members_result_json(result, "body")
        answer["member_count"] = manual.member_count(session, segment.id)
        return answer


@segments_bp.post("/<int:segment_id>/members/upload")
def upload_members(path: SegmentPath, query: UploadQuery, raw: CsvUpload):
    """Add (or, with ``mode=remove``, remove) members of a manual segment from a CSV of ids, emails or external
    ids. Rows naming nobody are reported in ``unknown`` (by row number); the others are applied."""
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        rows = manual.references_from_csv(_upload_stream(), query.mode)
        result = manual.change_manual_members(session, segment, rows)
        answer = result.as_dict()
        answer["member_count"] = manual.member_count(session, segment.id)
        return answer


@segments_bp.post("/upload")
def create_from_upload(path: WorkspacePath, query: UploadCreateQuery, raw: CsvUpload):
    """Create a manual segment named ``name`` whose members are the people of a CSV (as for members/upload)."""
    with service_errors("query"), unit_of_work() as session:
        segment = service.create_segment(
            session,
            workspace_id(),
            name=query.name,
            subject_type=query.subject_type,
            kind=SegmentKind.MANUAL,
            description=query.description,
            group_id=query.group_id,
            member_id=g.member.id,
        )
        with service_errors():
            result = manual.change_manual_members(session, segment, manual.references_from_csv(_upload_stream()))
        return {"segment": _segment_answer(session, segment), **result.as_dict()}, 201


@segments_bp.get("/<int:segment_id>/members.csv")
def export_members(path: SegmentPath, query: ExportQuery):
    """Every member as CSV (id, identity columns, entered_at, then the chosen ``attributes``), streamed in chunks."""
    attributes = _export_attributes(query.attributes)
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        segment_id, subject_type, name = segment.id, segment.subject_type, segment.name
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:100] or "segment"
    return Response(
        stream_with_context(exports.member_csv(unit_of_work, segment_id, subject_type, attributes)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


def _export_attributes(spec: str | None) -> list[str]:
    if not spec:
        return []
    names = [n.strip() for n in spec.split(",")]
    if len(names) > MAX_EXPORT_ATTRIBUTES:
        raise invalid("query.attributes", f"at most {MAX_EXPORT_ATTRIBUTES} attributes")
    for name in names:
        if not _ATTRIBUTE_NAME.match(name):
            raise invalid("query.attributes", f"{name[:50]!r} is not an attribute name (1 to 100 characters)")
    return list(dict.fromkeys(names))


def _identity(row) -> dict[str, Any]:
    keys = ("external_id", "email", "name", "domain")
    return {k: getattr(row, k) for k in keys if k in row._fields}


def _upload_stream() -> io.BufferedIOBase:
    """The uploaded CSV as a byte stream: a multipart ``file`` field or a text/csv body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise invalid("body.file", "send the CSV as the multipart field 'file' (or as a text/csv body)")
        return upload.stream
    if request.mimetype in ("text/csv", "text/plain", "application/octet-stream"):
        return io.BufferedReader(request.stream)
    raise invalid("body.file", "send the CSV as a text/csv body or as the multipart field 'file'", status=415)


# -- history ---------------------------------------------------------------------------------------------------------


@segments_bp.get("/<int:segment_id>/history")
def segment_history(path: SegmentPath, query: HistoryQuery):
    """Every enter and exit of the segment, newest first, ``limit`` at a time; ``since`` keeps the later ones."""
    before = decode_id_cursor(query.cursor, "before")
    with service_errors(), unit_of_work() as session:
        segment = service.get_segment(session, workspace_id(), path.segment_id)
        rows = reads.segment_history_page(session, segment, query.limit + 1, query.since, before)
    page = rows[: query.limit]
    data = [{"subject_id": r.subject_id, "change": r.change, "at": r.at} for r in page]
    return {"data": data, "next_cursor": _history_cursor(rows, query.limit)}


@segments_bp.get("/history")
def subject_history(path: WorkspacePath, query: SubjectHistoryQuery):
    """Every segment a subject entered or left, newest first (``subject_type`` and ``subject_id``)."""
    before = decode_id_cursor(query.cursor, "before")
    with unit_of_work() as session:
        rows = reads.subject_history_page(
            session, workspace_id(), query.subject_type, query.subject_id, query.limit + 1, query.since, before
        )
    page = rows[: query.limit]
    data = [{"segment_id": r.segment_id, "segment": r.name, "change": r.change, "at": r.at} for r in page]
    return {"data": data, "next_cursor": _history_cursor(rows, query.limit)}


def _history_cursor(rows, limit: int) -> str | None:
    return encode_cursor({"before": rows[limit - 1].id}) if len(rows) > limit else None


def _document_csv_bodies() -> None:
    # flask-openapi3 documents a raw body as a plain string; say what the uploads really are.
    body = RequestBody(
        required=True,
        content={
            "multipart/form-data": MediaType(
                schema=Schema(type="object", properties={"file": Schema(type="string", format="binary")})
            ),
            "text/csv": MediaType(schema=Schema(type="string")),
        },
    )
    for url, path_item in segments_bp.paths.items():
        if url.endswith("upload") and path_item.post is not None:
            path_item.post.requestBody = body


_document_csv_bodies()
