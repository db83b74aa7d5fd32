"""Pieces every API module shares: the workspace path model, blueprint construction, pagination."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from connector.api.context import authenticate
from connector.api.problems import invalid

BEARER = [{"bearer": []}]
# The largest id a BIGINT holds: ids in paths, bodies and cursors are bounded by it (never a database error).
MAX_ID = 2**63 - 1


class WorkspacePath(BaseModel):
    workspace: str = Field(description="Workspace slug or id", max_length=100)


def workspace_blueprint(name: str, tag: str, prefix: str = "") -> APIBlueprint:
    """A blueprint under ``/api/v1/workspaces/<workspace>``, authenticated and walled to that workspace."""
    bp = APIBlueprint(
        name,
        __name__,
        url_prefix="/api/v1/workspaces/<workspace>" + prefix,
        abp_tags=[Tag(name=tag)],
        abp_security=BEARER,
    )
    bp.before_request(authenticate)
    return bp


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, field: str = "query.cursor") -> dict[str, Any]:
    """Decode an opaque cursor; a client-made one that does not decode is a 422, never a 500."""
    if not cursor:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(field, "not a cursor returned by this API") from exc
    if not isinstance(values, dict):
        raise invalid(field, "not a cursor returned by this API")
    return values


def decode_id_cursor(cursor: str | None, key: str, field: str = "query.cursor") -> int | None:
    """The id stored under ``key`` in a cursor made by ``encode_cursor``; None for no cursor."""
    values = decode_cursor(cursor, field)
    if not values:
        return None
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise invalid(field, "not a cursor returned by this API")
    return value
