"""The HTTP API under ``/api/v1``: thin views that validate, call one service, and shape the answer."""

from __future__ import annotations

from flask_openapi3 import OpenAPI


def register_api(app: OpenAPI) -> None:
    from connector.api import ingest, operations, segments, subjects, syncs, workspaces

    for module in (workspaces, ingest, subjects, segments, syncs, operations):
        for blueprint in module.blueprints():
            app.register_api(blueprint)
