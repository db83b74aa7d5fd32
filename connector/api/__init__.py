"""The HTTP API under ``/api/v1``: thin views that validate, call one service, and shape the answer."""

from __future__ import annotations

from flask_openapi3 import OpenAPI


def register_api(app: OpenAPI) -> None:
    from connector.api import (
        admin,
        automation,
        erasure,
        ingest,
        lists,
        operations,
        playbooks,
        segment_groups,
        segments,
        sources,
        subjects,
        syncs,
        workspaces,
        workspaces_hq,
    )

    for module in (
        workspaces,
        ingest,
        subjects,
        segments,
        segment_groups,
        syncs,
        admin,
        erasure,
        workspaces_hq,
        lists,
        operations,
        sources,
        automation,
        playbooks,
    ):
        for blueprint in module.blueprints():
            app.register_api(blueprint)
