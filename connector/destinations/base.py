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

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for record values: dates as ISO 8601, decimals as text, sets as lists."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class DestinationError(Exception):
    """Base of the errors a destination raises."""


class ConfigError(DestinationError):
    """The destination refuses to work as configured; the run fails."""


class TransientError(DestinationError):
    """The call may succeed if repeated later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(when.tzinfo)).total_seconds(), 0.0)


@dataclass(frozen=True)
class OutboundRecord:
    """One record to write or remove.

    ``key`` is ours and opaque to the destination (the subject id as a string): results are matched by it.
    ``identity`` is the value that matches the remote record (e.g. an email), under ``identity_field``.
    ``properties`` are the mapped destination fields, values already rendered for the destination.
    ``previous_identity`` (writes only): the identity this record was last delivered under, when it has changed
    since (e.g. a new email); ``remote_id`` the destination's id of that delivered record, when known. A destination
    that ``updates_identity`` then changes the existing remote record rather than creating a second one.
    """

    key: str
    identity: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    previous_identity: str | None = None
    remote_id: str | None = None


@dataclass(frozen=True)
class RecordResult:
    key: str
    status: Literal["ok", "rejected", "retry", "exists"]
    remote_id: str | None = None
    reason: str | None = None

    @classmethod
    def ok(cls, key: str, remote_id: str | None = None) -> RecordResult:
        return cls(key, "ok", remote_id=remote_id)

    @classmethod
    def exists(cls, key: str, remote_id: str | None = None) -> RecordResult:
        """Create-only: the record exists remotely already and was left alone."""
        return cls(key, "exists", remote_id=remote_id)

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
    mode: Literal["upsert", "update", "create"] = "upsert"


class DestinationConfig(BaseModel):
    """Base of a destination's validated options. Secret options are typed ``SecretStr``."""

    model_config = ConfigDict(extra="forbid")


class Destination:
    """A destination: subclass, set ``type``, ``Config``, ``max_batch_size``, and implement the methods.

    An instance is built once per run (``Destination(config)``) and may be called from several threads at once.

    What the sync engine can rely on:

    * ``write`` and ``remove`` return exactly one ``RecordResult`` per input record (in any order; match by
      ``key``). ``ok`` results carry the remote id when the destination has one.
    * ``ConfigError`` fails the run, ``TransientError`` means "repeat this same call later" (after
      ``retry_after`` seconds when given). A batch repeated after a ``TransientError`` is harmless: writes are
      upserts or appends keyed by identity.
    * ``rate_limit`` is the (requests, seconds) budget of this configured instance. A ``write`` may make more
      than one HTTP request (isolating a bad record, reading before updating): bind the engine's limiter with
      ``bind_rate_limiter`` so every request takes a token; unbound, count one token per call.
    * Values for multi-select and multi-line fields are rendered by ``render_multi_select`` and
      ``render_multiline``: the encoding belongs to the destination.
    """

    type: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[DestinationConfig]]
    max_batch_size: ClassVar[int] = 100
    # Requests per window allowed by default (the sync engine enforces it as a rolling window); None = no limit.
    default_rate_limit: ClassVar[tuple[int, float] | None] = None  # (requests, per seconds)
    # The objects it can write to ("contacts", "companies", ...); empty = any object name (see accepts_object).
    objects: ClassVar[Sequence[str]] = ()
    supports_remove: ClassVar[bool] = False
    # Whether ``write`` moves a record whose identity changed (``OutboundRecord.previous_identity``) in place.
    updates_identity: ClassVar[bool] = False
    # Whether every HTTP request goes through ``_request`` (so ``requests_retried`` retries each one).
    retries_each_request: ClassVar[bool] = False
    # Changes when what ``prepare`` makes sure of changes: preparations recorded under another version are redone.
    schema_version: ClassVar[str] = "1"

    def __init__(self, config: DestinationConfig | Mapping[str, Any]) -> None:
        if not isinstance(config, self.Config):
            config = self.Config.model_validate(dict(config) if isinstance(config, Mapping) else config)
        self.config = config
        self._acquire: Callable[[], None] | None = None

    @classmethod
    def preload(cls) -> None:
        """Import what building an instance imports (a client library), so a long-lived process pays for it at
        start, not in its first runs, several of which may start at once. Default: nothing to import."""

    def __repr__(self) -> str:
        # The config's repr masks secrets (SecretStr); nothing else of the instance is shown.
        return f"{type(self).__name__}({self.config!r})"

    # -- what the engine reads -------------------------------------------------------------------------------

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """``(requests, seconds)`` this instance may make, or None for no limit."""
        return self.default_rate_limit

    @property
    def budget_key(self) -> str | None:
        """What names the remote budget ``rate_limit`` counts against when several configured instances spend one
        (two destinations with the same HubSpot app token share the app's budget in that portal); None: each
        instance has its own. Never a secret: it is stored beside the shared rolling window."""
        return None

    def bind_rate_limiter(self, acquire: Callable[[], None] | None) -> None:
        """Have the destination call ``acquire()`` (blocking until a token is free) before every request."""
        self._acquire = acquire

    @classmethod
    def accepts_object(cls, object_type: str) -> bool:
        """Whether this type can write ``object_type`` (callable on the class, e.g. when a sync is saved)."""
        return not cls.objects or object_type in cls.objects

    def render_multi_select(self, values: Iterable[str]) -> str:
        """One field value holding several choices (e.g. segment names), in the destination's encoding."""
        return ";".join(dict.fromkeys(values))

    def render_multiline(self, values: Iterable[str]) -> str:
        """One text value with one line per item."""
        return "\n".join(values)

    # -- what a destination implements -----------------------------------------------------------------------

    def check(self) -> None:
        """Verify that the destination is reachable and the credentials work; raise ``ConfigError`` if not."""
        raise NotImplementedError

    def fields(self, object_type: str) -> list[FieldSpec] | None:
        """The fields ``object_type`` has at the destination, for choosing mappings; None when it cannot say
        (any field name goes, e.g. a webhook or a file)."""
        return None

    def prepare(self, plan: WritePlan) -> None:
        """Make sure the destination can take the planned fields (create missing properties and options)."""

    def inspect(self, plan: WritePlan) -> list[str]:
        """What ``prepare`` would refuse for ``plan``, found without changing anything at the destination (a dry run
        asks this, so a mapping the destination cannot take is reported before any record is sent)."""
        return []

    def write(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Write one batch (at most ``max_batch_size``); one result per input record, in any order."""
        raise NotImplementedError

    def remove(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Remove records that left the sync (only where ``supports_remove``); records already gone are ok."""
        raise NotImplementedError(f"{type(self).__name__} cannot remove records")

    def retire_options(self, object_type: str, field: str, choices: Sequence[str]) -> None:
        """Remove multi-select options no record holds any more (e.g. of a deleted or renamed segment); options not
        there are ignored. Destinations without options have nothing to do."""

    def close(self) -> None:
        """Release connections; called once at the end of a run."""

    @contextmanager
    def requests_retried(self, call: Callable[..., Any]) -> Iterator[None]:
        """While in this block, in this thread, each request made through ``_request`` runs as ``call(request,
        *args)`` (the engine's retry policy), so one failed request is repeated alone, not the whole operation."""
        local = self.__dict__.setdefault("_retry_local", threading.local())
        previous = getattr(local, "call", None)
        local.call = call
        try:
            yield
        finally:
            local.call = previous

    # -- for subclasses ---------------------------------------------------------------------------------------

    def _request(self, send: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``send(*args, **kwargs)``: one request, under the policy of ``requests_retried`` when one is bound here."""
        local = self.__dict__.get("_retry_local")
        call = getattr(local, "call", None) if local is not None else None
        if call is None:
            return send(*args, **kwargs)
        return call(send, *args, **kwargs)

    def _throttle(self) -> None:
        """Take a token from the engine's limiter, when one is bound; call before every request."""
        if self._acquire is not None:
            self._acquire()
