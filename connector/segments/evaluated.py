"""What an evaluation of segments works with and hands back: the membership tables, a segment's row as read once
per run, the parsed definition of a segment (cached per definition), and ``Evaluation``, the outcome of a run."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from connector.models import (
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentMembershipEvent,
    SubjectType,
)
from connector.segments.conditions import Node, shared_condition
from connector.segments.ordering import references_in
from connector.segments.validation import parse_conditions

MEMBERS = SegmentMembership.__table__
SEGMENTS = Segment.__table__
HISTORY = SegmentMembershipEvent.__table__


# Changed subject ids are handed back to the caller (syncs mark them dirty) up to this many; past it the
# evaluation's history rows (``segment_membership_history.at == Evaluation.at``) are the list.
CHANGED_IDS_LIMIT = 50_000
# Past that many changes, ``Segments`` is recomputed for every subject of the workspace when the changes number more
# than a quarter of its subjects.
WHOLE_WORKSPACE_FRACTION = 4


@dataclass
class Evaluation:
    """What an evaluation changed.

    ``counts`` maps each evaluated segment id to ``(entered, exited)``. ``changed`` holds the ids of subjects whose
    membership changed, by subject type, or None when more than ``CHANGED_IDS_LIMIT`` changed (then the history
    rows written at ``at`` list them).
    """

    at: datetime
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)
    changed: dict[SubjectType, set[int]] | None = field(default_factory=dict)

    @property
    def entered(self) -> int:
        return sum(e for e, _ in self.counts.values())

    @property
    def exited(self) -> int:
        return sum(x for _, x in self.counts.values())

    def summary(self) -> dict[str, int]:
        return {"segments": len(self.counts), "entered": self.entered, "exited": self.exited}


@dataclass(frozen=True)
class SegmentRow:
    """What evaluation needs of a segment, read once per run."""

    id: int
    name: str
    subject_type: SubjectType
    kind: SegmentKind
    conditions: dict | None
    dependencies: frozenset[str]
    references: frozenset[int]


def workspace_segments(session: Session, workspace_id: int) -> dict[int, SegmentRow]:
    """Every segment of the workspace, by id (one query)."""
    t = SEGMENTS  # table columns, not ORM attributes: this runs on every ingestion
    rows = session.execute(
        select(t.c.id, t.c.name, t.c.subject_type, t.c.kind, t.c.conditions, t.c.dependencies).where(
            t.c.workspace_id == workspace_id
        )
    )
    return {
        r.id: SegmentRow(
            r.id,
            r.name,
            r.subject_type,
            r.kind,
            r.conditions,
            frozenset(r.dependencies),
            frozenset(references_in(r.dependencies)),
        )
        for r in rows
    }


# Why a segment is in a run: evaluated whole, for the subjects listed in the scratch scope table, or its changes
# were recorded already. (A segment evaluated for a few subjects has the set of their ids instead.)
FULL, TABLE, RECORDED = "full", "table", "recorded"


_cache_lock = threading.Lock()
_parsed: OrderedDict[tuple[int, str, str], Node] = OrderedDict()
_PARSED_MAX = 512


def parsed_conditions(segment_id: int, conditions: dict | None, subject_type: SubjectType) -> Node:
    """The stored (already validated) tree of a segment as nodes; parsed once per distinct definition."""
    # The subject type is part of the definition: the same tree compiles differently for users and accounts.
    key = (segment_id, json.dumps(conditions, sort_keys=True), SubjectType(subject_type).value)
    with _cache_lock:
        node = _parsed.get(key)
        if node is not None:
            _parsed.move_to_end(key)
            return node
    node = parse_conditions(conditions or {"type": "any", "children": []}, subject_type)
    with _cache_lock:
        node = _parsed.setdefault(key, node)
        if len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
    return node


# -- entry points for services ---------------------------------------------------------------------------------------


def segment_node(segment: SegmentRow) -> Node:
    """The condition tree a segment is evaluated with (a shared stand-in: its internal device-matching leaf)."""
    if segment.kind == SegmentKind.SHARED:
        return shared_condition(segment.conditions["share_id"])
    return parsed_conditions(segment.id, segment.conditions, segment.subject_type)
