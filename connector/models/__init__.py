"""The ORM tables. The schema itself is made and changed only by Alembic migrations (``migrations/``)."""

from connector.models.base import Base, utcnow
from connector.models.changes import ChangeCounter, ChangeTombstone, SyncWatermark
from connector.models.computed import ComputedValue
from connector.models.scheduling import SchedulerLease
from connector.models.segments import (
    MembershipChange,
    Segment,
    SegmentGroup,
    SegmentKind,
    SegmentMembership,
    SegmentMembershipEvent,
)
from connector.models.subjects import (
    Account,
    AccountTag,
    AccountUser,
    Device,
    Event,
    EventKind,
    ObjectRecord,
    ObjectType,
    Platform,
    SubjectType,
    User,
    UserTag,
)
from connector.models.syncs import (
    Destination,
    RecordState,
    RunStatus,
    Sync,
    SyncMode,
    SyncRecord,
    SyncRun,
    SyncRunError,
    SyncSegment,
)
from connector.models.tenancy import ApiToken, Company, Member, Role, Workspace, WorkspaceMembership

__all__ = [
    "ChangeCounter",
    "ChangeTombstone",
    "SyncWatermark",
    "Account",
    "AccountTag",
    "AccountUser",
    "ApiToken",
    "Base",
    "Company",
    "ComputedValue",
    "Destination",
    "Device",
    "Event",
    "EventKind",
    "Member",
    "MembershipChange",
    "ObjectRecord",
    "ObjectType",
    "Platform",
    "RecordState",
    "Role",
    "RunStatus",
    "SchedulerLease",
    "Segment",
    "SegmentGroup",
    "SegmentKind",
    "SegmentMembership",
    "SegmentMembershipEvent",
    "SubjectType",
    "Sync",
    "SyncMode",
    "SyncRecord",
    "SyncRun",
    "SyncRunError",
    "SyncSegment",
    "User",
    "UserTag",
    "Workspace",
    "WorkspaceMembership",
    "utcnow",
]
