"""Files on a local disk: every batch is appended to ``<directory>/<object>.jsonl`` (or ``.csv``).

JSON Lines is the faithful format: one line per record and operation,
``{"op": "upsert" | "update" | "remove", "key": ..., "identity": ..., "properties": {...}, "at": "<UTC ISO>"}``;
replaying the lines in order gives the current state. CSV has the columns ``op, key, identity`` and then the
fields, fixed when the file is created (the plan's fields and those of the first batch): a later record with a
field the header lacks is rejected, naming it — start a new file (or use JSON Lines) when fields change. Lists
in CSV cells are joined by ``;``.

A batch is flushed and fsynced before ``write`` returns, so an acknowledged record is on disk. A missing or
unwritable directory is a ``ConfigError``; other I/O failures (a full disk) are a ``TransientError``.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connector.destinations.base import (
    ConfigError,
    Destination,
    DestinationConfig,
    OutboundRecord,
    RecordResult,
    TransientError,
    WritePlan,
    json_default,
)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
LEADING_COLUMNS = ("op", "key", "identity")
CONFIG_ERRNOS = {"EACCES", "EPERM", "EROFS", "ENOENT", "ENOTDIR", "EISDIR"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(_cell(v) for v in value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=json_default)
    return str(value)


class FileConfig(DestinationConfig):
    directory: str = Field(description="Directory the files are written to (created when missing)")
    format: Literal["jsonl", "csv"] = Field("jsonl", description="jsonl (faithful) or csv (columns fixed at creation)")


class FileDestination(Destination):
    type = "file"
    label = "Files"
    Config = FileConfig
    max_batch_size = 1000
    supports_remove = True

    def __init__(self, config: FileConfig | Mapping[str, Any]) -> None:
        super().__init__(config)
        self._lock = threading.Lock()  # one batch at a time per file set: lines never interleave

    @property
    def directory(self) -> Path:
        return Path(self.config.directory).expanduser()

    def path(self, object_type: str) -> Path:
        if not SAFE_NAME.match(object_type):
            raise ConfigError(f"{object_type!r} cannot name a file (letters, digits, _ . - only)")
        return self.directory / f"{object_type}.{self.config.format}"

    def check(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.directory):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot write to {self.directory}: {exc.strerror or exc}") from exc

    def prepare(self, plan: WritePlan) -> None:
        self.path(plan.object_type)
        self.check()

    def write(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        return self._append(plan.mode, plan, batch)

    def remove(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        return self._append("remove", plan, batch)

    def _append(self, op: str, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        if len(batch) > self.max_batch_size:
            raise ValueError(f"at most {self.max_batch_size} records per batch, got {len(batch)}")
        if not batch:
            return []
        path = self.path(plan.object_type)
        try:
            with self._lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a+", encoding="utf-8", newline="") as handle:
                    if self.config.format == "csv":
                        text, results = self._csv(handle, op, plan, batch)
                    else:
                        text, results = self._jsonl(op, batch), [RecordResult.ok(r.key) for r in batch]
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            name = os.strerror(exc.errno) if exc.errno else str(exc)
            message = f"cannot append to {path}: {name}"
            if errno.errorcode.get(exc.errno or 0) in CONFIG_ERRNOS:
                raise ConfigError(message) from exc
            raise TransientError(message) from exc
        return results

    @staticmethod
    def _jsonl(op: str, batch: Sequence[OutboundRecord]) -> str:
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return "".join(
            json.dumps(
                {"op": op, "key": r.key, "identity": r.identity, "properties": dict(r.properties), "at": at},
                separators=(",", ":"),
                ensure_ascii=False,
                default=json_default,
            )
            + "\n"
            for r in batch
        )

    @staticmethod
    def _csv(handle: Any, op: str, plan: WritePlan, batch: Sequence[OutboundRecord]) -> tuple[str, list[RecordResult]]:
        handle.seek(0)
        header = next(csv.reader([handle.readline()]), None)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if not header:
            fields = dict.fromkeys(f.name for f in plan.fields)
            for record in batch:
                fields.update(dict.fromkeys(record.properties))
            header = [*LEADING_COLUMNS, *(f for f in fields if f not in LEADING_COLUMNS)]
            writer.writerow(header)
        columns = header[len(LEADING_COLUMNS) :]
        known = set(columns)
        results = []
        for record in batch:
            unknown = sorted(set(record.properties) - known)
            if unknown:
                reason = f"the CSV file has no column for {', '.join(unknown)} (columns are fixed at creation)"
                results.append(RecordResult.rejected(record.key, reason))
                continue
            writer.writerow([op, record.key, record.identity, *(_cell(record.properties.get(c)) for c in columns)])
            results.append(RecordResult.ok(record.key))
        return out.getvalue(), results
