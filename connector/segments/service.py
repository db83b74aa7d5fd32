"""Segments: create, change, delete, with validation and usage checks.

Services receive the caller's session and never commit. A saved or changed definition is evaluated at once, so
membership (and every member's ``Segments``) is current when the caller's transaction commits.

Errors name the input field they are about relative to the input (``name``, ``conditions.children[1].value``);
the API prefixes its location (``body.``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.errors import ConflictError, InvalidError, NotFoundError, ServiceError
from connector.models import (
    Segment,
    SegmentGroup,
    SegmentKind,
    SegmentMembership,
    SubjectType,
    Sync,
    SyncSegment,
    utcnow,
)
from connector.segments.conditions import AccountSegmentCondition, ConditionError, Node, SegmentCondition
from connector.segments.evaluated import Evaluation, parsed_conditions
from connector.segments.evaluation import mark_evaluated, mark_pending, unevaluated_reference_errors
from connector.segments.explain import explain
from connector.segments.membership import change_members, forget_segment, rename_recompute
from connector.segments.ordering import find_cycle, references_in
from connector.segments.preview import preview_membership
from connector.segments.run import refresh_segments
from connector.segments.trees import dependencies, is_time_relative, smallest_time_unit, walk
from connector.segments.typecheck import attribute_type_warnings
from connector.segments.validation import parse_conditions, validate_references

NAME_MAX = 200
DESCRIPTION_MAX = 10_000


# The segment services' refusals, in the shared vocabulary (``connector.errors``) under their segment names.
SegmentError = ServiceError
InvalidSegmentError = InvalidError


class SegmentNotFoundError(NotFoundError):
    def __init__(self, what: str = "segment") -> None:
        super().__init__(what)


class NameTakenError(ConflictError):
    """Another segment (or group) of the workspace has that name."""

    def __init__(self, field: str, name: str, what: str = "segment") -> None:
        detail = f"another {what} of this workspace is named {name!r}"
        super().__init__(detail, [{"field": field, "reason": detail}])


@dataclass(frozen=True)
class Usage:
    """Something that uses a segment: ``kind`` is ``segment``, ``sync``, ``playbook``, ``view``…"""

    kind: str
    id: int
    name: str


class SegmentInUseError(ConflictError):
    """The segment cannot be deleted (or change subject type) while these use it."""

    def __init__(self, segment: Segment, usages: list[Usage], action: str) -> None:
        listed = ", ".join(f"{u.kind} {u.name!r}" for u in usages)
        super().__init__(
            f"segment {segment.name!r} cannot {action}: it is used by {listed}",
            usages=[{"kind": u.kind, "id": u.id, "name": u.name} for u in usages],
        )
        self.usages = usages


# -- usage finders: each answers "what of mine uses this segment?"; playbooks and views register theirs later. --

UsageFinder = Callable[[Session, Segment], list[Usage]]
_usage_finders: list[UsageFinder] = []


def register_usage_finder(finder: UsageFinder) -> UsageFinder:
    """Add a usage finder (usable as a decorator). Finders must stay inside the segment's workspace."""
    _usage_finders.append(finder)
    return finder


def find_usages(session: Session, segment: Segment) -> list[Usage]:
    """Everything that uses the segment, by every registered finder."""
    return [usage for finder in _usage_finders for usage in finder(session, segment)]


# -- rename listeners: what follows a segment's name elsewhere (its stand-ins where it is shared) registers here. --

RenameListener = Callable[[Session, Segment], None]
_rename_listeners: list[RenameListener] = []


def register_rename_listener(listener: RenameListener) -> RenameListener:
    """Call ``listener(session, segment)`` after every rename (usable as a decorator)."""
    _rename_listeners.append(listener)
    return listener


@register_usage_finder
def _segments_referencing(session: Session, segment: Segment) -> list[Usage]:
    rows = session.execute(
        select(Segment.id, Segment.name, Segment.dependencies)
        .where(Segment.workspace_id == segment.workspace_id, Segment.id != segment.id)
        .order_by(Segment.id)
    )
    return [Usage("segment", r.id, r.name) for r in rows if segment.id in references_in(r.dependencies)]


@register_usage_finder
def _syncs_filtering(session: Session, segment: Segment) -> list[Usage]:
    rows = session.execute(
        select(Sync.id, Sync.name)
        .join(SyncSegment, SyncSegment.sync_id == Sync.id)
        .where(SyncSegment.segment_id == segment.id, Sync.workspace_id == segment.workspace_id)
        .order_by(Sync.id)
    )
    return [Usage("sync", r.id, r.name) for r in rows]


# -- reading --


def get_segment(session: Session, workspace_id: int, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None or segment.workspace_id != workspace_id:
        raise SegmentNotFoundError()
    return segment


def list_segments(
    session: Session,
    workspace_id: int,
    *,
    subject_type: SubjectType | None = None,
    group_id: int | None = None,
) -> list[Segment]:
    query = select(Segment).where(Segment.workspace_id == workspace_id).order_by(Segment.name, Segment.id)
    if subject_type is not None:
        query = query.where(Segment.subject_type == subject_type)
    if group_id is not None:
        query = query.where(Segment.group_id == group_id)
    return list(session.scalars(query))


def member_counts(session: Session, segment_ids: list[int]) -> dict[int, int]:
    """Current number of members of each segment."""
    if not segment_ids:
        return {}
    rows = session.execute(
        select(SegmentMembership.segment_id, func.count())
        .where(SegmentMembership.segment_id.in_(segment_ids))
        .group_by(SegmentMembership.segment_id)
    )
    counts = dict.fromkeys(segment_ids, 0)
    counts.update({segment_id: count for segment_id, count in rows})
    return counts


# -- writing --


def create_segment(
    session: Session,
    workspace_id: int,
    *,
    name: str,
    subject_type: SubjectType | str,
    kind: SegmentKind | str = SegmentKind.DYNAMIC,
    conditions: dict[str, Any] | None = None,
    description: str = "",
    group_id: int | None = None,
    member_id: int | None = None,
    evaluate: bool = True,
) -> Segment:
    """Create a segment and, for a dynamic one, evaluate it (``evaluate=False``: mark it pending, for
    ``evaluation.submit``). Raises ``InvalidSegmentError`` / ``NameTakenError``."""
    subject_type, kind = SubjectType(subject_type), SegmentKind(kind)
    name = checked_name(name, "name")
    _check_name_free(session, workspace_id, name)
    errors = _text_errors(description, "description", DESCRIPTION_MAX)
    errors += _group_errors(session, workspace_id, group_id)
    node = _checked_definition(session, workspace_id, None, subject_type, kind, conditions, errors)
    segment = Segment(
        workspace_id=workspace_id,
        name=name,
        description=description,
        subject_type=subject_type,
        kind=kind,
        group_id=group_id,
        created_by_id=member_id,
        updated_by_id=member_id,
    )
    _set_definition(segment, node)
    session.add(segment)
    session.flush()
    if node is not None and not evaluate:
        mark_pending(segment)
    elif node is not None:
        refresh_segments(session, workspace_id, [segment.id])
    return segment


_UNSET: Any = object()


def update_segment(
    session: Session,
    segment: Segment,
    *,
    name: str = _UNSET,
    description: str = _UNSET,
    subject_type: SubjectType | str = _UNSET,
    kind: SegmentKind | str = _UNSET,
    conditions: dict[str, Any] | None = _UNSET,
    group_id: int | None = _UNSET,
    member_id: int | None = None,
    evaluate: bool = True,
) -> Segment:
    """Change what is given. A new definition (conditions or subject type) is evaluated at once (``evaluate=False``:
    marked pending, for ``evaluation.submit``); a rename
    recomputes the members' ``Segments``. Changing the subject type is refused while something uses the segment."""
    errors: list[dict[str, str]] = []
    if segment.kind == SegmentKind.SHARED and any(
        v is not _UNSET for v in (name, description, subject_type, conditions)
    ):
        reason = "a segment shared from another workspace is defined there; only its group can change here"
        raise InvalidSegmentError([{"field": "", "reason": reason}])
    if kind is not _UNSET and SegmentKind(kind) != segment.kind:
        errors.append({"field": "kind", "reason": "the kind of a segment cannot change; create another segment"})
    new_name = segment.name if name is _UNSET else checked_name(name, "name")
    if new_name != segment.name:
        _check_name_free(session, segment.workspace_id, new_name, exclude=segment.id)
    if description is not _UNSET:
        errors += _text_errors(description, "description", DESCRIPTION_MAX)
    if group_id is not _UNSET:
        errors += _group_errors(session, segment.workspace_id, group_id)
    new_type = segment.subject_type if subject_type is _UNSET else SubjectType(subject_type)
    type_changes = new_type != segment.subject_type
    definition_changes = type_changes or conditions is not _UNSET
    node = None
    if definition_changes:
        new_conditions = segment.conditions if conditions is _UNSET else conditions
        node = _checked_definition(
            session, segment.workspace_id, segment, new_type, segment.kind, new_conditions, errors
        )
    elif errors:
        raise InvalidSegmentError(errors)
    if type_changes:
        usages = find_usages(session, segment)
        if usages:
            raise SegmentInUseError(segment, usages, "change its subject type")
        # Its members are subjects of the other type: they all leave first.
        change_members(
            session,
            segment.id,
            remove=select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == segment.id),
        )

    renamed = new_name != segment.name
    segment.name = new_name
    if description is not _UNSET:
        segment.description = description
    if group_id is not _UNSET:
        segment.group_id = group_id
    segment.subject_type = new_type
    if definition_changes:
        _set_definition(segment, node)
    segment.updated_by_id = member_id
    segment.updated_at = utcnow()
    session.flush()
    if segment.hq_item_id is not None:
        segment.edited_in_child = True  # an HQ sync that writes the copy clears it again
    if definition_changes and segment.kind == SegmentKind.DYNAMIC and not evaluate:
        mark_pending(segment)
    elif definition_changes and segment.kind == SegmentKind.DYNAMIC:
        refresh_segments(session, segment.workspace_id, [segment.id])
    if renamed:
        # Members who neither entered nor left still carry the old name in their Segments.
        rename_recompute(session, segment)
        for listener in _rename_listeners:
            listener(session, segment)
    return segment


def delete_segment(session: Session, segment: Segment) -> None:
    """Delete a segment (its membership and history go with it); refused while something uses it."""
    usages = find_usages(session, segment)
    if usages:
        raise SegmentInUseError(segment, usages, "be deleted")
    forget_segment(session, segment)
    session.delete(segment)
    session.flush()


def refresh(session: Session, workspace_id: int, segment_id: int | None = None) -> Evaluation:
    """Fully re-evaluate one segment (or every dynamic segment of the workspace) and what depends on it; a segment
    whose background evaluation never ended (its process stopped) or failed is evaluated by it."""
    if segment_id is not None:
        get_segment(session, workspace_id, segment_id)
        evaluation = refresh_segments(session, workspace_id, [segment_id])
    else:
        evaluation = refresh_segments(session, workspace_id)
    mark_evaluated(session, workspace_id, [segment_id] if segment_id is not None else None)
    return evaluation


def preview_segment(
    session: Session,
    workspace_id: int,
    *,
    subject_type: SubjectType | str,
    conditions: dict[str, Any],
    segment_id: int | None = None,
) -> dict[str, Any]:
    """What a definition would match now, without saving: count, sample, and would_add / would_remove against a
    saved segment's membership when ``segment_id`` is given."""
    subject_type = SubjectType(subject_type)
    errors: list[dict[str, str]] = []
    segment = None
    if segment_id is not None:
        segment = session.get(Segment, segment_id)
        if segment is None or segment.workspace_id != workspace_id:
            errors.append({"field": "segment_id", "reason": f"no segment {segment_id} in this workspace"})
            segment = None
        elif segment.subject_type != subject_type:
            reason = f"segment {segment_id} is a {segment.subject_type} segment"
            errors.append({"field": "segment_id", "reason": reason})
    node = _checked_definition(session, workspace_id, segment, subject_type, SegmentKind.DYNAMIC, conditions, errors)
    preview = preview_membership(session, workspace_id, node, subject_type, segment_id=segment_id)
    preview["warnings"] = attribute_type_warnings(session, workspace_id, subject_type, node)
    return preview


def explain_membership(session: Session, segment: Segment, subject_id: int, now: datetime | None = None) -> dict:
    """Why a subject is or is not in a segment: the tree with every node's result and what was observed."""
    is_member = session.get(SegmentMembership, {"segment_id": segment.id, "subject_id": subject_id}) is not None
    result: dict[str, Any] = {"segment_id": segment.id, "subject_id": subject_id, "member": is_member}
    if segment.kind != SegmentKind.DYNAMIC:
        result["explanation"] = {"type": segment.kind.value, "matched": is_member}
        return result
    node = parsed_conditions(segment.id, segment.conditions, segment.subject_type)
    result["explanation"] = explain(
        session,
        node,
        subject_type=segment.subject_type,
        workspace_id=segment.workspace_id,
        subject_id=subject_id,
        now=now or utcnow(),
    )
    return result


# -- validation helpers --


def checked_name(name: Any, field: str) -> str:
    if not isinstance(name, str):
        raise InvalidSegmentError([{"field": field, "reason": "must be a string"}])
    name = name.strip()
    errors = _text_errors(name, field, NAME_MAX)
    if not name:
        errors.append({"field": field, "reason": "must not be empty"})
    if errors:
        raise InvalidSegmentError(errors)
    return name


def _text_errors(value: Any, field: str, limit: int) -> list[dict[str, str]]:
    if not isinstance(value, str):
        return [{"field": field, "reason": "must be a string"}]
    if len(value) > limit:
        return [{"field": field, "reason": f"must be at most {limit} characters"}]
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value):
        return [{"field": field, "reason": "must not contain control characters"}]
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return [{"field": field, "reason": "must be valid Unicode text"}]
    return []


def _check_name_free(session: Session, workspace_id: int, name: str, exclude: int | None = None) -> None:
    query = select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.name == name)
    if exclude is not None:
        query = query.where(Segment.id != exclude)
    if session.scalar(query) is not None:
        raise NameTakenError("name", name)


def check_group_name_free(session: Session, workspace_id: int, name: str) -> None:
    query = select(SegmentGroup.id).where(SegmentGroup.workspace_id == workspace_id, SegmentGroup.name == name)
    if session.scalar(query) is not None:
        raise NameTakenError("name", name, "segment group")


def _group_errors(session: Session, workspace_id: int, group_id: int | None) -> list[dict[str, str]]:
    if group_id is None:
        return []
    group = session.get(SegmentGroup, group_id)
    if group is None or group.workspace_id != workspace_id:
        return [{"field": "group_id", "reason": f"no segment group {group_id} in this workspace"}]
    return []


def _checked_definition(
    session: Session,
    workspace_id: int,
    segment: Segment | None,
    subject_type: SubjectType,
    kind: SegmentKind,
    conditions: dict[str, Any] | None,
    errors: list[dict[str, str]],
) -> Node | None:
    """The parsed tree (None for a manual segment), or ``InvalidSegmentError`` with every error found."""
    node = None
    if kind == SegmentKind.SHARED:
        errors.append({"field": "kind", "reason": "shared segments are made by sharing a segment from its workspace"})
    elif kind == SegmentKind.MANUAL:
        if conditions is not None:
            errors.append({"field": "conditions", "reason": "manual segments have no conditions; members are added"})
    elif conditions is None:
        errors.append({"field": "conditions", "reason": "is required for dynamic segments"})
    else:
        try:
            node = parse_conditions(conditions, subject_type)
        except ConditionError as exc:
            errors.extend(exc.errors)
        else:
            query = select(Segment.id, Segment.subject_type).where(Segment.workspace_id == workspace_id)
            types = {segment_id: type_ for segment_id, type_ in session.execute(query)}
            if segment is not None:
                types[segment.id] = subject_type
            reference_errors = validate_references(node, types.get, subject_type=subject_type)
            reference_errors = reference_errors or unevaluated_reference_errors(
                session, workspace_id, node, subject_type
            )
            errors.extend(reference_errors)
            if not reference_errors and segment is not None:
                errors.extend(_cycle_errors(session, workspace_id, segment, node))
    if errors:
        raise InvalidSegmentError(errors)
    return node


def _cycle_errors(session: Session, workspace_id: int, segment: Segment, node: Node) -> list[dict[str, str]]:
    """A saved segment whose new tree would close a circle of references (a new segment cannot: nothing
    references it yet)."""
    rows = session.execute(
        select(Segment.id, Segment.name, Segment.dependencies).where(Segment.workspace_id == workspace_id)
    ).all()
    names = {r.id: r.name for r in rows}
    graph = {r.id: references_in(r.dependencies) for r in rows}
    graph[segment.id] = references_in(dependencies(node))
    cycle = find_cycle(graph)
    if cycle is None:
        return []
    # Start the circle at this segment, and point at the leaf that takes the first step.
    if segment.id in cycle:
        start = cycle.index(segment.id)
        cycle = cycle[start:-1] + cycle[:start] + [segment.id]
    names[segment.id] = segment.name
    path = "conditions"
    for leaf_path, leaf, _ in walk(node):
        is_reference = isinstance(leaf, SegmentCondition | AccountSegmentCondition)
        if is_reference and len(cycle) > 1 and leaf.segment_id == cycle[1]:
            path = leaf_path + ".segment_id"
            break
    circle = " -> ".join(names.get(i, str(i)) for i in cycle)
    return [{"field": path, "reason": f"segments would reference each other in a circle: {circle}"}]


def _set_definition(segment: Segment, node: Node | None) -> None:
    if node is None:
        segment.conditions = None
        segment.dependencies = []
        segment.is_time_relative = False
        segment.time_unit_seconds = None
        return
    segment.conditions = node.model_dump(mode="json")
    segment.dependencies = sorted(dependencies(node))
    segment.is_time_relative = is_time_relative(node)
    unit = smallest_time_unit(node)
    segment.time_unit_seconds = int(unit.total_seconds()) if unit is not None else None
