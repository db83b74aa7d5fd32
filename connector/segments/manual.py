"""Explicit members of manual segments: by id, external id or email, from JSON or an uploaded CSV.

A person (or account) must already exist. References are resolved set-based: they go to a scratch table in
chunks, are matched against the workspace's users or accounts with one indexed join per kind of reference, and the
unmatched rows are reported one by one (the first ``UNKNOWN_REPORTED``; ``unknown_count`` counts them all) while
the matched ones are applied. Manual segments never change by themselves: only these calls change them.

CSV: with a header row naming ``id``, ``email`` and/or ``external_id`` columns, each row takes the first non-empty
of those columns (in header order). Without such a header, each row's first cell is an email when it contains
``@``, an id when it is all digits, and is reported otherwise.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, insert, select, union_all
from sqlalchemy.orm import Session

from connector.errors import ConflictError, InvalidError
from connector.models import Account, Segment, SegmentKind, SegmentMembership, SubjectType, User
from connector.scratch import insert_rows, scratch
from connector.segments.membership import change_members

UNKNOWN_REPORTED = 1_000
_CHUNK = 5_000
REFERENCE_KINDS = ("id", "email", "external_id")

_metadata = MetaData()
_TEMPORARY = {"prefixes": ["TEMPORARY"], "postgresql_on_commit": "DELETE ROWS"}
# One row per reference: ``op`` is "add" or "remove"; exactly one of id / email / external_id is set.
references = Table(
    "scratch_member_references",
    _metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("op", String(6), nullable=False),
    Column("origin", String(40), nullable=False),
    Column("id", BigInteger),
    Column("email", String(400)),
    Column("external_id", String(400)),
    **_TEMPORARY,
)
resolved = Table(
    "scratch_resolved_references",
    _metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("op", String(6), nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    **_TEMPORARY,
)


class MembersError(InvalidError):
    """A request about members that cannot be carried out at all (``errors``: ``[{"field", "reason"}]``)."""


class NotManualError(ConflictError):
    """Members of a dynamic segment follow its conditions; they cannot be added or removed by hand."""


@dataclass
class MembersResult:
    added: int = 0
    removed: int = 0
    unknown: list[dict[str, Any]] = field(default_factory=list)
    unknown_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "unknown_count": self.unknown_count,
            "unknown": self.unknown,
        }


@dataclass(frozen=True)
class Reference:
    """One reference to a subject, with where it came from (``body.add[2]`` or a CSV row number)."""

    op: str
    kind: str
    value: Any
    origin: Any


def references_from_json(add: Iterable[dict], remove: Iterable[dict]) -> list[Reference]:
    """``{"add": [{"id": 1}, {"email": "a@x"}, {"external_id": "u1"}], "remove": [...]}`` as references.

    Raises ``MembersError`` for items that are not exactly one reference of a valid form.
    """
    found: list[Reference] = []
    errors: list[dict[str, str]] = []
    for op, items in (("add", add), ("remove", remove)):
        for i, item in enumerate(items):
            origin = f"{op}[{i}]"
            keys = [k for k in REFERENCE_KINDS if isinstance(item, dict) and item.get(k) is not None]
            if not isinstance(item, dict) or len(keys) != 1 or set(item) - set(REFERENCE_KINDS):
                errors.append({"field": origin, "reason": "give exactly one of id, email, external_id"})
                continue
            kind = keys[0]
            value, reason = _normalised(kind, item[kind])
            if reason:
                errors.append({"field": f"{origin}.{kind}", "reason": reason})
            else:
                found.append(Reference(op, kind, value, origin))
    if errors:
        raise MembersError(errors)
    return found


def _normalised(kind: str, value: Any) -> tuple[Any, str | None]:
    if kind == "id":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**63 - 1:
            return None, "must be a positive integer"
        return value, None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 400:
        return None, "must be a non-empty string of at most 400 characters"
    if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        return None, "must be valid text (no NUL characters or lone surrogates)"
    value = value.strip()
    return (value.lower() if kind == "email" else value), None


def references_from_csv(stream: IO[bytes], op: str = "add") -> Iterator[Reference | dict[str, Any]]:
    """References from a CSV file (see the module docstring), streamed; a row that is not a reference comes out
    as an ``{"row", "value", "reason"}`` report. Raises ``MembersError`` when the file is not UTF-8 CSV."""
    text = codecs.getreader("utf-8-sig")(stream, errors="strict")
    reader = csv.reader(_checked_lines(text))
    columns: list[tuple[int, str]] | None = None
    try:
        for row in reader:
            number = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if number == 1 and columns is None:
                header = [(i, c.lower()) for i, c in enumerate(cells) if c.lower() in REFERENCE_KINDS]
                if header:
                    columns = header
                    continue
            if columns:
                picked = next(((kind, cells[i]) for i, kind in columns if i < len(cells) and cells[i]), None)
                if picked is None:
                    yield {"row": number, "value": "", "reason": "no id, email or external_id in this row"}
                    continue
                kind, raw = picked
            else:
                raw = cells[0]
                kind = "email" if "@" in raw else "id" if raw.isdecimal() else None
                if kind is None:
                    reason = "not an id or an email (name the column id, email or external_id in a header row)"
                    yield {"row": number, "value": raw[:200], "reason": reason}
                    continue
            value: Any = raw
            if kind == "id":
                value = int(raw) if raw.isdecimal() and len(raw) < 20 else raw
            value, reason = _normalised(kind, value)
            if reason:
                yield {"row": number, "value": raw[:200], "reason": f"{kind} {reason}"}
            else:
                yield Reference(op, kind, value, number)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MembersError([{"field": "file", "reason": f"not a UTF-8 CSV file: {exc}"}]) from None


def _checked_lines(text: Iterable[str]) -> Iterator[str]:
    for line in text:
        if "\x00" in line:
            raise csv.Error("NUL character")
        yield line


def change_manual_members(
    session: Session, segment: Segment, items: Iterable[Reference | dict[str, Any]]
) -> MembersResult:
    """Resolve the references and apply them to a manual segment (removes win over adds of the same subject).

    ``items`` may mix references and ready-made reports of rows that were not references (CSV). Raises
    ``NotManualError`` for a dynamic segment.
    """
    if segment.kind != SegmentKind.MANUAL:
        raise NotManualError(f"segment {segment.name!r} is dynamic: its members follow its conditions")
    result = MembersResult()
    scratch(session, references, resolved)
    batch: list[dict[str, Any]] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            _report(result, item)
            continue
        row = {"position": number, "op": item.op, "origin": str(item.origin), "id": None, "email": None}
        batch.append({**row, "external_id": None, item.kind: item.value})
        if len(batch) >= _CHUNK:
            insert_rows(session, references, batch)
            batch = []
    insert_rows(session, references, batch)

    _resolve(session, segment)
    unmatched = ~references.c.position.in_(select(resolved.c.position))
    result.unknown_count += session.scalar(select(func.count()).select_from(references).where(unmatched))
    room = UNKNOWN_REPORTED - len(result.unknown)
    rows = session.execute(select(references).where(unmatched).order_by(references.c.position).limit(room))
    for row in rows:
        kind = next(k for k in REFERENCE_KINDS if getattr(row, k) is not None)
        # A CSV row is reported by its number, a JSON item by its field.
        where = {"row": int(row.origin)} if row.origin.isdigit() else {"field": row.origin}
        result.unknown.append({**where, "value": getattr(row, kind), "reason": _unknown_reason(segment, kind)})

    evaluation = change_members(
        session,
        segment.id,
        add=select(resolved.c.subject_id).where(resolved.c.op == "add"),
        remove=select(resolved.c.subject_id).where(resolved.c.op == "remove"),
    )
    result.added, result.removed = evaluation.counts.get(segment.id, (0, 0))
    return result


def _unknown_reason(segment: Segment, kind: str) -> str:
    if kind == "email" and segment.subject_type == SubjectType.ACCOUNT:
        return "accounts have no email; use id or external_id"
    return f"no {segment.subject_type.value} with this {kind.replace('_', ' ')} in this workspace"


def _report(result: MembersResult, item: dict[str, Any]) -> None:
    result.unknown_count += 1
    if len(result.unknown) < UNKNOWN_REPORTED:
        result.unknown.append(item)


def _resolve(session: Session, segment: Segment) -> None:
    """Match references to the workspace's subjects of the segment's type, one indexed join per kind."""
    subject = User if segment.subject_type == SubjectType.USER else Account
    r = references.c
    matches = [
        select(r.position, r.op, subject.id)
        .join(subject, subject.id == r.id)
        .where(subject.workspace_id == segment.workspace_id),
        select(r.position, r.op, subject.id).join(
            subject, (subject.external_id == r.external_id) & (subject.workspace_id == segment.workspace_id)
        ),
    ]
    if subject is User:
        matches.append(
            select(r.position, r.op, User.id).join(
                User, (User.email == r.email) & (User.workspace_id == segment.workspace_id)
            )
        )
    session.execute(insert(resolved).from_select(["position", "op", "subject_id"], union_all(*matches)))


def member_count(session: Session, segment_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(SegmentMembership).where(SegmentMembership.segment_id == segment_id)
    )
