"""Evaluating segments for a few subjects each (incremental evaluation after ingestion): one query per dependency
level asks every segment's condition about its subjects (bound to their ids: index seeks) and reads their current
membership; the difference of those few pairs is applied at once (on PostgreSQL one statement: DELETE and INSERT as
CTEs feeding the history). The level's query and PostgreSQL's apply statement are built once and reused with other
ids and another instant (``LateValues``): building them cost more than running them."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    bindparam,
    column,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from connector.models import (
    MembershipChange,
)
from connector.models.base import UTCDateTime
from connector.segments.compiler import compile_condition
from connector.segments.conditions import Node
from connector.segments.evaluated import HISTORY, MEMBERS, SegmentRow, segment_node
from connector.segments.scope import LateValues

# The queries of ``_diff_few`` by workspace and segment definitions (nodes from ``parsed_conditions``, which hands
# back the same node for the same definition): (nodes, query, late values of each segment).
_few_queries: OrderedDict[tuple, tuple[list[Node], CompoundSelect, list[LateValues]]] = OrderedDict()
_FEW_QUERIES_MAX = 256
_cache_lock = threading.Lock()


class FewSubjects:
    """The few-subjects part of a run (``connector.segments.run._Run``): it provides ``session``, ``workspace_id``,
    ``now``, ``segments``, ``changed_ids``, ``applied`` and ``unrecorded``."""

    session: Session
    workspace_id: int
    now: datetime
    segments: dict[int, SegmentRow]
    changed_ids: dict[int, set[int]]
    applied: set[int]
    unrecorded: list[tuple[int, int, bool]]

    def _diff_few(self, scopes: dict[int, set[int]]) -> dict[int, tuple[int, int]]:
        """Differences of segments evaluated for a few subjects each, applied at once. One query asks every
        condition about its subjects (each bound to their ids: index seeks) and reads their current membership; the
        difference of those few pairs is applied with ``_apply_pairs``. Returns (entered, exited) by segment; the
        changed ids are kept (``self.changed_ids``) for dependents and ``Segments``.

        Comparing the pairs here rather than with anti-joins in SQL keeps the plan free of membership statistics: a
        segment that was small when last analysed would otherwise be scanned whole for each subject."""
        if not scopes:
            return {}
        query, params = self._few_query(scopes)
        matched: set[tuple[int, int]] = set()
        current: set[tuple[int, int]] = set()
        for subject_id, segment_id, is_match in self.session.execute(query, params):
            (matched if is_match else current).add((segment_id, subject_id))
        entered = sorted(matched - current)
        exited = sorted((sid, subject) for sid, subject in current - matched if subject in scopes[sid])
        self._apply_pairs(entered, exited)
        counts: dict[int, list[int]] = {}
        for pairs, position in ((entered, 0), (exited, 1)):
            for segment_id, subject_id in pairs:
                counts.setdefault(segment_id, [0, 0])[position] += 1
                self.changed_ids.setdefault(segment_id, set()).add(subject_id)
        self.applied.update(scopes)
        self.unrecorded += [(i, s, True) for i, s in entered] + [(i, s, False) for i, s in exited]
        return {i: (e, x) for i, (e, x) in counts.items()}

    def _few_query(self, scopes: dict[int, set[int]]) -> tuple[CompoundSelect, dict[str, Any]]:
        """The query of ``_diff_few`` and its parameters: (subject, segment, true) for each subject matching its
        segment's condition, (subject, segment, false) for each current membership of those subjects. Built once per
        set of segment definitions and reused with other ids and another ``now`` (``LateValues``)."""
        order = sorted(scopes)
        nodes = [segment_node(self.segments[i]) for i in order]
        # The cached entry holds the nodes, so their ids are not reused while it lives.
        key = (self.workspace_id, *zip(order, map(id, nodes), strict=True))
        with _cache_lock:
            cached = _few_queries.get(key)
            if cached is not None:
                _few_queries.move_to_end(key)
        if cached is None:
            parts, lates = [], []
            for segment_id, node in zip(order, nodes, strict=True):
                late = LateValues(f"s{segment_id}_")
                condition = compile_condition(
                    node,
                    subject_type=self.segments[segment_id].subject_type,
                    workspace_id=self.workspace_id,
                    now=self.now,
                    subject_ids=sorted(scopes[segment_id]),
                    late=late,
                )
                parts.append(
                    condition.add_columns(literal(segment_id, BigInteger).label("segment_id"), true().label("matched"))
                )
                lates.append(late)
            members = select(MEMBERS.c.subject_id, MEMBERS.c.segment_id, false()).where(
                MEMBERS.c.subject_id.in_(bindparam("member_ids", expanding=True)), MEMBERS.c.segment_id.in_(order)
            )
            cached = (nodes, union_all(*parts, members), lates)
            with _cache_lock:
                _few_queries[key] = cached
                if len(_few_queries) > _FEW_QUERIES_MAX:
                    _few_queries.popitem(last=False)
        _, query, lates = cached
        params: dict[str, Any] = {"member_ids": sorted(set().union(*scopes.values()))}
        for segment_id, late in zip(order, lates, strict=True):
            params.update(late.params(self.now, sorted(scopes[segment_id])))
        return query, params

    def _apply_pairs(self, entered: list[tuple[int, int]], exited: list[tuple[int, int]]) -> None:
        """Apply a few (segment, subject) enters and exits to membership and history. On PostgreSQL in one
        statement built once (``_pg_apply_pairs``), the pairs passed as arrays; elsewhere in up to four."""
        if not entered and not exited:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            params: dict[str, Any] = {"at": self.now}
            for name, pairs in (("entered", entered), ("exited", exited)):
                params[f"{name}_segments"] = [i for i, _ in pairs]
                params[f"{name}_subjects"] = [s for _, s in pairs]
            self.session.execute(_pg_apply_pairs(bool(entered), bool(exited)), params)
            return
        if exited:
            key = tuple_(MEMBERS.c.segment_id, MEMBERS.c.subject_id)
            self.session.execute(delete(MEMBERS).where(key.in_(exited)))
        if entered:
            rows = [{"segment_id": i, "subject_id": s, "entered_at": self.now} for i, s in entered]
            self.session.execute(insert(MEMBERS), rows)
        history = [(MembershipChange.ENTERED, entered), (MembershipChange.EXITED, exited)]
        rows = [{"segment_id": i, "subject_id": s, "change": c.value, "at": self.now} for c, p in history for i, s in p]
        self.session.execute(insert(HISTORY), rows)


@functools.cache
def _pg_apply_pairs(entering: bool, leaving: bool):
    """PostgreSQL: the exits deleted and the enters inserted as data-modifying CTEs feeding the history insert. The
    pairs come as arrays (``entered_segments``/``entered_subjects``, ``exited_…``) and the instant as ``at``."""
    at = bindparam("at", type_=UTCDateTime())
    written = []
    for change, wanted in ((MembershipChange.ENTERED, entering), (MembershipChange.EXITED, leaving)):
        if not wanted:
            continue
        name = change.value
        pairs = (
            func.unnest(
                bindparam(f"{name}_segments", type_=postgresql.ARRAY(BigInteger)),
                bindparam(f"{name}_subjects", type_=postgresql.ARRAY(BigInteger)),
            )
            .table_valued(column("segment_id", BigInteger), column("subject_id", BigInteger))
            .render_derived()
        )
        if change == MembershipChange.ENTERED:
            statement = insert(MEMBERS).from_select(
                ["segment_id", "subject_id", "entered_at"], select(pairs.c.segment_id, pairs.c.subject_id, at)
            )
        else:
            key = tuple_(MEMBERS.c.segment_id, MEMBERS.c.subject_id)
            statement = delete(MEMBERS).where(key.in_(select(pairs.c.segment_id, pairs.c.subject_id)))
        done = statement.returning(MEMBERS.c.segment_id, MEMBERS.c.subject_id).cte(f"{name}_rows")
        written.append(select(done.c.segment_id, done.c.subject_id, literal(name), at))
    return insert(HISTORY).from_select(["segment_id", "subject_id", "change", "at"], union_all(*written))
