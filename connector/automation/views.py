"""Views: saved lists of users or accounts — a condition tree of the segment language (so ``segment`` in / not in
is a leaf), chosen columns and a sort — read as a page with a cursor, a count, or a streamed CSV export.

A view keeps no membership: every read compiles its conditions and runs them at that instant.

Columns: built-in fields (users ``id``, ``external_id``, ``email``, ``default_channel``, ``created_at``; accounts
``id``, ``external_id``, ``domain``, ``name``, ``created_at``), ``attributes.<name>``, and computed properties by
name (``Segments``). Sort: ``{"by": <built-in field>, "direction": "asc" | "desc"}`` with the id as tie-break.
The cursor is the position after the page (stable while the data does not change under the sort).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from connector.automation.common import check_text, condition_tree, name_taken, parsed
from connector.computed import computed_properties
from connector.errors import InvalidError, NotFoundError
from connector.models import Account, ComputedValue, SubjectType, User, View, utcnow
from connector.segments.compiler import compile_condition
from connector.segments.validation import parse_conditions

FIELDS = {
    SubjectType.USER: ("id", "external_id", "email", "default_channel", "created_at"),
    SubjectType.ACCOUNT: ("id", "external_id", "domain", "name", "created_at"),
}
MAX_COLUMNS = 50
MAX_PAGE = 1000


class Sort(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: Annotated[str, Field(max_length=100)] = "id"
    direction: Literal["asc", "desc"] = "asc"


class ViewInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    subject_type: Literal["user", "account"] = "user"
    conditions: dict[str, Any] = Field(default_factory=lambda: {"type": "all", "children": []})
    columns: Annotated[list[Annotated[str, Field(max_length=200)]], Field(min_length=1, max_length=MAX_COLUMNS)] = [
        "id"
    ]
    sort: Sort = Field(default_factory=Sort)


def get_view(session: Session, workspace_id: int, view_id: int) -> View:
    view = session.get(View, view_id)
    if view is None or view.workspace_id != workspace_id:
        raise NotFoundError("view")
    return view


def list_views(session: Session, workspace_id: int) -> list[View]:
    return list(session.scalars(select(View).where(View.workspace_id == workspace_id).order_by(View.id)))


def save_view(session: Session, workspace_id: int, data: Any, view: View | None = None) -> View:
    body = parsed(ViewInput, data)
    name = check_text(body.name, "name")
    subject_type = SubjectType(body.subject_type)
    node, segment_ids = condition_tree(session, workspace_id, body.conditions, subject_type)
    computed = {p.name for p in computed_properties(subject_type)}
    for i, column in enumerate(body.columns):
        if column in FIELDS[subject_type] or column in computed:
            continue
        if column.startswith("attributes.") and 0 < len(column) - len("attributes.") <= 100:
            continue
        known = ", ".join([*FIELDS[subject_type], "attributes.<name>", *sorted(computed)])
        raise InvalidError.one(f"columns[{i}]", f"unknown column {column!r} (one of: {known})")
    if body.sort.by not in FIELDS[subject_type]:
        raise InvalidError.one("sort.by", "sort by one of: " + ", ".join(FIELDS[subject_type]))
    taken = select(View.id).where(View.workspace_id == workspace_id, View.name == name)
    if view is not None:
        taken = taken.where(View.id != view.id)
    if session.scalar(taken) is not None:
        raise name_taken("view", name)
    if view is None:
        view = View(workspace_id=workspace_id)
        session.add(view)
    view.name = name
    view.subject_type = subject_type
    view.conditions = node.model_dump(mode="json")
    view.segment_ids = segment_ids
    view.columns = list(dict.fromkeys(body.columns))
    view.sort = body.sort.model_dump()
    if view.hq_item_id is not None:
        view.edited_in_child = True  # an HQ sync that writes the copy clears it again
    session.flush()
    return view


def delete_view(session: Session, view: View) -> None:
    session.delete(view)
    session.flush()


def _matching(view: View, now: datetime) -> Select:
    subject_type = SubjectType(view.subject_type)
    node = parse_conditions(view.conditions, subject_type)
    return compile_condition(node, subject_type=subject_type, workspace_id=view.workspace_id, now=now)


def _rows_query(view: View, now: datetime) -> Select:
    subject_type = SubjectType(view.subject_type)
    table = (User if subject_type == SubjectType.USER else Account).__table__
    matched = _matching(view, now).subquery()
    selected = []
    query_from = table.join(matched, matched.c.subject_id == table.c.id)
    for i, column in enumerate(view.columns):
        if column in FIELDS[subject_type]:
            selected.append(table.c[column].label(f"c{i}"))
        elif column.startswith("attributes."):
            selected.append(table.c.attributes[column.removeprefix("attributes.")].label(f"c{i}"))
        else:
            values = ComputedValue.__table__.alias(f"computed_{i}")
            query_from = query_from.outerjoin(
                values,
                (values.c.subject_type == subject_type.value)
                & (values.c.subject_id == table.c.id)
                & (values.c.name == column),
            )
            selected.append(values.c.value.label(f"c{i}"))
    sort_column = table.c[view.sort.get("by", "id")]
    descending = view.sort.get("direction") == "desc"
    order = [sort_column.desc(), table.c.id.desc()] if descending else [sort_column.asc(), table.c.id.asc()]
    return select(*selected).select_from(query_from).where(table.c.workspace_id == view.workspace_id).order_by(*order)


def read_page(
    session: Session, view: View, *, offset: int = 0, limit: int = 100, now: datetime | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the view's rows (``{column: value}``) and the offset of the next page (None at the end)."""
    limit = max(1, min(limit, MAX_PAGE))
    rows = session.execute(_rows_query(view, now or utcnow()).offset(offset).limit(limit + 1)).all()
    page = [_as_dict(view, row) for row in rows[:limit]]
    return page, offset + limit if len(rows) > limit else None


def count_view(session: Session, view: View, now: datetime | None = None) -> int:
    return session.scalar(select(func.count()).select_from(_matching(view, now or utcnow()).subquery()))


def export_rows(session: Session, view: View, now: datetime | None = None) -> Iterator[list[Any]]:
    """The view's rows in order as lists of values (header first), fetched in chunks from one query."""
    yield list(view.columns)
    result = session.execute(_rows_query(view, now or utcnow()).execution_options(yield_per=1000))
    for row in result:
        yield list(row)


def _as_dict(view: View, row) -> dict[str, Any]:
    return {column: row[i] for i, column in enumerate(view.columns)}


def csv_text(open_session: Callable[[], AbstractContextManager[Session]], view: View) -> Iterator[str]:
    """The view's rows as CSV text in pieces of about 64 KB (JSON values such as ``Segments`` written as JSON), read
    in a session ``open_session`` opens (held while the export streams)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with open_session() as session:
        for row in export_rows(session, view):
            writer.writerow([cell_text(v) for v in row])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def cell_text(value: Any) -> Any:
    """A value as a view's page and CSV show it: JSON for objects and lists, empty for none."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else value
