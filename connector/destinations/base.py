"""The interface every destination implements, and the errors that tell the sync engine what to do.

A destination receives mapped records and returns one result per record. It knows nothing of segments, the
database or the web layer; retries, batching, rate limiting and state belong to ``connector.syncs``.

Failures are classified by what the caller must decide:

* ``ConfigError``: the destination cannot work as configured (bad token, missing scopes, unknown object):
  fail the run, retrying will not help.
* ``TransientError``: try the same call again later (429, 5xx, timeouts, dropped connections); ``retry_after``
  says how long the destination asked us to wait, when it said.
* A record-level rejection is not an exception: it is a ``RecordResult`` with ``status="rejected"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class DestinationError(Exception):
    """Base of the errors a destination raises."""


class ConfigError(DestinationError):
    """The destination refuses to work as configured; the run fails."""


class TransientError(DestinationError):
    """The call may succeed if repeated later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class OutboundRecord:
    """One record to write or remove.

    ``key`` is ours and opaque to the destination (the subject id as a string): results are matched by it.
    ``identity`` is the value that matches the remote record (e.g. an email), under ``identity_field``.
    ``properties`` are the mapped destination fields, values already rendered for the destination.
    """

    key: str
    identity: str
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordResult:
    key: str
    status: Literal["ok", "rejected", "retry"]
    remote_id: str | None = None
    reason: str | None = None

    @classmethod
    def ok(cls, key: str, remote_id: str | None = None) -> RecordResult:
        return cls(key, "ok", remote_id=remote_id)

    @classmethod
    def rejected(cls, key: str, reason: str) -> RecordResult:
        return cls(key, "rejected", reason=reason)

    @classmethod
    def retry(cls, key: str, reason: str) -> RecordResult:
        return cls(key, "retry", reason=reason)


@dataclass(frozen=True)
class FieldSpec:
    """A destination field the sync will write, so ``prepare`` can create it when missing.

    ``kind`` is ``text``, ``multiline``, ``number``, ``date``, ``bool`` or ``multi_select``; for ``multi_select``,
    ``options`` are the values that must be allowed (e.g. the workspace's segment names).
    """

    name: str
    kind: str = "text"
    label: str | None = None
    options: Sequence[str] = ()


@dataclass(frozen=True)
class WritePlan:
    """What a sync needs from ``prepare``: the object, how records are matched, and the fields it writes."""

    object_type: str
    identity_field: str
    fields: Sequence[FieldSpec] = ()
    mode: Literal["upsert", "update"] = "upsert"


class DestinationConfig(BaseModel):
    """Base of a destination's validated options. Secret options are typed ``SecretStr``."""

    model_config = ConfigDict(extra="forbid")


class Destination:
    """A destination: subclass, set ``type``, ``Config``, ``max_batch_size``, and implement the four methods.

    An instance is built once per run (``Destination(config)``) and may be called from several threads at once.
    """

    type: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[DestinationConfig]]
    max_batch_size: ClassVar[int] = 100
    # Requests per second the destination allows by default (token bucket in the sync engine); None = no limit.
    default_rate_limit: ClassVar[tuple[int, float] | None] = None  # (requests, per seconds)
    # The objects it can write to ("contacts", "companies", ...).
    objects: ClassVar[Sequence[str]] = ()
    supports_remove: ClassVar[bool] = False

    def __init__(self, config: DestinationConfig) -> None:
        self.config = config

    def check(self) -> None:
        """Verify that the destination is reachable and the credentials work; raise ``ConfigError`` if not."""
        raise NotImplementedError

    def prepare(self, plan: WritePlan) -> None:
        """Make sure the destination can take the planned fields (create missing properties and options)."""
        raise NotImplementedError

    def write(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Write one batch (at most ``max_batch_size``); one result per input record, in any order."""
        raise NotImplementedError

    def remove(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Remove records that left the sync (only where ``supports_remove``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; called once at the end of a run."""
