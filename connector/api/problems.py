"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

A problem names what was wrong in ``errors``: a list of ``{"field": "body.batch[3].email", "reason": "..."}``.

The services' refusals (``connector.errors``) are translated here, once, for every view: ``InvalidError`` -> 422
"Invalid request" with its fields located in the request body (``body.name``; ``located("query")`` for a view
whose input is its query string), ``NotFoundError`` -> 404, ``ConflictError`` -> 409 (its ``extra`` such as
``usages`` in the document), ``ForbiddenError`` -> 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from connector.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, ServiceError

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere under a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def not_found(what: str = "resource") -> ProblemError:
    return ProblemError(404, "Not Found", f"No such {what}.")


def conflict(detail: str, **extra: Any) -> ProblemError:
    return ProblemError(409, "Conflict", detail, **extra)


def invalid(field: str, reason: str, status: int = 422) -> ProblemError:
    return ProblemError(status, "Invalid request", f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


def _located(errors: list[dict[str, Any]], location: str) -> list[dict[str, Any]]:
    return [{**e, "field": f"{location}.{e['field']}" if e["field"] else location} for e in errors]


def _joined(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])


def service_problem(exc: ServiceError, location: str = "body") -> ProblemError:
    """The problem document of a service's refusal; fields are located in ``location`` of the request."""
    if isinstance(exc, InvalidError):
        errors = _located(exc.errors, location)
        return ProblemError(422, "Invalid request", _joined(errors), errors=errors)
    if isinstance(exc, NotFoundError):
        return not_found(exc.what)
    if isinstance(exc, ConflictError):
        if exc.errors:
            errors = _located(exc.errors, location)
            return ProblemError(409, "Conflict", _joined(errors), errors=errors, **exc.extra)
        return ProblemError(409, "Conflict", str(exc), **exc.extra)
    if isinstance(exc, ForbiddenError):
        return ProblemError(403, "Forbidden", str(exc))
    return ProblemError(exc.status, "Bad Request", str(exc))


@contextmanager
def located(location: str) -> Iterator[None]:
    """Refusals of the services called inside, with their fields in ``location`` (``query``, ``path``)."""
    try:
        yield
    except ServiceError as exc:
        raise service_problem(exc, location) from exc


@contextmanager
def concurrent_change(detail: str) -> Iterator[None]:
    """Two requests raced past the same check (a name taken meanwhile, a row deleted meanwhile): 409 ``detail``."""
    try:
        yield
    except IntegrityError as exc:
        raise conflict(detail) from exc


def problem_response(problem: ProblemError) -> Response:
    response = Response(json.dumps(problem.to_dict()), status=problem.status, mimetype=PROBLEM_JSON)
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="connector"'
    return response


def field_path(location: str, loc: tuple[Any, ...]) -> str:
    """``("batch", 3, "email")`` in the body -> ``body.batch[3].email``."""
    path = location
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validation_errors(exc: ValidationError, location: str = "body") -> list[dict[str, Any]]:
    return [{"field": field_path(location, tuple(e["loc"])), "reason": e["msg"]} for e in exc.errors()]


def validation_problem(exc: ValidationError, location: str | None = None) -> ProblemError:
    errors = validation_errors(exc, location or _guess_location(exc))
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
    return ProblemError(422, "Invalid request", detail, errors=errors)


def _guess_location(exc: ValidationError) -> str:
    title = (exc.title or "").lower()
    for location in ("query", "path", "header"):
        if location in title:
            return location
    return "body"


def validation_error_callback(exc: ValidationError) -> Response:
    """flask-openapi3 hook: a request that fails its pydantic model."""
    return problem_response(validation_problem(exc))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ProblemError)
    def _problem(exc: ProblemError):
        return problem_response(exc)

    @app.errorhandler(ServiceError)
    def _refused(exc: ServiceError):
        return problem_response(service_problem(exc))

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return problem_response(validation_problem(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        # abort(response) from flask-openapi3's validation carries a ready response.
        if exc.response is not None:
            return exc.response
        return problem_response(ProblemError(exc.code or 500, exc.name, exc.description))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return problem_response(ProblemError(500, "Internal Server Error", "An unexpected error occurred."))
