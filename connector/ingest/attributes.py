"""Attribute (and object field) updates: a patch merges into what is stored."""

from __future__ import annotations

from typing import Any


def merge_attributes(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with ``patch`` applied: keys in the patch replace stored ones, a ``None`` value removes the key.

    Applying the same patches again gives the same result, so a re-sent batch changes nothing.
    """
    if not patch:
        return stored
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
