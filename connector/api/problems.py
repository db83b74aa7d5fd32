"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

A problem names what was wrong in ``errors``: a list of ``{"field": "body.batch[3].email", "reason": "..."}``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

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
