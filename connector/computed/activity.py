"""``event_count``: how many events (track events and page views) a user has, ever.

A second, simple property that shows the framework: invalidated by any event or page view, computed with one
grouped count. A user without events has no row (read it as 0).
"""

from __future__ import annotations

from sqlalchemy import Select, func, select

from connector.computed.properties import ComputedProperty, Scope, json_value
from connector.models import Event, SubjectType

EVENT_COUNT = "event_count"


class EventCountProperty(ComputedProperty):
    def compute(self, session, workspace_id: int, subject_type: SubjectType, subject_ids: Scope) -> Select:
        events = Event.__table__
        user_id = events.c.user_id
        query = select(user_id.label("subject_id"), json_value(session, func.count()).label("value")).where(
            events.c.workspace_id == workspace_id
        )
        if subject_ids is not None:
            query = query.where(user_id.in_(subject_ids))
        return query.group_by(user_id)


event_count_property = EventCountProperty(
    name=EVENT_COUNT,
    subject_types=frozenset({SubjectType.USER}),
    dependencies=frozenset({"event:*", "page"}),
    default=0,
)
