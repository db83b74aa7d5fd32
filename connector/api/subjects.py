"""Reading users and accounts: lists with filters, one subject with everything known about it, a user's events.

Filters (all must hold; each repeatable one may be given several times):

- ``attribute=name:value``: the attribute's value, as text, is ``value`` (``plan:pro``, ``lifetime_value:100``,
  ``vip:true``). The name ends at the first colon.
- ``tag=vip``: has the tag.
- ``segment=<name or id>``: is a member of that segment (of the same subject type; several: of all of them);
  ``not_segment=``: is not (several: of none). An unknown segment is a 422 naming the parameter.
- ``email=``, ``external_id=`` (users), ``external_id=``, ``domain=`` (accounts): exact match.

One subject: ``/users/<ref>?by=id|external_id|email`` and ``/accounts/<ref>?by=id|external_id`` (``by`` defaults to
``id``); an external id containing ``/`` is looked up with the list filter ``?external_id=`` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field

from connector import directory
from connector.api.common import WorkspacePath, decode_cursor, encode_cursor, workspace_blueprint
from connector.api.context import unit_of_work, workspace_id
from connector.api.problems import invalid, not_found
from connector.computed import SEGMENTS
from connector.directory import SubjectFilter, UnknownSegmentError
from connector.ingest.items import check_key, check_text
from connector.models import Account, Device, Event, EventKind, SubjectType, User

bp = workspace_blueprint("subjects", "subjects")


def blueprints() -> list[APIBlueprint]:
    return [bp]


MAX_REPEATED = 20


class ListQuery(BaseModel):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")
    external_id: str | None = Field(None, max_length=255)
    attribute: list[str] = Field(
        default_factory=list, max_length=MAX_REPEATED, description="name:value, the attribute's value as text"
    )
    tag: list[str] = Field(default_factory=list, max_length=MAX_REPEATED)
    segment: list[str] = Field(default_factory=list, max_length=MAX_REPEATED, description="Segment name or id")
    not_segment: list[str] = Field(default_factory=list, max_length=MAX_REPEATED, description="Segment name or id")


class UserListQuery(ListQuery):
    email: str | None = Field(None, max_length=320)


class AccountListQuery(ListQuery):
    domain: str | None = Field(None, max_length=255)


class SubjectPath(WorkspacePath):
    ref: str = Field(max_length=320, description="The user's id, external id or email, per the by parameter")


class UserRefQuery(BaseModel):
    by: Literal["id", "external_id", "email"] = "id"


class AccountRefQuery(BaseModel):
    by: Literal["id", "external_id"] = "id"


class EventsQuery(BaseModel):
    by: Literal["id", "external_id", "email"] = "id"
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)
    kind: EventKind | None = None


class UserOut(BaseModel):
    id: int
    external_id: str | None
    email: str | None
    attributes: dict[str, Any]
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class AccountOut(BaseModel):
    id: int
    external_id: str
    domain: str | None
    name: str | None
    attributes: dict[str, Any]
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class EventOut(BaseModel):
    id: int
    kind: EventKind
    name: str
    url: str | None
    title: str | None
    properties: dict[str, Any]
    account_id: int | None
    occurred_at: datetime
    received_at: datetime
    message_id: str


class DeviceOut(BaseModel):
    id: int
    platform: str
    vendor_device_id: str
    push_token: str | None
    last_seen_at: datetime
    created_at: datetime


class AccountRefOut(BaseModel):
    id: int
    external_id: str
    domain: str | None
    name: str | None


class UserRefOut(BaseModel):
    id: int
    external_id: str | None
    email: str | None


class UserDetail(UserOut):
    accounts: list[AccountRefOut]
    devices: list[DeviceOut]
    events: list[EventOut] = Field(description=f"The {directory.RECENT_EVENTS} most recent events")
    computed: dict[str, Any] = Field(description="Computed properties, e.g. Segments")
    segments: list[str] = Field(description="The Segments computed property: names of the segments it is in")


class AccountDetail(AccountOut):
    users: list[UserRefOut] = Field(description=f"The first {directory.ACCOUNT_USERS} users by id")
    user_count: int
    computed: dict[str, Any]
    segments: list[str]


class UserPage(BaseModel):
    data: list[UserOut]
    next_cursor: str | None


class AccountPage(BaseModel):
    data: list[AccountOut]
    next_cursor: str | None


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None


def user_json(user: User, tags: list[str]) -> dict[str, Any]:
    return {
        "id": user.id,
        "external_id": user.external_id,
        "email": user.email,
        "attributes": user.attributes,
        "tags": tags,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def account_json(account: Account, tags: list[str]) -> dict[str, Any]:
    return {
        "id": account.id,
        "external_id": account.external_id,
        "domain": account.domain,
        "name": account.name,
        "attributes": account.attributes,
        "tags": tags,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "name": event.name,
        "url": event.url,
        "title": event.title,
        "properties": event.properties,
        "account_id": event.account_id,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "message_id": event.message_id,
    }


def device_json(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "platform": device.platform,
        "vendor_device_id": device.vendor_device_id,
        "push_token": device.push_token,
        "last_seen_at": device.last_seen_at,
        "created_at": device.created_at,
    }


def _text(field: str, value: str | None, normalize=check_text) -> str | None:
    if value is None:
        return None
    try:
        return normalize(value)
    except ValueError as exc:
        raise invalid(field, str(exc)) from None


def _filters(session, subject_type: SubjectType, query: ListQuery) -> SubjectFilter:
    attributes = []
    for spec in query.attribute:
        name, sep, value = spec.partition(":")
        if not sep:
            raise invalid("query.attribute", f"{spec[:50]!r} is not name:value")
        attributes.append((_text("query.attribute", name, check_key), _text("query.attribute", value)))
    for parameter, refs in (("segment", query.segment), ("not_segment", query.not_segment)):
        for ref in refs:
            _text(f"query.{parameter}", ref)
    try:
        segments = directory.segment_ids(session, workspace_id(), subject_type, query.segment)
    except UnknownSegmentError as exc:
        raise invalid("query.segment", f"no {subject_type.value} segment named {exc.ref[:100]!r}") from None
    try:
        not_segments = directory.segment_ids(session, workspace_id(), subject_type, query.not_segment)
    except UnknownSegmentError as exc:
        raise invalid("query.not_segment", f"no {subject_type.value} segment named {exc.ref[:100]!r}") from None
    return SubjectFilter(
        external_id=_text("query.external_id", query.external_id),
        attributes=attributes,
        tags=[_text("query.tag", t) for t in query.tag],
        segments=segments,
        not_segments=not_segments,
    )


def _after(cursor: str | None) -> int | None:
    values = decode_cursor(cursor)
    if not values:
        return None
    after = values.get("after")
    if not isinstance(after, int) or isinstance(after, bool):
        raise invalid("query.cursor", "not a cursor returned by this API")
    return after


@bp.get("/users", responses={200: UserPage})
def list_users(path: WorkspacePath, query: UserListQuery):
    """Users, by id, filtered by attributes, tags, segment membership, email or external id.

    Every filter given must hold. ``attribute=name:value`` matches the attribute's value as text (``plan:pro``,
    ``seats:3``, ``vip:true``); ``tag``, ``segment`` (name or id; member of all) and ``not_segment`` (member of
    none) may be repeated. Pages follow ``next_cursor``.
    """
    with unit_of_work() as session:
        filters = _filters(session, SubjectType.USER, query)
        filters.email = _text("query.email", query.email, _lenient_email)
        users, more = directory.list_users(session, workspace_id(), filters, query.limit, _after(query.cursor))
        tags = directory.user_tags(session, [u.id for u in users])
        return {
            "data": [user_json(u, tags[u.id]) for u in users],
            "next_cursor": encode_cursor({"after": users[-1].id}) if more else None,
        }


@bp.get("/users/<ref>", responses={200: UserDetail})
def get_user(path: SubjectPath, query: UserRefQuery):
    """One user with tags, accounts, devices, recent events and computed properties (incl. its segments)."""
    with unit_of_work() as session:
        user = _user(session, path.ref, query.by)
        events, _ = directory.user_events(session, user.id, directory.RECENT_EVENTS)
        computed = directory.computed_values(session, workspace_id(), SubjectType.USER, user.id)
        body = user_json(user, directory.user_tags(session, [user.id])[user.id])
        body.update(
            accounts=[
                {"id": a.id, "external_id": a.external_id, "domain": a.domain, "name": a.name}
                for a in directory.user_accounts(session, user.id)
            ],
            devices=[device_json(d) for d in directory.user_devices(session, user.id)],
            events=[event_json(e) for e in events],
            computed=computed,
            segments=_segments(computed),
        )
        return body


@bp.get("/users/<ref>/events", responses={200: EventPage})
def list_user_events(path: SubjectPath, query: EventsQuery):
    """A user's events, newest first."""
    with unit_of_work() as session:
        user = _user(session, path.ref, query.by)
        before = None
        values = decode_cursor(query.cursor)
        if values:
            try:
                before = (datetime.fromisoformat(values["at"]), int(values["id"]))
            except (KeyError, TypeError, ValueError, OverflowError):
                raise invalid("query.cursor", "not a cursor returned by this API") from None
        events, more = directory.user_events(
            session, user.id, query.limit, before, _text("query.name", query.name), query.kind
        )
        return {
            "data": [event_json(e) for e in events],
            "next_cursor": encode_cursor({"at": events[-1].occurred_at.isoformat(), "id": events[-1].id})
            if more
            else None,
        }


@bp.get("/accounts", responses={200: AccountPage})
def list_accounts(path: WorkspacePath, query: AccountListQuery):
    """Accounts, by id, filtered by attributes, tags, segment membership, domain or external id.

    The filters work as for users (``attribute=name:value``, ``tag``, ``segment``, ``not_segment``).
    """
    with unit_of_work() as session:
        filters = _filters(session, SubjectType.ACCOUNT, query)
        filters.domain = _text("query.domain", query.domain, _lenient_domain)
        accounts, more = directory.list_accounts(session, workspace_id(), filters, query.limit, _after(query.cursor))
        tags = directory.account_tags(session, [a.id for a in accounts])
        return {
            "data": [account_json(a, tags[a.id]) for a in accounts],
            "next_cursor": encode_cursor({"after": accounts[-1].id}) if more else None,
        }


@bp.get("/accounts/<ref>", responses={200: AccountDetail})
def get_account(path: SubjectPath, query: AccountRefQuery):
    """One account with tags, users and computed properties (incl. its segments)."""
    with unit_of_work() as session:
        account = directory.find_account(session, workspace_id(), query.by, _text("path.ref", path.ref))
        if account is None:
            raise not_found("account")
        users, count = directory.account_users(session, account.id)
        computed = directory.computed_values(session, workspace_id(), SubjectType.ACCOUNT, account.id)
        body = account_json(account, directory.account_tags(session, [account.id])[account.id])
        body.update(
            users=[{"id": u.id, "external_id": u.external_id, "email": u.email} for u in users],
            user_count=count,
            computed=computed,
            segments=_segments(computed),
        )
        return body


def _user(session, ref: str, by: str) -> User:
    user = directory.find_user(session, workspace_id(), by, _text("path.ref", ref))
    if user is None:
        raise not_found("user")
    return user


def _segments(computed: dict[str, Any]) -> list[str]:
    value = computed.get(SEGMENTS)
    return list(value) if isinstance(value, list) else []


def _lenient_email(value: str) -> str:
    return check_text(value).strip().lower()


def _lenient_domain(value: str) -> str:
    return check_text(value).strip().lower()
