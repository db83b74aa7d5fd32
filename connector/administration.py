"""Company administration: workspaces and API tokens, as a company admin (or, for their own tokens, a member).

Services take the acting ``Member`` and refuse in the shared vocabulary (``connector.errors``): a member who is not
a company admin may list, create and revoke only their own tokens (``ForbiddenError`` otherwise); another
company's tokens and members are "not found". A token's secret is returned once, when it is issued; only its hash
and a short prefix are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from connector.models import ApiToken, Company, Member, Workspace, utcnow
from connector.security import hash_token
from connector.tenancy import SLUG_RE, create_token, create_workspace, slugify


@dataclass(frozen=True)
class TokenView:
    """A token as it may be shown: never its hash."""

    token: ApiToken
    member_email: str

    def as_dict(self) -> dict:
        t = self.token
        return {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "member_id": t.member_id,
            "member_email": self.member_email,
            "created_at": t.created_at,
            "last_used_at": t.last_used_at,
            "revoked_at": t.revoked_at,
        }


def _text_errors(**values: str | None) -> list[dict[str, str]]:
    """Text the database cannot store (NUL, lone surrogates) is refused before it gets there."""
    errors = []
    for field, value in values.items():
        if value is not None and ("\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)):
            errors.append({"field": field, "reason": "must be valid text (no NUL characters or lone surrogates)"})
    return errors


def require_company_admin(member: Member, action: str) -> None:
    if not member.is_company_admin:
        raise ForbiddenError(f"Only a company admin may {action}.")


def add_workspace(
    session: Session,
    admin: Member,
    name: str,
    slug: str | None = None,
    time_zone: str = "UTC",
    parent_id: int | None = None,
) -> Workspace:
    """A new workspace of the admin's company; the slug is taken from the name when not given."""
    require_company_admin(admin, "create workspaces")
    name = name.strip()
    errors = _text_errors(name=name, slug=slug, time_zone=time_zone)
    if errors:
        raise InvalidError(errors)
    if not name:
        errors.append({"field": "name", "reason": "must not be empty"})
    slug = slug if slug is not None else slugify(name)
    if not SLUG_RE.match(slug):
        errors.append({"field": "slug", "reason": "lowercase letters, digits and '-', starting with a letter or digit"})
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append({"field": "time_zone", "reason": f"{time_zone!r} is not an IANA time zone"})
    parent = None
    if parent_id is not None:
        parent = session.get(Workspace, parent_id)
        if parent is None or parent.company_id != admin.company_id:
            errors.append({"field": "parent_id", "reason": f"no workspace {parent_id} in this company"})
    if errors:
        raise InvalidError(errors)
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise ConflictError(f"the slug {slug!r} is taken", [{"field": "slug", "reason": "is taken"}])
    company = session.get(Company, admin.company_id)
    return create_workspace(session, company, name, slug=slug, time_zone=time_zone, parent=parent)


def _company_member(session: Session, admin: Member, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None or member.company_id != admin.company_id:
        raise NotFoundError("member")
    return member


def list_tokens(session: Session, member: Member) -> list[TokenView]:
    """Every token of the company (company admins) or the member's own, newest first."""
    stmt = select(ApiToken, Member.email).join(Member, Member.id == ApiToken.member_id)
    if member.is_company_admin:
        stmt = stmt.where(Member.company_id == member.company_id)
    else:
        stmt = stmt.where(ApiToken.member_id == member.id)
    return [TokenView(t, email) for t, email in session.execute(stmt.order_by(ApiToken.id.desc()))]


def issue_token(session: Session, member: Member, name: str, member_id: int | None = None) -> tuple[TokenView, str]:
    """A new token for ``member_id`` (a company admin for anyone of the company; others for themselves); returns
    it with its secret, shown this once."""
    errors = _text_errors(name=name)
    if errors:
        raise InvalidError(errors)
    owner = member
    if member_id is not None and member_id != member.id:
        require_company_admin(member, "create tokens for other members")
        owner = _company_member(session, member, member_id)
    secret = create_token(session, owner, name.strip())
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    return TokenView(token, owner.email), secret


def revoke_token(session: Session, member: Member, token_id: int) -> TokenView:
    """Revoke a token at once (its next request is 401). Revoking a revoked token changes nothing."""
    row = session.execute(
        select(ApiToken, Member).join(Member, Member.id == ApiToken.member_id).where(ApiToken.id == token_id)
    ).first()
    if row is None or row[1].company_id != member.company_id:
        raise NotFoundError("token")
    token, owner = row
    if owner.id != member.id:
        require_company_admin(member, "revoke other members' tokens")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return TokenView(token, owner.email)


def revoke_token_by_reference(session: Session, reference: str) -> TokenView:
    """For operators (the CLI): revoke the token with this id or prefix, whoever holds it."""
    condition = ApiToken.prefix == reference
    if reference.isdigit() and len(reference) < 19:
        condition = or_(condition, ApiToken.id == int(reference))
    rows = session.execute(
        select(ApiToken, Member).join(Member, Member.id == ApiToken.member_id).where(condition).limit(2)
    ).all()
    if not rows:
        raise NotFoundError("token")
    if len(rows) > 1:
        raise ConflictError(f"{reference!r} names more than one token; give its id")
    token, owner = rows[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return TokenView(token, owner.email)


def all_tokens(session: Session) -> list[TokenView]:
    """For operators (the CLI): every token of every company."""
    stmt = select(ApiToken, Member.email).join(Member, Member.id == ApiToken.member_id).order_by(ApiToken.id)
    return [TokenView(t, email) for t, email in session.execute(stmt)]
