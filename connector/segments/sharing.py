"""Sharing a segment with other workspaces of the same company; only membership crosses.

In each target workspace a shared segment has a stand-in: a segment of kind ``shared`` named ``<source workspace> /
<segment>`` (so ``Segments`` tells where it comes from), whose members are the target's users matching a member of
the source segment by device id (``shared_members``). It is evaluated by the ordinary engine (``membership``), so it
works wherever a segment does: ``segment`` conditions, sync filters, member counts, exports, ``Segments``. Nothing
of the source but its membership is read: the stand-in copies neither description nor conditions.

It stays current as local segments do: device changes in the target re-evaluate it like any device-reading segment
(its dependencies say ``device``); membership changes of the source segment are followed into every target by the
engine (``_Run._follow_shares``); device changes in the source are followed here (``follow_source_devices``); and
the sliding-window refresh re-evaluates it whole every 15 minutes for whatever else (a device deleted with its
user).

Who may share: a member who administers the source workspace and each target workspace (company admins administer
every workspace). The sharing read lists the workspaces the member may see, and counts the shares it may not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from connector.errors import ConflictError, ForbiddenError, InvalidError
from connector.models import (
    Member,
    MembershipChange,
    Role,
    Segment,
    SegmentKind,
    SegmentMembershipEvent,
    SegmentShare,
    SubjectType,
    Workspace,
)
from connector.segments import service
from connector.segments.membership import forget_segment, rename_recompute
from connector.segments.run import evaluate_subjects, refresh_segments
from connector.segments.shared_members import matching_users, stand_ins_from
from connector.tenancy import visible_workspaces

# Re-evaluated whole by the sliding-window job at this cadence's unit (a day: every 15 minutes).
REFRESH_UNIT_SECONDS = 86_400
# Past this many matched target users, a stand-in is re-evaluated whole rather than for the users.
FOLLOW_WHOLE_ABOVE = 20_000


@dataclass(frozen=True)
class Use:
    """Something in a target workspace that uses a stand-in."""

    workspace_id: int
    workspace: str
    kind: str
    id: int
    name: str


# -- reading ---------------------------------------------------------------------------------------------------------


def sharing_of(session: Session, member: Member, segment: Segment) -> dict[str, Any]:
    """The workspaces this member may see (but the segment's own), each with ``shared`` yes/no, and how many other
    workspaces the segment is shared with that the member cannot see."""
    visible = {w.id: (w, role) for w, role in visible_workspaces(session, member) if w.id != segment.workspace_id}
    shared = set(session.scalars(select(SegmentShare.target_workspace_id).where(_shares_of(segment))))
    workspaces = [
        {
            "id": w.id,
            "name": w.name,
            "slug": w.slug,
            "shared": w.id in shared,
            "can_change": _administers(member, role),
        }
        for w, role in visible.values()
    ]
    return {"segment_id": segment.id, "workspaces": workspaces, "hidden_shared_count": len(shared - set(visible))}


def shared_evaluations(session: Session, segment: Segment, limit: int = 100) -> list[dict[str, Any]]:
    """A stand-in's evaluations that changed its membership, newest first: when, and its member count after."""
    history = SegmentMembershipEvent.__table__
    entered = func.sum(case((history.c.change == MembershipChange.ENTERED.value, 1), else_=0))
    rows = session.execute(
        select(history.c.at, entered, func.count())
        .where(history.c.segment_id == segment.id)
        .group_by(history.c.at)
        .order_by(history.c.at)
    ).all()
    count, evaluations = 0, []
    for at, came, total in rows:
        count += int(came or 0) - (total - int(came or 0))
        evaluations.append({"at": at, "member_count": count})
    return evaluations[::-1][:limit]


# -- changing --------------------------------------------------------------------------------------------------------


def set_sharing(
    session: Session, member: Member, segment: Segment, workspace_ids: Iterable[int], *, now: datetime | None = None
) -> dict[str, Any]:
    """Share the segment with exactly these of the workspaces the member can see (shares the member cannot see stay).

    Refused: a segment that is not about users or is itself shared (422), a workspace the member cannot see or of
    another company (422, ``workspaces[i]``), a workspace the member does not administer (403), a stand-in that
    something in its workspace uses (409 naming the uses), a stand-in name taken in a target (409)."""
    wanted = list(workspace_ids)
    if segment.subject_type != SubjectType.USER:
        raise InvalidError.one("segment", "only user segments can be shared: members are matched by device")
    if segment.kind == SegmentKind.SHARED:
        raise InvalidError.one("segment", "a segment shared from another workspace cannot be shared on")
    visible = {w.id: (w, role) for w, role in visible_workspaces(session, member)}
    errors = []
    for index, workspace_id in enumerate(wanted):
        if workspace_id not in visible or workspace_id == segment.workspace_id:
            errors.append({"field": f"workspaces[{index}]", "reason": f"no workspace {workspace_id} to share with"})
    if errors:
        raise InvalidError(errors)
    current = {s.target_workspace_id: s for s in session.scalars(select(SegmentShare).where(_shares_of(segment)))}
    adding = [i for i in dict.fromkeys(wanted) if i not in current]
    removing = [i for i in current if i in visible and i not in wanted]
    for workspace_id in adding + removing:
        if not _administers(member, visible[workspace_id][1]):
            raise ForbiddenError(f"Sharing with {visible[workspace_id][0].name!r} needs its workspace_admin role.")
    uses = [use for i in removing for use in _uses(session, current[i])]
    if uses:
        raise ConflictError(
            f"segment {segment.name!r} cannot stop being shared: {_listed(uses)}", usages=[u.__dict__ for u in uses]
        )
    for workspace_id in removing:
        _unshare(session, current[workspace_id])
    source = session.get(Workspace, segment.workspace_id)
    for workspace_id in adding:
        _share(session, member, segment, source, visible[workspace_id][0], now)
    return sharing_of(session, member, segment)


def delete_segment(session: Session, member: Member, segment: Segment) -> None:
    """Delete a segment: refused (409) while a workspace it is shared with uses it, naming the uses in workspaces
    the member can see and counting the others; otherwise its shares go first."""
    shares = list(session.scalars(select(SegmentShare).where(_shares_of(segment))))
    uses = [use for share in shares for use in _uses(session, share)]
    if uses:
        visible = {w.id for w, _ in visible_workspaces(session, member)}
        seen = [u for u in uses if u.workspace_id in visible]
        hidden = len(uses) - len(seen)
        detail = f"segment {segment.name!r} cannot be deleted: it is used where it is shared"
        if seen:
            detail += f" by {_listed(seen)}"
        if hidden:
            detail += f" and {hidden} use(s) in workspaces you cannot see"
        raise ConflictError(detail, usages=[u.__dict__ for u in seen], hidden_usage_count=hidden)
    for share in shares:
        _unshare(session, share)
    service.delete_segment(session, segment)


def follow_source_devices(session: Session, workspace_id: int, user_ids: set[int], now: datetime | None = None):
    """Devices of these users changed in a workspace that shares segments: re-evaluate the stand-ins, in every
    target, for the target users whose devices match theirs (a new match may enter; a moved device may leave)."""
    if not user_ids:
        return
    for target_id, proxy_ids in stand_ins_from(session, workspace_id).items():
        matched = set(session.scalars(matching_users(workspace_id, target_id, sorted(user_ids))))
        if len(matched) > FOLLOW_WHOLE_ABOVE:
            refresh_segments(session, target_id, proxy_ids, now=now)
        elif matched:
            evaluate_subjects(session, target_id, dict.fromkeys(proxy_ids, matched), now=now)


# -- inside ----------------------------------------------------------------------------------------------------------


def _shares_of(segment: Segment):
    return SegmentShare.source_segment_id == segment.id


def _administers(member: Member, role: Role) -> bool:
    return member.is_company_admin or role == Role.WORKSPACE_ADMIN


def _share(
    session: Session, member: Member, segment: Segment, source: Workspace, target: Workspace, now: datetime | None
) -> None:
    name = f"{source.name} / {segment.name}"[: service.NAME_MAX]
    taken = session.scalar(select(Segment.id).where(Segment.workspace_id == target.id, Segment.name == name))
    if taken is not None:
        raise ConflictError(f"workspace {target.name!r} already has a segment named {name!r}; rename one first")
    proxy = Segment(
        workspace_id=target.id,
        name=name,
        description="",
        subject_type=SubjectType.USER,
        kind=SegmentKind.SHARED,
        conditions={},
        dependencies=["device"],
        is_time_relative=True,
        time_unit_seconds=REFRESH_UNIT_SECONDS,
        created_by_id=member.id,
        updated_by_id=member.id,
    )
    session.add(proxy)
    session.flush()
    share = SegmentShare(
        source_segment_id=segment.id,
        source_workspace_id=source.id,
        target_workspace_id=target.id,
        proxy_segment_id=proxy.id,
        created_by_id=member.id,
    )
    session.add(share)
    session.flush()
    proxy.conditions = {"type": "shared_segment", "share_id": share.id}
    session.flush()
    refresh_segments(session, target.id, [proxy.id], now=now)


def _unshare(session: Session, share: SegmentShare) -> None:
    proxy = session.get(Segment, share.proxy_segment_id)
    session.delete(share)
    session.flush()
    if proxy is not None:
        forget_segment(session, proxy)
        session.delete(proxy)
        session.flush()


def _uses(session: Session, share: SegmentShare) -> list[Use]:
    proxy = session.get(Segment, share.proxy_segment_id)
    if proxy is None:
        return []
    target = session.get(Workspace, share.target_workspace_id)
    return [
        Use(target.id, target.name, u.kind, u.id, u.name)
        for u in service.find_usages(session, proxy)
        if u.kind != "share"
    ]


def _listed(uses: list[Use]) -> str:
    return ", ".join(f"{u.kind} {u.name!r} in {u.workspace!r}" for u in uses)


@service.register_rename_listener
def _rename_stand_ins(session: Session, segment: Segment) -> None:
    """A renamed shared segment renames its stand-ins (and their members' ``Segments``)."""
    source = session.get(Workspace, segment.workspace_id)
    for share in session.scalars(select(SegmentShare).where(_shares_of(segment))):
        proxy = session.get(Segment, share.proxy_segment_id)
        name = f"{source.name} / {segment.name}"[: service.NAME_MAX]
        taken = session.scalar(
            select(Segment.id).where(
                Segment.workspace_id == proxy.workspace_id, Segment.name == name, Segment.id != proxy.id
            )
        )
        if taken is not None:
            raise ConflictError(f"a workspace this segment is shared with already has a segment named {name!r}")
        proxy.name = name
        session.flush()
        rename_recompute(session, proxy)


@service.register_usage_finder
def _sharing(session: Session, segment: Segment) -> list[service.Usage]:
    """A shared segment (or a stand-in) is deleted through ``delete_segment``/``set_sharing``, never directly."""
    if segment.kind == SegmentKind.SHARED:
        return [service.Usage("share", segment.id, "a segment shared from another workspace; un-share it there")]
    share = session.scalars(select(SegmentShare).where(_shares_of(segment)).limit(1)).first()
    return [] if share is None else [service.Usage("share", share.id, "shared with other workspaces")]
