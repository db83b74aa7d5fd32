"""A segment's members as CSV text, streamed in chunks (the API's and the web UI's export): the member's id, its
identity columns, when it entered, then the chosen attributes (JSON for objects and lists, ``true``/``false`` for
booleans, empty for missing)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

from connector.models import SubjectType
from connector.segments import reads


def member_csv(
    open_session: Callable[[], AbstractContextManager[Session]],
    segment_id: int,
    subject_type: SubjectType,
    attributes: list[str],
) -> Iterator[str]:
    """The CSV text, a header then one piece per chunk of members; ``open_session`` opens the session the rows are
    read in (held while the export streams)."""
    identity = [c.key for c in reads.identity_columns(subject_type)[1]]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", *identity, "entered_at", *attributes])
    yield _drain(buffer)
    with open_session() as session:
        for rows in reads.member_chunks(session, segment_id, subject_type):
            for r in rows:
                stored = r.attributes if isinstance(r.attributes, dict) else {}
                identity_values = [getattr(r, k) or "" for k in identity]
                values = [_csv_value(stored.get(a)) for a in attributes]
                writer.writerow([r.subject_id, *identity_values, r.entered_at.isoformat(), *values])
            yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value
