"""JSON the API speaks: ISO 8601 timestamps, enums as their values."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from flask.json.provider import DefaultJSONProvider


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class ApiJSONProvider(DefaultJSONProvider):
    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        return to_jsonable(o)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Absurdly deep nesting is malformed input (a 4xx), not a server fault.
            raise ValueError("JSON is nested too deeply") from None
