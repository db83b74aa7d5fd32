"""Web sign-in: members' passwords (Argon2id, via argon2-cffi) and finding the member an email and password name.

API tokens (``connector.tenancy``) are unaffected: a password only opens the web UI.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.errors import InvalidError, NotFoundError
from connector.models import Member, Workspace

PASSWORD_MIN = 10
PASSWORD_MAX = 1_000
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when no member has the email, so an unknown email costs as long as a wrong password (made on
    first use: hashing costs a tenth of a second that no process should pay at start)."""
    return _hasher.hash("not-a-password-of-anyone")


def set_password(session: Session, member: Member, password: str) -> None:
    """Give ``member`` a new web password; ``InvalidError`` (field ``password``) when it is too short or long."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidError.one("password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    member.password_hash = _hasher.hash(password)
    session.flush()


def find_member(session: Session, email: str, workspace_slug: str | None = None) -> Member:
    """The member with this email (in the company of ``workspace_slug`` when given); ``NotFoundError`` if none,
    ``InvalidError`` when the email names members of several companies and no workspace says which."""
    stmt = select(Member).where(func.lower(Member.email) == email.strip().lower())
    if workspace_slug is not None:
        stmt = stmt.join(Workspace, Workspace.company_id == Member.company_id).where(Workspace.slug == workspace_slug)
    members = list(session.scalars(stmt.order_by(Member.id)))
    if not members:
        raise NotFoundError("member")
    if len(members) > 1:
        raise InvalidError.one("workspace", "this email is a member of several companies: name a workspace")
    return members[0]


def authenticate(session: Session, email: str, password: str) -> Member | None:
    """The member whose email and password these are, or None. Rehashes a hash made with older parameters."""
    candidates = list(
        session.scalars(
            select(Member)
            .where(func.lower(Member.email) == email.strip().lower(), Member.password_hash.is_not(None))
            .order_by(Member.id)
        )
    )
    if not candidates:
        _verify(_dummy_hash(), password)
        return None
    for member in candidates:
        if _verify(member.password_hash, password):
            if _hasher.check_needs_rehash(member.password_hash):
                member.password_hash = _hasher.hash(password)
            return member
    return None


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def member_emails(session: Session, company_id: int, member_ids: set[int | None]) -> dict[int, str]:
    """Emails of the company's members among ``member_ids`` (who created or changed something)."""
    ids = [i for i in member_ids if i is not None]
    if not ids:
        return {}
    rows = session.execute(select(Member.id, Member.email).where(Member.id.in_(ids), Member.company_id == company_id))
    return {member_id: email for member_id, email in rows}
