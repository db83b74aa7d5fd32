"""Inferring the types of a CSV file's attribute columns from its first rows.

A column whose every non-empty cell in the sample reads as one type gets that type: ``number`` (plain decimals,
no leading zeros, no sign but ``-``, at most 15 digits before the point, so zip codes, phone numbers and long ids
stay text), ``boolean`` (true/false, yes/no), ``date`` (YYYY-MM-DD) or ``datetime`` (ISO 8601 with a time);
anything else stays ``string``. An inferred type is applied leniently: a later cell that does not read as it is
kept as text (and counted), while a type the caller declared refuses such a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime

NUMBER_RE = re.compile(r"^-?(0|[1-9]\d{0,14})(\.\d+)?$")
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no"})
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _kind(cell: str) -> str:
    text = cell.strip()
    if NUMBER_RE.match(text):
        return "number"
    if text.lower() in BOOLEAN_WORDS:
        return "boolean"
    if DATE_RE.match(text):
        try:
            date.fromisoformat(text)
        except ValueError:
            return "string"
        return "date"
    if DATETIME_RE.match(text):
        try:
            datetime.fromisoformat(text)
        except ValueError:
            return "string"
        return "datetime"
    return "string"


def infer_column(cells: Iterable[str]) -> str:
    """The one type every non-empty cell reads as (``date`` and ``datetime`` together are ``datetime``), else
    ``string``; ``string`` for a column with no value."""
    kinds = {_kind(cell) for cell in cells if cell.strip()}
    if kinds == {"date", "datetime"}:
        return "datetime"
    return kinds.pop() if len(kinds) == 1 else "string"


def infer_types(header: Sequence[str], columns: Iterable[str], rows: Iterable[Sequence[str]]) -> dict[str, str]:
    """Inferred types of ``columns`` (names in ``header``) from the sample ``rows``; columns that stay strings are
    left out."""
    rows = list(rows)
    inferred = {}
    for name in columns:
        index = header.index(name)
        kind = infer_column(row[index] for row in rows if index < len(row))
        if kind != "string":
            inferred[name] = kind
    return inferred
