"""Answering the shared service errors (``connector.errors``) as problem documents, for the views of this package
that call services raising them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from connector.api.problems import ProblemError
from connector.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, ServiceError

TITLES = {
    InvalidError: "Invalid request",
    NotFoundError: "Not Found",
    ConflictError: "Conflict",
    ForbiddenError: "Forbidden",
}


@contextmanager
def service_problems(location: str = "body") -> Iterator[None]:
    """Turn a ``ServiceError`` into a problem document (input fields prefixed with ``location``)."""
    try:
        yield
    except ServiceError as exc:
        title = TITLES.get(type(exc), "Bad Request")
        errors = getattr(exc, "errors", [])
        if isinstance(exc, InvalidError):
            errors = exc.prefixed(location).errors
        extra = getattr(exc, "extra", {})
        raise ProblemError(exc.status, title, str(exc), errors=errors, **extra) from exc
