"""Refusing request bodies that are not JSON before any view sees them.

Every view that takes a JSON body (a ``body`` parameter, validated by flask-openapi3) gets 400
``application/problem+json`` "the body is not valid JSON" when the body does not parse or is sent with a
Content-Type other than ``application/json`` (or ``+json``), instead of a 422 about "a valid dictionary" that
names neither cause. Views that stream uploads (``raw`` CSV bodies) are left alone. The check runs after
authentication, so a request without a valid token is still a 401 whatever its body.
"""

from __future__ import annotations

import inspect
from functools import cache

from flask import Flask, current_app, request

from connector.api.problems import ProblemError

NOT_JSON = "the body is not valid JSON"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@cache
def _takes_json_body(view) -> bool:
    try:
        return "body" in inspect.signature(view).parameters
    except (TypeError, ValueError):
        return False


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _refuse(reason: str) -> ProblemError:
    return ProblemError(400, "Bad Request", reason, errors=[{"field": "body", "reason": reason}])


def check_json_body() -> None:
    """``before_request``: raise a 400 problem when a JSON view receives a body that is not JSON."""
    if request.method not in BODY_METHODS or request.endpoint is None:
        return
    view = current_app.view_functions.get(request.endpoint)
    if view is None or not _takes_json_body(view):
        return
    if not request.mimetype and not request.content_length and not request.get_data(cache=True):
        return  # no body at all: the view's validation says what is missing (422)
    if not _is_json(request.mimetype):
        got = request.mimetype or "none"
        raise _refuse(f"{NOT_JSON} (Content-Type must be application/json, got {got})")
    # Parsed once here and cached on the request, so the view's validation reuses it.
    if request.get_json(silent=True) is None and request.get_data(cache=True).strip() != b"null":
        raise _refuse(NOT_JSON)


def register_json_body_check(app: Flask) -> None:
    """Check bodies after each blueprint's own ``before_request`` (authentication and the workspace wall), so a
    stranger still learns nothing but 401. Call it once every blueprint is registered."""
    for name in list(app.blueprints):
        app.before_request_funcs.setdefault(name, []).append(check_json_body)
