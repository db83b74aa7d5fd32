"""The ORM tables. The schema itself is made and changed only by Alembic migrations (``migrations/``)."""

from connector.models.associations import SyncAssociation
from connector.models.base import Base, utcnow
from connector.models.computed import ComputedValue
from connector.models.erasures import Erasure
from connector.models.lists import ListSync, SyncList, SyncListMember
from connector.models.preparations import SyncPreparation
from connector.models.scheduling import SchedulerLease
from connector.models.segments import (
    MembershipChange,
    Segment,
    SegmentGroup,
    SegmentKind,
    SegmentMembership,
    SegmentMembershipEvent,
)
from connector.models.sources import ModelKind, Source, SourceModel, SourceRow, SourceRun, SourceRunError
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
from connector.models.workspaces import HqSyncReport, SegmentMapping, SegmentShare

__all__ = [
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
    "Erasure",
    "EventKind",
    "HqSyncReport",
    "ListSync",
    "Member",
    "ModelKind",
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
    "SegmentMapping",
    "SegmentMembership",
    "SegmentMembershipEvent",
    "SegmentShare",
    "Source",
    "SourceModel",
    "SourceRow",
    "SourceRun",
    "SourceRunError",
    "SubjectType",
    "Sync",
    "SyncAssociation",
    "SyncList",
    "SyncListMember",
    "SyncMode",
    "SyncPreparation",
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
