"""Per-request context of the web UI: the signed-in member, the workspace in the URL, CSRF and roles.

Pages live under ``/w/<workspace>/...``. A visitor who is not signed in is sent to the login page; a member who
may not see the workspace gets 404 (as in the API); every POST carries a CSRF token (a form field or the
``X-CSRFToken`` header that htmx sends), and a viewer's POST is refused with 403 whatever the form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from wtforms import ValidationError

from connector.api.context import unit_of_work
from connector.models import Member, Role
from connector.operations.alerts import list_alerts
from connector.tenancy import access_to, visible_workspaces
from connector.web.refusals import Refusal

SESSION_KEY = "member"
ERROR_MESSAGES = {
    401: "Sign in to continue.",
    403: "Your role in this workspace does not allow this.",
    404: "There is nothing here (or not in this workspace).",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_ALERTS_COUNTED = 100  # the navigation's badge of open alerts counts up to this many


def password_fingerprint(member: Member) -> str:
    """Changes when the password does, so a new password signs out every other session."""
    return hashlib.sha256((member.password_hash or "").encode()).hexdigest()[:16]


def sign_in(member: Member) -> None:
    session.clear()
    session[SESSION_KEY] = {"id": member.id, "pw": password_fingerprint(member)}
    session.permanent = True


def signed_in_member(db_session: Session) -> Member | None:
    state = session.get(SESSION_KEY)
    if not isinstance(state, dict) or not isinstance(state.get("id"), int):
        return None
    member = db_session.get(Member, state["id"])
    if member is None or member.password_hash is None or state.get("pw") != password_fingerprint(member):
        return None
    return member


def check_csrf() -> None:
    if request.method in WRITE_METHODS:
        token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken", "")
        try:
            validate_csrf(token)
        except ValidationError as exc:
            raise CSRFError(str(exc)) from None


def load_workspace():
    """``before_request`` of every workspace page."""
    check_csrf()
    workspace_ref = g.get("workspace_ref", "")
    with unit_of_work() as db_session:
        member = signed_in_member(db_session)
        if member is None:
            if request.method in WRITE_METHODS:
                abort(401)
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        found = access_to(db_session, member, str(workspace_ref))
        if found is None:
            abort(404)
        g.member, (g.workspace, g.access) = member, found
        g.workspaces = visible_workspaces(db_session, member)
        g.hq_ids = {w.parent_id for w, _ in g.workspaces if w.parent_id is not None}
        g.open_alerts = len(list_alerts(db_session, g.access.workspace_id, "open", OPEN_ALERTS_COUNTED))
        db_session.expunge_all()
    if request.method in WRITE_METHODS and not g.access.allows(Role.EDITOR):
        abort(403)
    return None


def _take_workspace(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # The views take their own arguments only; the workspace is the context's.
    g.workspace_ref = (values or {}).pop("workspace", "")


def html_error(exc: HTTPException):
    """Error handler of the UI's blueprints: an error page instead of a problem document."""
    status = exc.code or 500
    if isinstance(exc, CSRFError):
        message = "The form expired or was not sent by this site; go back, reload and try again."
    else:
        message = ERROR_MESSAGES.get(status, exc.description or exc.name)
    return render_template("error.html", status=status, message=message), status


def refusal_page(refusal: Refusal):
    """A refusal no form handled (a missing segment, say): an error page with its status."""
    return render_template("error.html", status=refusal.status, message=refusal.message), refusal.status


def unexpected_page(exc: Exception):
    current_app.logger.exception("unhandled error in the web UI")
    return render_template("error.html", status=500, message="Something went wrong on our side."), 500


def workspace_blueprint(name: str, prefix: str = "") -> Blueprint:
    bp = Blueprint(name, __name__, url_prefix="/w/<workspace>" + prefix)
    bp.url_value_preprocessor(_take_workspace)
    bp.before_request(load_workspace)
    bp.register_error_handler(HTTPException, html_error)
    bp.register_error_handler(Refusal, refusal_page)
    bp.register_error_handler(Exception, unexpected_page)
    return bp


def workspace_id() -> int:
    return g.access.workspace_id


def can_edit() -> bool:
    return g.access.allows(Role.EDITOR)


def can_administer() -> bool:
    return g.access.allows(Role.WORKSPACE_ADMIN)


def require_admin() -> None:
    """What the API keeps to workspace admins (sharing, mapped values, HQ syncs)."""
    if not can_administer():
        abort(403)


def require_editor() -> None:
    """Forms that only change things are not shown to viewers (their POST is refused anyway)."""
    if not can_edit():
        abort(403)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def render(template: str, status: int = 200, **context: Any):
    return render_template(template, **context), status


def go(url: str):
    """Redirect; an htmx request is told to load the page itself (a redirect would be followed into the swap)."""
    if is_htmx():
        return Response(status=204, headers={"HX-Redirect": url})
    return redirect(url)


def ws_url(endpoint: str, **values: Any) -> str:
    return url_for(endpoint, workspace=g.workspace.slug, **values)


@contextmanager
def db() -> Iterator[Session]:
    """A session in one transaction for this request (the API's unit of work)."""
    with unit_of_work() as db_session:
        yield db_session
