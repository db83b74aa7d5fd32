"""Dependency order of segments: a segment is evaluated after every segment its conditions reference.

The graph is read from the ``dependencies`` stored with each segment: a key ending in ``segment:<id>`` (whatever
prefix says how the segment is used, e.g. ``user:segment:7`` for an account segment over its users) is a
reference to segment ``<id>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

_REFERENCE = re.compile(r"(?:^|:)segment:(\d+)$")


class SegmentCycleError(Exception):
    """Segments reference each other in a circle; ``cycle`` lists the ids, first and last the same."""

    def __init__(self, cycle: list[int]) -> None:
        super().__init__(" -> ".join(str(i) for i in cycle))
        self.cycle = cycle


def references_in(dependencies: Iterable[str]) -> set[int]:
    """The ids of the segments a segment with these dependency keys references."""
    found = set()
    for key in dependencies:
        match = _REFERENCE.search(key)
        if match:
            found.add(int(match.group(1)))
    return found


def evaluation_order(references: Mapping[int, Iterable[int]]) -> list[int]:
    """Every segment of ``references`` (id -> ids it references) after those it references.

    References to segments outside the mapping are ignored (they are not being evaluated). Ties keep ascending ids
    so the order is stable. Raises ``SegmentCycleError`` when the references go round in a circle.
    """
    sorter: TopologicalSorter[int] = TopologicalSorter()
    for segment_id in sorted(references):
        sorter.add(segment_id, *sorted(r for r in references[segment_id] if r in references))
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = list(exc.args[1])
        # graphlib reports the cycle backwards (each node followed by one that depends on it).
        raise SegmentCycleError(cycle[::-1]) from None
    order: list[int] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def evaluation_levels(references: Mapping[int, Iterable[int]]) -> list[list[int]]:
    """``evaluation_order`` in levels: the segments of a level reference only segments of earlier levels, so a
    level can be evaluated in one go."""
    level: dict[int, int] = {}
    for segment_id in evaluation_order(references):
        targets = [r for r in references[segment_id] if r in references]
        level[segment_id] = 1 + max((level[r] for r in targets), default=-1)
    levels: list[list[int]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for segment_id in sorted(level):
        levels[level[segment_id]].append(segment_id)
    return levels


def find_cycle(references: Mapping[int, Iterable[int]]) -> list[int] | None:
    """A cycle in the reference graph as ids (first and last the same), or None."""
    try:
        evaluation_order(references)
    except SegmentCycleError as exc:
        return exc.cycle
    return None


def dependents_of(references: Mapping[int, Iterable[int]], segment_ids: Iterable[int]) -> set[int]:
    """Every segment that references one of ``segment_ids``, directly or through others (not including them)."""
    referenced_by: dict[int, set[int]] = {}
    for segment_id, targets in references.items():
        for target in targets:
            referenced_by.setdefault(target, set()).add(segment_id)
    found: set[int] = set()
    pending = list(segment_ids)
    while pending:
        for dependent in referenced_by.get(pending.pop(), ()):
            if dependent not in found:
                found.add(dependent)
                pending.append(dependent)
    return found - set(segment_ids)
