"""What the services refuse, as the web UI shows it: a message and reasons next to the fields they concern.

This is the one place that knows the services' error classes (the API translates the same ones into problem
documents). A page calls services inside ``refusals()`` and renders the ``Refusal`` it catches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from connector.api.problems import ProblemError
from connector.directory import UnknownSegmentError
from connector.errors import ServiceError


@dataclass
class Refusal(Exception):
    """A refused request: ``status`` (422, 404, 409, 403), a ``message`` and ``fields`` (field path -> reason)."""

    status: int
    message: str
    fields: dict[str, str] = field(default_factory=dict)
    usages: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def under(self, prefix: str) -> dict[str, str]:
        """The reasons of fields at or below ``prefix`` (``name``, ``conditions.children[1]``...)."""
        return {f: r for f, r in self.fields.items() if f == prefix or f.startswith((prefix + ".", prefix + "["))}


def _fields(items: list[dict[str, Any]] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items or []:
        name = str(item.get("field", ""))
        for location in ("body.", "query."):
            name = name.removeprefix(location)
        found.setdefault(name, str(item.get("reason", "")))
    return found


def refusal_of(exc: Exception) -> Refusal:
    """The ``Refusal`` a service error stands for."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, ValidationError):
        items = [{"field": ".".join(map(str, e["loc"])), "reason": e["msg"]} for e in exc.errors()]
        return Refusal(422, "Some fields need attention.", _fields(items))
    if isinstance(exc, IntegrityError):
        return Refusal(409, "Another change got there first; reload and try again.")
    if isinstance(exc, ProblemError):
        return Refusal(exc.status, exc.detail or exc.title, _fields(exc.errors), list(exc.extra.get("usages", [])))
    if isinstance(exc, UnknownSegmentError):
        return Refusal(422, f"No segment named {exc.ref!r}.", {"segment": "no such segment"})
    status = getattr(exc, "status", 422)
    if status == 404:
        return Refusal(404, f"No such {getattr(exc, 'what', 'thing')} in this workspace.")
    usages = list(getattr(exc, "extra", {}).get("usages", []))
    errors = getattr(exc, "errors", None)
    message = "Some fields need attention." if errors and status == 422 else str(exc)
    return Refusal(status, message, _fields(errors), usages)


REFUSED = (
    Refusal,
    ServiceError,
    UnknownSegmentError,
    ProblemError,
    ValidationError,
    IntegrityError,
)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn any service refusal raised inside into a ``Refusal``."""
    try:
        yield
    except REFUSED as exc:
        raise refusal_of(exc) from exc
