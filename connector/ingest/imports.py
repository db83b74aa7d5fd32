"""CSV import of users and of accounts, streamed: rows are read as they arrive and written a chunk at a time.

The header row names the columns. Users: ``external_id`` and/or ``email`` (one is required), accounts:
``external_id`` (required), ``domain``, ``name``. Both: ``tags`` (``;``-separated, added), and every other column
is an attribute. ``types`` gives columns a type (``number``, ``integer``, ``boolean``, ``date``, ``datetime``,
``string``); the other attribute columns get the type their first rows show (``csvtypes``), unless ``infer`` is
off, and the report lists what was inferred. An empty cell leaves that attribute as it is.

The file's encoding and delimiter are found from its start (``csvfiles``: UTF-8, else what charset-normalizer
finds; ``,``, ``;``, tab or ``|``) and reported.

Rows are taken one by one, as identify/group take items with ``partial``: a bad row is reported (its line number
in the file and the reason) and the good rows around it are written. A file that cannot be read as CSV at all (no
header, an encoding that cannot be told) is refused whole, naming the line.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import IO, Any

from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.csvfiles import CsvEncodingError, open_csv
from connector.ingest.accounts import group
from connector.ingest.batches import INVALID, BatchResult
from connector.ingest.csvtypes import infer_types
from connector.ingest.users import identify

CHUNK_ROWS = 1000
MAX_REPORTED_ERRORS = 1000
COLUMN_TYPES = ("string", "number", "integer", "boolean", "date", "datetime")
TRUE = {"true", "yes", "y", "1", "t"}
FALSE = {"false", "no", "n", "0", "f"}

# Rows may carry long texts; the csv module's default limit (128 KiB a field) is kept, and hitting it is a row error.


class ImportFormatError(Exception):
    """The upload cannot be imported at all. ``field`` is ``file`` or ``types``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","
    # Attribute columns given a type from their first rows, and how many later cells did not fit it (kept as text).
    inferred_types: dict[str, str] = field(default_factory=dict)
    kept_as_text: dict[str, int] = field(default_factory=dict)

    def reject_row(self, row: int, errors: list[tuple[str | None, str]]) -> None:
        """Count one failed row and keep its (column, reason) errors, up to ``MAX_REPORTED_ERRORS`` in all."""
        self.failed += 1
        for column, reason in errors:
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append({"row": row, "column": column, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "errors": self.errors,
            "errors_truncated": self.failed > len(self.errors),
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "inferred_types": self.inferred_types,
            "kept_as_text": self.kept_as_text,
        }


def parse_column_types(spec: str | None) -> dict[str, str]:
    """``"lifetime_value:number,signed_up:date"`` -> ``{"lifetime_value": "number", "signed_up": "date"}``."""
    types: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, kind = part.rpartition(":")
        name, kind = name.strip(), kind.strip().lower()
        if not sep or not name:
            raise ImportFormatError("types", f"{part.strip()!r} is not column:type")
        if kind not in COLUMN_TYPES:
            raise ImportFormatError("types", f"type {kind!r} of {name!r} is not one of {', '.join(COLUMN_TYPES)}")
        types[name] = kind
    return types


def convert(value: str, kind: str) -> Any:
    """A cell's text as a value of the column's type; ValueError says why it is not one."""
    text = value.strip()
    if kind == "string":
        return value
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("is not an integer") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "boolean":
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError("is not a boolean (true/false, yes/no, 1/0)")
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("is not a date (YYYY-MM-DD)") from None
    if kind == "datetime":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("is not an ISO 8601 date and time") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        try:
            return moment.astimezone(UTC).isoformat()
        except OverflowError:
            raise ValueError("is out of range") from None
    raise ValueError(f"unknown type {kind}")


@dataclass(frozen=True)
class _Layout:
    """What each column of a file means."""

    header: list[str]
    identity: tuple[str, ...]  # columns copied to the item as they are
    attributes: tuple[str, ...]
    types: dict[str, str]
    # Inferred types: a cell that does not fit stays text instead of failing its row.
    lenient: frozenset[str] = frozenset()


def _layout(header: list[str], identity: tuple[str, ...], required: tuple[str, ...], types: dict[str, str]) -> _Layout:
    header = [name.strip() for name in header]
    if not any(header):
        raise ImportFormatError("file", "the first row must be a header naming the columns")
    if "" in header:
        raise ImportFormatError("file", f"column {header.index('') + 1} of the header has no name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ImportFormatError("file", f"the header names {', '.join(duplicates)} more than once")
    if not any(name in header for name in required):
        raise ImportFormatError("file", f"the header needs a column {' or '.join(required)}")
    attributes = tuple(name for name in header if name not in identity and name != "tags")
    for name in types:
        if name not in header:
            raise ImportFormatError("types", f"the file has no column {name!r}")
        if name not in attributes:
            raise ImportFormatError("types", f"column {name!r} is not an attribute column; only those take a type")
    return _Layout(header, tuple(name for name in header if name in identity), attributes, types)


def _item(
    layout: _Layout, cells: list[str], report: ImportReport | None = None
) -> tuple[dict[str, Any], list[tuple[str | None, str]]]:
    """The ingestion item of one row, and the (column, reason) of cells that could not be read."""
    values = dict(zip(layout.header, cells, strict=False))
    item: dict[str, Any] = {}
    errors: list[tuple[str | None, str]] = []
    for name in layout.identity:
        if values.get(name, "").strip():
            item[name] = values[name]
    tags = [t.strip() for t in values.get("tags", "").split(";") if t.strip()]
    if tags:
        item["tags"] = tags
    attributes = {}
    for name in layout.attributes:
        cell = values.get(name, "")
        if cell == "":
            continue
        try:
            attributes[name] = convert(cell, layout.types.get(name, "string"))
        except ValueError as exc:
            if name not in layout.lenient:
                errors.append((name, f"{cell[:50]!r} {exc}"))
                continue
            attributes[name] = cell
            if report is not None:
                report.kept_as_text[name] = report.kept_as_text.get(name, 0) + 1
    if attributes:
        item["attributes"] = attributes
    return item, errors


def _rows(stream: IO[bytes], report: ImportReport) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, cells, None) of each record, or (line number, [], reason) for one that is not valid CSV."""
    try:
        upload = open_csv(stream)
    except CsvEncodingError as exc:
        raise ImportFormatError("file", str(exc)) from None
    report.encoding, report.delimiter = upload.encoding, upload.delimiter
    reader = csv.reader(upload.text, delimiter=upload.delimiter)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, [], f"not valid CSV: {exc}"
            continue
        except UnicodeDecodeError:
            reason = f"is not {upload.encoding} text after line {reader.line_num} (its start is); save it as UTF-8"
            raise ImportFormatError("file", reason) from None
        if cells:
            yield reader.line_num, cells, None


def _import(
    session: Session,
    workspace_id: int,
    stream: IO[bytes],
    *,
    ingest: Callable[..., BatchResult],
    identity: tuple[str, ...],
    required: tuple[str, ...],
    types: dict[str, str],
    on_chunk: Callable[[ChangeSet], None] | None,
    chunk_rows: int,
    infer: bool = True,
) -> ImportReport:
    report = ImportReport()
    rows = _rows(stream, report)
    first = next(rows, None)
    if first is None or first[2] is not None:
        raise ImportFormatError("file", "is empty; the first row must be a header naming the columns")
    layout = _layout(first[1], identity, required, types)
    if infer:
        # The first chunk is the sample: read it before anything is written.
        sample = list(itertools.islice(rows, max(chunk_rows, 1)))
        rows = itertools.chain(sample, rows)
        untyped = [name for name in layout.attributes if name not in types]
        cells = (cells for _, cells, error in sample if error is None)
        report.inferred_types = infer_types(layout.header, untyped, cells)
        layout = replace(layout, types={**report.inferred_types, **types}, lenient=frozenset(report.inferred_types))

    def flush(chunk: list[tuple[int, dict[str, Any] | None, list[tuple[str | None, str]]]]) -> None:
        """Write a chunk's readable rows; report every failed row of the chunk in file order."""
        items = [item for _, item, _ in chunk if item is not None]
        result = ingest(session, workspace_id, items, partial=True)
        fates = iter(result.results)
        created, updated = set(), set()
        for line, item, errors in chunk:
            if item is None:
                report.reject_row(line, errors)
                continue
            fate = next(fates)
            if fate.status == INVALID:
                report.reject_row(line, [(_column(e["field"]), e["reason"]) for e in fate.errors])
            elif fate.created:
                created.add(fate.id)
            else:
                updated.add(fate.id)
        report.created += len(created)
        report.updated += len(updated - created)
        if on_chunk is not None and result.changes:
            on_chunk(result.changes)

    chunk: list[tuple[int, dict[str, Any] | None, list[tuple[str | None, str]]]] = []
    for line, cells, error in rows:
        report.rows += 1
        if error is not None:
            chunk.append((line, None, [(None, error)]))
        elif len(cells) > len(layout.header):
            chunk.append((line, None, [(None, f"has {len(cells)} cells; the header names {len(layout.header)}")]))
        else:
            item, errors = _item(layout, cells, report)
            chunk.append((line, None if errors else item, errors))
        if len(chunk) >= chunk_rows:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
    return report


def _column(item_field: str) -> str | None:
    """The column an item error is about: ``email`` -> ``email``, ``attributes`` -> None, ``tags[2]`` -> tags."""
    name = item_field.split(".", 1)[0].split("[", 1)[0]
    return name or None


def import_users(
    session: Session,
    workspace_id: int,
    stream: IO[bytes],
    *,
    types: dict[str, str] | None = None,
    on_chunk: Callable[[ChangeSet], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    infer: bool = True,
) -> ImportReport:
    """Import users from a CSV byte stream (read incrementally); ``on_chunk`` gets each written chunk's changes.

    The caller commits. Raises ``ImportFormatError`` when the file cannot be imported at all.
    """
    return _import(
        session,
        workspace_id,
        stream,
        ingest=identify,
        identity=("external_id", "email"),
        required=("external_id", "email"),
        types=types or {},
        on_chunk=on_chunk,
        chunk_rows=chunk_rows,
        infer=infer,
    )


def import_accounts(
    session: Session,
    workspace_id: int,
    stream: IO[bytes],
    *,
    types: dict[str, str] | None = None,
    on_chunk: Callable[[ChangeSet], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    infer: bool = True,
) -> ImportReport:
    """Import accounts from a CSV byte stream, like ``import_users``; ``external_id`` is required."""
    return _import(
        session,
        workspace_id,
        stream,
        ingest=group,
        identity=("external_id", "domain", "name"),
        required=("external_id",),
        types=types or {},
        on_chunk=on_chunk,
        chunk_rows=chunk_rows,
        infer=infer,
    )
