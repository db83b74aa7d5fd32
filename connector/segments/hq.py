"""HQ syncing: an HQ workspace pushes segments and segment groups to all its child workspaces.

What is pushed: single segments, groups alone, or groups with their segments. Segments whose conditions reference
other HQ segments bring those along, pushed first (dependency order); the child's copy references the child's
copies through the segment mapping (``mapping``), and a reference that cannot be resolved fails the item.

Matching is by origin (``hq_workspace_id`` + ``hq_item_id`` on the child's copy), never by name. Per item and
child, the outcome is one of:

- ``created`` — the child had no copy; one is made (and, for a segment, mapped and evaluated);
- ``updated`` — mode ``update_existing`` and the copy differed (or was edited in the child): HQ's version wins;
- ``skipped`` — mode ``only_where_missing`` and a copy exists (``reason: exists``), or the copy already equals HQ's
  (``reason: unchanged``: re-running a sync changes nothing);
- ``conflict`` — the child has an unrelated item of the same name; nothing is overwritten;
- ``failed`` — with the reason (a referenced HQ segment could not be pushed, a mapping is missing, a manual
  segment, the definition is refused in the child).

Each item in each child is written in its own savepoint, so a failure leaves nothing behind. A dry run does all
of it in a savepoint that is rolled back: the report is exactly what the sync would do. Reports are stored
(``HqSyncReport``) unless dry; children's admins read their part.

More kinds of item join through ``ItemKind``: a kind lists the HQ items asked for and pushes one item to one child
(``ChildPush`` carries the child's segment mapping for ``rewrite_segment_references``); kinds are pushed in the
order of ``ITEM_KINDS`` so segments exist before what references them. Packages above segments add theirs with
``register_item_kind`` at start-up (``connector.automation.hq``: views and playbooks).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.errors import ForbiddenError, InvalidError, NotFoundError, ServiceError
from connector.models import HqSyncReport, Member, Role, Segment, SegmentGroup, SegmentKind, Workspace
from connector.segments import service
from connector.segments.mapping import MissingMappingError, mappings_of, rewrite_segment_references, set_mapping
from connector.segments.ordering import evaluation_order, references_in
from connector.tenancy import Access


class Mode(enum.StrEnum):
    UPDATE_EXISTING = "update_existing"
    ONLY_WHERE_MISSING = "only_where_missing"


STATUSES = ("created", "updated", "skipped", "conflict", "failed")


@dataclass
class ItemResult:
    kind: str
    hq_id: int
    name: str
    status: str
    id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ChildPush:
    """Pushing to one child: its segment mapping and group copies as they stand during the run."""

    session: Session
    hq: Workspace
    child: Workspace
    mode: Mode
    member_id: int | None
    mapping: dict[int, int]
    # The application's secret key, for kinds whose items hold encrypted secrets (a playbook's webhooks).
    secret_key: str | None = None
    group_copies: dict[int, int] = field(default_factory=dict)
    # HQ segments that could not be pushed to this child, with why (what references them fails too).
    failed: dict[int, str] = field(default_factory=dict)

    def mapped(self, hq_segment_id: int) -> int | None:
        return None if hq_segment_id in self.failed else self.mapping.get(hq_segment_id)


@dataclass(frozen=True)
class ItemKind:
    """A kind of item HQ pushes. ``key`` names its ids in a request; ``choose(session, hq_id, ids, extra_ids)``
    reads the HQ items asked for (``InvalidError`` naming ``key[i]`` for an unknown id) in the order to push them;
    ``push(child_push, item)`` pushes one to one child, in its own savepoint, and says what happened."""

    key: str
    choose: Callable[[Session, int, list[int], list[int]], list]
    push: Callable[[ChildPush, Any], ItemResult]


# -- entry point -----------------------------------------------------------------------------------------------------


def sync_to_children(
    session: Session,
    member: Member,
    access: Access,
    *,
    items: dict[str, list[int]],
    include_group_segments: bool = False,
    mode: Mode | str = Mode.UPDATE_EXISTING,
    dry_run: bool = False,
    secret_key: str | None = None,
) -> dict[str, Any]:
    """Push the chosen items of the HQ workspace (``access.workspace_id``) to every child; returns the report.

    ``items`` maps a kind's request key (``segment_groups``, ``segments``: see ``ITEM_KINDS``) to HQ item ids;
    ``include_group_segments`` adds the chosen groups' segments."""
    if not access.allows(Role.WORKSPACE_ADMIN):
        raise ForbiddenError("Only an admin of the HQ workspace may sync it to its child workspaces.")
    mode = Mode(mode)
    hq = session.get(Workspace, access.workspace_id)
    children = list(
        session.scalars(
            select(Workspace)
            .where(Workspace.parent_id == hq.id, Workspace.company_id == hq.company_id)
            .order_by(Workspace.id)
        )
    )
    if not children:
        raise InvalidError.one("", "this workspace has no child workspaces to sync to")
    asked = {kind.key: list(items.get(kind.key) or []) for kind in ITEM_KINDS}
    extra: dict[str, list[int]] = {}
    if include_group_segments and asked["segment_groups"]:
        in_groups = select(Segment.id).where(
            Segment.workspace_id == hq.id, Segment.group_id.in_(asked["segment_groups"])
        )
        extra["segments"] = list(session.scalars(in_groups.order_by(Segment.id)))
    chosen = [(kind, kind.choose(session, hq.id, asked[kind.key], extra.get(kind.key, []))) for kind in ITEM_KINDS]
    if not any(found for _, found in chosen):
        raise InvalidError.one("segments", "choose at least one item to sync")
    request = {**{key: sorted(ids) for key, ids in asked.items()}, "include_group_segments": include_group_segments}
    savepoint = session.begin_nested() if dry_run else None
    report_children = []
    for child in children:
        push = ChildPush(session, hq, child, mode, member.id, mappings_of(session, child.id), secret_key)
        results = [kind.push(push, item) for kind, found in chosen for item in found]
        report_children.append(
            {
                "workspace_id": child.id,
                "workspace": child.name,
                "counts": {s: sum(r.status == s for r in results) for s in STATUSES},
                "items": [r.as_dict() for r in results],
            }
        )
    report = {"hq_workspace_id": hq.id, "mode": mode.value, "dry_run": dry_run, "children": report_children}
    if savepoint is not None:
        savepoint.rollback()
        return {"id": None, **report, "request": request}
    stored = HqSyncReport(
        hq_workspace_id=hq.id, member_id=member.id, mode=mode.value, dry_run=False, request=request, report=report
    )
    session.add(stored)
    session.flush()
    return report_json(stored)


def child_workspaces(session: Session, hq_workspace_id: int) -> list[Workspace]:
    """The workspaces an HQ workspace syncs to (none: it is not an HQ)."""
    return list(session.scalars(select(Workspace).where(Workspace.parent_id == hq_workspace_id).order_by(Workspace.id)))


def report_json(stored: HqSyncReport, child_id: int | None = None) -> dict[str, Any]:
    """A stored report; for a child, only its own part."""
    children = stored.report["children"]
    if child_id is not None:
        children = [c for c in children if c["workspace_id"] == child_id]
    return {
        "id": stored.id,
        "hq_workspace_id": stored.hq_workspace_id,
        "mode": stored.mode,
        "dry_run": stored.dry_run,
        "request": stored.request,
        "created_by": stored.member_id,
        "created_at": stored.created_at,
        "children": children,
    }


def list_reports(session: Session, workspace_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Reports of syncs from this workspace (as HQ) and to it (as a child: its part only), newest first."""
    workspace = session.get(Workspace, workspace_id)
    hq_ids = [workspace_id] + ([workspace.parent_id] if workspace.parent_id else [])
    rows = session.scalars(
        select(HqSyncReport)
        .where(HqSyncReport.hq_workspace_id.in_(hq_ids))
        .order_by(HqSyncReport.id.desc())
        .limit(limit)
    )
    return [report_json(r, None if r.hq_workspace_id == workspace_id else workspace_id) for r in rows]


def get_report(session: Session, workspace_id: int, report_id: int) -> dict[str, Any]:
    stored = session.get(HqSyncReport, report_id)
    workspace = session.get(Workspace, workspace_id)
    if stored is None or stored.hq_workspace_id not in (workspace_id, workspace.parent_id):
        raise NotFoundError("HQ sync report")
    return report_json(stored, None if stored.hq_workspace_id == workspace_id else workspace_id)


# -- choosing --------------------------------------------------------------------------------------------------------


def _chosen(session: Session, model, workspace_id: int, ids: list[int], field_name: str) -> list:
    found = {
        item.id: item
        for item in session.scalars(select(model).where(model.id.in_(ids), model.workspace_id == workspace_id))
    }
    errors = [
        {"field": f"{field_name}[{i}]", "reason": f"no {model.__tablename__[:-1].replace('_', ' ')} {item_id} here"}
        for i, item_id in enumerate(ids)
        if item_id not in found
    ]
    if errors:
        raise InvalidError(errors)
    return [found[i] for i in dict.fromkeys(ids)]


def _choose_groups(session: Session, hq_id: int, ids: list[int], extra: list[int]) -> list[SegmentGroup]:
    return _chosen(session, SegmentGroup, hq_id, ids, "segment_groups")


def _choose_segments(session: Session, hq_id: int, ids: list[int], extra: list[int]) -> list[Segment]:
    """The chosen segments (and ``extra`` ones) with every HQ segment they reference, transitively, referenced ones
    first."""
    chosen = _chosen(session, Segment, hq_id, ids, "segments")
    chosen += session.scalars(select(Segment).where(Segment.id.in_(extra), Segment.workspace_id == hq_id)).all()
    by_id = {s.id: s for s in chosen}
    todo = list(by_id)
    while todo:
        refs = references_in(by_id[todo.pop()].dependencies) - set(by_id)
        for found in session.scalars(select(Segment).where(Segment.id.in_(refs), Segment.workspace_id == hq_id)):
            by_id[found.id] = found
            todo.append(found.id)
    order = evaluation_order({i: references_in(s.dependencies) & set(by_id) for i, s in by_id.items()})
    return [by_id[i] for i in order]


# -- segment groups --------------------------------------------------------------------------------------------------


def _push_group(push: ChildPush, group: SegmentGroup) -> ItemResult:
    session = push.session
    result = ItemResult("segment_group", group.id, group.name, "skipped")
    copy = _copy_of(session, SegmentGroup, push, group.id)
    if copy is not None:
        push.group_copies[group.id] = result.id = copy.id
        if push.mode == Mode.ONLY_WHERE_MISSING:
            result.reason = "exists"
            return result
        same = (copy.name, copy.description) == (group.name, group.description) and not copy.edited_in_child
        if same:
            result.reason = "unchanged"
            return result
    taken = session.scalar(
        select(SegmentGroup.id).where(SegmentGroup.workspace_id == push.child.id, SegmentGroup.name == group.name)
    )
    if taken is not None and (copy is None or taken != copy.id):
        result.status = "conflict"
        result.reason = f"the child has another segment group named {group.name!r} (id {taken}) not synced from HQ"
        return result
    with session.begin_nested():
        if copy is None:
            copy = SegmentGroup(workspace_id=push.child.id, hq_workspace_id=push.hq.id, hq_item_id=group.id)
            session.add(copy)
            result.status = "created"
        else:
            result.status = "updated"
        copy.name, copy.description, copy.edited_in_child = group.name, group.description, False
        session.flush()
    push.group_copies[group.id] = result.id = copy.id
    return result


# -- segments --------------------------------------------------------------------------------------------------------


def _push_segment(push: ChildPush, segment: Segment) -> ItemResult:
    result = _segment_outcome(push, segment)
    if result.status in ("conflict", "failed"):
        push.failed[segment.id] = result.reason or result.status
    elif result.id is not None:
        push.mapping.setdefault(segment.id, result.id)
    return result


def _segment_outcome(push: ChildPush, segment: Segment) -> ItemResult:
    session = push.session
    result = ItemResult("segment", segment.id, segment.name, "failed")
    if segment.kind != SegmentKind.DYNAMIC:
        result.reason = f"only dynamic segments can be synced; this one is {segment.kind.value}"
        return result
    for ref in sorted(references_in(segment.dependencies)):
        if ref in push.failed:
            result.reason = f"references HQ segment {ref}, which could not be synced: {push.failed[ref]}"
            return result
    copy = _copy_of(session, Segment, push, segment.id)
    if copy is not None and push.mode == Mode.ONLY_WHERE_MISSING:
        result.status, result.reason, result.id = "skipped", "exists", copy.id
        return result
    try:
        conditions = rewrite_segment_references(segment.conditions, push.mapped)
    except MissingMappingError as exc:
        result.reason = str(exc)
        return result
    group_id = _group_copy(push, segment.group_id) if segment.group_id else None
    if copy is not None:
        result.id = copy.id
        wanted = (segment.name, segment.description, segment.subject_type, conditions)
        if (copy.name, copy.description, copy.subject_type, copy.conditions) == wanted and not copy.edited_in_child:
            result.status, result.reason = "skipped", "unchanged"
            return result
    taken = session.scalar(
        select(Segment.id).where(Segment.workspace_id == push.child.id, Segment.name == segment.name)
    )
    if taken is not None and (copy is None or taken != copy.id):
        result.status = "conflict"
        result.reason = f"the child has another segment named {segment.name!r} (id {taken}) not synced from HQ"
        return result
    try:
        with session.begin_nested():
            if copy is None:
                copy = service.create_segment(
                    session,
                    push.child.id,
                    name=segment.name,
                    description=segment.description,
                    subject_type=segment.subject_type,
                    conditions=conditions,
                    group_id=group_id,
                    member_id=push.member_id,
                )
                copy.hq_workspace_id, copy.hq_item_id = push.hq.id, segment.id
                result.status = "created"
            else:
                changes: dict[str, Any] = {}
                if segment.group_id and group_id is not None:
                    changes["group_id"] = group_id
                service.update_segment(
                    session,
                    copy,
                    name=segment.name,
                    description=segment.description,
                    subject_type=segment.subject_type,
                    conditions=conditions,
                    member_id=push.member_id,
                    **changes,
                )
                result.status = "updated"
            copy.edited_in_child = False
            session.flush()
            set_mapping(session, push.child.id, push.hq.id, segment.id, copy.id, push.member_id)
    except (ServiceError, service.SegmentError) as exc:
        result.status, result.reason = "failed", str(exc)
        return result
    result.id = copy.id
    return result


def _group_copy(push: ChildPush, hq_group_id: int) -> int | None:
    """The child's copy of an HQ group: pushed in this run, or synced before."""
    if hq_group_id not in push.group_copies:
        copy = _copy_of(push.session, SegmentGroup, push, hq_group_id)
        if copy is None:
            return None
        push.group_copies[hq_group_id] = copy.id
    return push.group_copies[hq_group_id]


def _copy_of(session: Session, model, push: ChildPush, hq_item_id: int):
    return session.scalars(
        select(model).where(
            model.workspace_id == push.child.id,
            model.hq_workspace_id == push.hq.id,
            model.hq_item_id == hq_item_id,
        )
    ).first()


SEGMENT_GROUPS = ItemKind("segment_groups", _choose_groups, _push_group)
SEGMENTS = ItemKind("segments", _choose_segments, _push_segment)
# The order kinds are pushed in: what is referenced before what references it (playbooks and views come after).
ITEM_KINDS = [SEGMENT_GROUPS, SEGMENTS]


def register_item_kind(kind: ItemKind) -> None:
    """Add a kind of item pushed after those already known (idempotent by ``key``): how packages above segments
    (automation's playbooks and views) join HQ syncs without segments importing them."""
    if all(known.key != kind.key for known in ITEM_KINDS):
        ITEM_KINDS.append(kind)


# For the kinds registered from other packages.
chosen_items = _chosen
copy_of = _copy_of
