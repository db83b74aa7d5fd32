"""What a compiled condition is about: the tables it reads, the scope of one predicate (subject, workspace,
instant, restriction), the query's shared table aliases, and the values of a query built once and run again
(``LateValues``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    bindparam,
    literal,
)
from sqlalchemy.sql.elements import BindParameter

from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    Device,
    Event,
    MessageEvent,
    ObjectRecord,
    ObjectType,
    Platform,
    Segment,
    SegmentMembership,
    SegmentShare,
    SubjectType,
    User,
    UserTag,
)

USERS = User.__table__
ACCOUNTS = Account.__table__
ACCOUNT_USERS = AccountUser.__table__
USER_TAGS = UserTag.__table__
ACCOUNT_TAGS = AccountTag.__table__
EVENTS = Event.__table__
DEVICES = Device.__table__
OBJECTS = ObjectRecord.__table__
OBJECT_TYPES = ObjectType.__table__
SEGMENTS = Segment.__table__
MEMBERSHIPS = SegmentMembership.__table__
SHARES = SegmentShare.__table__
# The device ids that match across workspaces: IDFV on iOS, Android ID on Android (a web id is per site).
MATCHING_PLATFORMS = (Platform.IOS, Platform.ANDROID)
MESSAGE_EVENTS = MessageEvent.__table__

SubjectIds = Select | Iterable[int] | None


class Aliases:
    """Aliases of tables for one query: the n-th use of a table in the query gets its n-th alias (``events_2``).

    The alias objects are made once per (table, n) and shared by every query: making one (its column collection)
    cost more than the rest of compiling a condition, and evaluation after an ingestion compiles a dozen."""

    _made: ClassVar[dict[tuple[str, int], FromClause]] = {}

    def __init__(self) -> None:
        self._used: dict[str, int] = {}

    def __call__(self, table: Table) -> FromClause:
        n = self._used[table.name] = self._used.get(table.name, 0) + 1
        alias = self._made.get((table.name, n))
        if alias is None:
            alias = self._made[(table.name, n)] = table.alias(f"{table.name}_{n}")
        return alias


class LateValues:
    """The values of a query built once and run many times (``compile_condition(late=...)``): the subject ids and
    the instants that move with ``now`` are named parameters, and ``params`` gives their values for another run.

    Building a condition's query and SQLAlchemy's cache key for it cost more than running it for one subject; the
    evaluation after an ingestion reuses the query of each segment this way."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ids_key: str | None = None
        self.ago: dict[str, timedelta] = {}

    def ids(self, ids: list[int]) -> BindParameter:
        self.ids_key = f"{self.prefix}ids"
        return bindparam(self.ids_key, ids, expanding=True)

    def instant(self, delta: timedelta, value: datetime, type_) -> BindParameter:
        key = f"{self.prefix}t{len(self.ago)}"
        self.ago[key] = delta
        return bindparam(key, value, type_=type_)

    def params(self, now: datetime, ids: list[int]) -> dict[str, Any]:
        now = as_utc(now)
        values: dict[str, Any] = {key: now - delta for key, delta in self.ago.items()}
        if self.ids_key is not None:
            values[self.ids_key] = ids
        return values


@dataclass(frozen=True)
class Scope:
    """What a predicate is about: the subject table (or its alias) and the query's constants."""

    subject_type: SubjectType
    subject: FromClause
    workspace_id: int
    now: datetime
    # The subject ids this query is restricted to (a list or a SELECT), repeated inside grouped sub-queries.
    restriction: Select | list[int] | BindParameter | None = None
    # How many groups deep the predicate being built sits in its query text (see compile_predicate).
    depth: int = 0
    # The query's table aliases (shared by every scope of one query).
    alias: Aliases = field(default_factory=Aliases)
    # Set when the query is built for reuse (shared by every scope of one query).
    late: LateValues | None = None

    def ago(self, delta: timedelta, type_=None) -> Any:
        """``now - delta`` as a value to compare with (a parameter of the query when it is built for reuse)."""
        value = self.now - delta
        if self.late is not None:
            return self.late.instant(delta, value, type_)
        return value if type_ is None else literal(value, type_)

    @property
    def subject_id(self) -> ColumnElement:
        return self.subject.c.id


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
