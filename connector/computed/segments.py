"""``Segments``: for each user and account, the sorted names of the segments it is in.

Materialised in ``computed_values`` under the name ``Segments`` as a JSON list of strings. A subject in no segment
has no row (read it as ``[]``); syncs send an empty value for it. The segment engine keeps it current: every
membership change, rename and delete recomputes it for the subjects concerned, in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import Select, func, select

from connector.computed.properties import ComputedProperty, Scope
from connector.models import Segment, SegmentMembership, SubjectType

SEGMENTS = "Segments"


class SegmentsProperty(ComputedProperty):
    def compute(self, session, workspace_id: int, subject_type: SubjectType, subject_ids: Scope) -> Select:
        members, segments = SegmentMembership.__table__, Segment.__table__
        m, s = members.c, segments.c
        where = [s.workspace_id == workspace_id, s.subject_type == SubjectType(subject_type)]
        if subject_ids is not None:
            where.append(m.subject_id.in_(subject_ids))
        joined = select(m.subject_id).join(segments, s.id == m.segment_id).where(*where)
        if session.get_bind().dialect.name == "postgresql":
            names = func.jsonb_agg(s.name).aggregate_order_by(s.name)
            return joined.add_columns(names.label("value")).group_by(m.subject_id)
        # SQLite before 3.44 has no ORDER BY inside an aggregate; an aggregate window's ORDER BY fixes the order.
        names = func.json_group_array(s.name).over(partition_by=m.subject_id, order_by=s.name, rows=(None, None))
        return joined.add_columns(names.label("value")).distinct()


segments_property = SegmentsProperty(
    name=SEGMENTS,
    subject_types=frozenset({SubjectType.USER, SubjectType.ACCOUNT}),
    dependencies=frozenset({"membership"}),
    default=[],
)
