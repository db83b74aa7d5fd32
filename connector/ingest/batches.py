"""Batches of items: validating them one by one, and what became of each.

A batch is taken whole or not at all, unless the caller asks for ``partial``: then the valid items are written and
the invalid ones reported. Either way every item ends with one fate: ``ok``, ``duplicate`` (an event whose
``message_id`` was already recorded: skipped, harmlessly) or ``invalid`` with its errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from connector.changes import ChangeSet

MAX_BATCH = 1000

OK = "ok"
DUPLICATE = "duplicate"
INVALID = "invalid"

ItemT = TypeVar("ItemT", bound=BaseModel)


def error_field(loc: Sequence[Any]) -> str:
    """``("users", 0, "email")`` -> ``users[0].email`` (relative to the item)."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.removeprefix(".")


@dataclass
class ItemResult:
    index: int
    status: str = OK
    # {"field": <path inside the item, "" for the item itself>, "reason": ...}
    errors: list[dict[str, str]] = field(default_factory=list)
    id: int | None = None
    created: bool | None = None

    def reject(self, field_name: str, reason: str) -> None:
        self.status = INVALID
        self.errors.append({"field": field_name, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            body["id"] = self.id
        if self.created is not None:
            body["created"] = self.created
        if self.errors:
            body["errors"] = self.errors
        return body


@dataclass
class BatchResult:
    results: list[ItemResult]
    changes: ChangeSet = field(default_factory=ChangeSet)

    @property
    def invalid(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == INVALID]

    def counts(self) -> dict[str, int]:
        counts = {OK: 0, DUPLICATE: 0, INVALID: 0}
        for result in self.results:
            counts[result.status] += 1
        return counts


class BatchRejectedError(Exception):
    """The batch has invalid items and was not taken in part: nothing of it is written."""

    def __init__(self, invalid: list[ItemResult]) -> None:
        super().__init__(f"{len(invalid)} invalid item(s)")
        self.invalid = invalid


class Batch(Generic[ItemT]):
    """The items of one batch, validated one by one, with a result per item.

    ``valid()`` yields ``(result, item)`` for items still valid; ``reject`` marks one invalid later (a conflict
    found while planning the writes). ``check(partial)`` raises ``BatchRejectedError`` when anything is invalid and
    the batch is not taken in part.
    """

    def __init__(self, model: type[ItemT], raw_items: Sequence[Any]) -> None:
        self.results = [ItemResult(index) for index in range(len(raw_items))]
        self.items: list[ItemT | None] = []
        for result, raw in zip(self.results, raw_items, strict=True):
            try:
                self.items.append(model.model_validate(raw))
            except ValidationError as exc:
                self.items.append(None)
                for error in exc.errors():
                    result.reject(error_field(error["loc"]), error["msg"].removeprefix("Value error, "))

    def valid(self) -> list[tuple[ItemResult, ItemT]]:
        return [(r, item) for r, item in zip(self.results, self.items, strict=True) if r.status != INVALID]

    def check(self, partial: bool) -> None:
        invalid = [r for r in self.results if r.status == INVALID]
        if invalid and not partial:
            raise BatchRejectedError(invalid)

    def result(self, changes: ChangeSet) -> BatchResult:
        return BatchResult(self.results, changes)
