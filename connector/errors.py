"""What a service refuses, in one vocabulary for every package.

Services raise these; entry points translate them once (``connector.api.problems`` turns them into
``application/problem+json``, the CLI into a message and exit status 2). Each is named for the caller's decision:

- ``InvalidError`` (422): the input is wrong; ``errors`` is ``[{"field", "reason"}]`` with field paths relative to
  the input (``conditions.all[2].value``); the API prefixes the location (``body.``).
- ``NotFoundError`` (404): no such thing in this workspace (another workspace's things are "not found" too).
- ``ConflictError`` (409): the request contradicts the current state (a name taken, a segment or destination in use,
  a run going); ``extra`` carries structured detail such as ``usages``.
- ``ForbiddenError`` (403): the member may not do this here.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of what a service refuses."""

    status = 400


class InvalidError(ServiceError):
    status = 422

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5]))
        self.errors = errors

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidError:
        return cls([{"field": field, "reason": reason}])

    def prefixed(self, prefix: str) -> InvalidError:
        """The same errors with ``prefix`` before each field (``body`` + ``name`` -> ``body.name``)."""
        return InvalidError([{**e, "field": f"{prefix}.{e['field']}" if e["field"] else prefix} for e in self.errors])


class NotFoundError(ServiceError):
    status = 404

    def __init__(self, what: str) -> None:
        super().__init__(f"No such {what}.")
        self.what = what


class ConflictError(ServiceError):
    status = 409

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.errors = errors or []
        self.extra = extra


class ForbiddenError(ServiceError):
    status = 403

    def __init__(self, detail: str = "You may not do this in this workspace.") -> None:
        super().__init__(detail)
