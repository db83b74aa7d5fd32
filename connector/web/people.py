"""People and accounts: search, filter by segment (in / not in), and one person's page with everything known."""

from __future__ import annotations

from flask import request

from connector import directory
from connector.directory import SubjectFilter
from connector.models import SubjectType
from connector.segments import reads, service
from connector.web.context import db, render, workspace_blueprint, workspace_id
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_people", "/people")
PAGE = 50
HISTORY_LIMIT = 50


def _filters(session, subject_type: SubjectType) -> SubjectFilter:
    """The list's filters from the query string: ``q`` (email, external id or domain) and segment in / not in."""
    q = request.args.get("q", "").strip()[:320]
    filters = SubjectFilter()
    if q and subject_type == SubjectType.USER:
        if "@" in q:
            filters.email = q.lower()
        else:
            filters.external_id = q
    elif q:
        filters.domain, filters.external_id = (q.lower(), None) if "." in q else (None, q)
    segment, not_segment = request.args.get("segment", ""), request.args.get("not_segment", "")
    filters.segments = directory.segment_ids(session, workspace_id(), subject_type, [segment] if segment else [])
    filters.not_segments = directory.segment_ids(
        session, workspace_id(), subject_type, [not_segment] if not_segment else []
    )
    return filters


@bp.get("")
def index():
    subject_type = SubjectType.ACCOUNT if request.args.get("of") == "accounts" else SubjectType.USER
    after = request.args.get("after", "")
    after_id = int(after) if after.isdigit() and len(after) < 19 else None
    refusal = None
    rows: list = []
    more = False
    with db() as session:
        segments = [s for s in service.list_segments(session, workspace_id()) if s.subject_type == subject_type]
        try:
            with refusals():
                filters = _filters(session, subject_type)
                lister = directory.list_users if subject_type == SubjectType.USER else directory.list_accounts
                rows, more = lister(session, workspace_id(), filters, PAGE, after_id)
        except Refusal as exc:
            refusal = exc
    return render(
        "people/index.html",
        422 if refusal else 200,
        rows=rows,
        more=more,
        segments=segments,
        subject_type=subject_type,
        args=request.args,
        refusal=refusal,
    )


@bp.get("/<int:user_id>")
def person(user_id: int):
    """A person: attributes, events and page views (recent first), devices, accounts, ``Segments`` and history."""
    with refusals(), db() as session:
        user = directory.find_user(session, workspace_id(), "id", str(user_id))
        if user is None:
            raise Refusal(404, "No such person in this workspace.")
        events, more_events = directory.user_events(session, user.id, directory.RECENT_EVENTS)
        computed = directory.computed_values(session, workspace_id(), SubjectType.USER, user.id)
        history = reads.subject_history_page(
            session, workspace_id(), SubjectType.USER, user.id, HISTORY_LIMIT, None, None
        )
        return render(
            "people/person.html",
            user=user,
            tags=directory.user_tags(session, [user.id])[user.id],
            accounts=directory.user_accounts(session, user.id),
            devices=directory.user_devices(session, user.id),
            events=events,
            more_events=more_events,
            computed=computed,
            history=history,
        )


@bp.get("/accounts/<int:account_id>")
def account(account_id: int):
    """An account: attributes, tags, its users, ``Segments`` and enter/exit history."""
    with refusals(), db() as session:
        found = directory.find_account(session, workspace_id(), "id", str(account_id))
        if found is None:
            raise Refusal(404, "No such account in this workspace.")
        users, user_count = directory.account_users(session, found.id)
        return render(
            "people/account.html",
            account=found,
            tags=directory.account_tags(session, [found.id])[found.id],
            users=users,
            user_count=user_count,
            computed=directory.computed_values(session, workspace_id(), SubjectType.ACCOUNT, found.id),
            history=reads.subject_history_page(
                session, workspace_id(), SubjectType.ACCOUNT, found.id, HISTORY_LIMIT, None, None
            ),
        )
