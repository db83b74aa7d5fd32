"""API module placeholder: filled by its feature."""

from __future__ import annotations

from flask_openapi3 import APIBlueprint


def blueprints() -> list[APIBlueprint]:
    return []
