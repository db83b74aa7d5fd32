"""Signing in and out, the start page, the static files, and how the UI answers errors (HTML, not JSON)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from connector import logins
from connector.tenancy import visible_workspaces
from connector.web.context import check_csrf, db, html_error, sign_in, signed_in_member

HERE = Path(__file__).parent
bp = Blueprint(
    "web",
    __name__,
    template_folder=str(HERE / "templates"),
    static_folder=str(HERE / "static"),
    static_url_path="/ui/static",
)


@bp.get("/")
def index():
    with db() as db_session:
        member = signed_in_member(db_session)
        if member is None:
            return redirect(url_for("web.login"))
        workspaces = visible_workspaces(db_session, member)
    if not workspaces:
        return render_template("error.html", status=403, message="You are not a member of any workspace yet."), 403
    return redirect(url_for("ui_segments.index", workspace=workspaces[0][0].slug))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    email = ""
    if request.method == "POST":
        check_csrf()
        email = request.form.get("email", "").strip()[:320]
        password = request.form.get("password", "")[: logins.PASSWORD_MAX]
        with db() as db_session:
            member = logins.authenticate(db_session, email, password) if email and password else None
            if member is not None:
                sign_in(member)
                return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match a member."
    return render_template("login.html", error=error, email=email), (401 if error else 200)


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("web.login"))


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never another host) is followed after signing in."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("web.index")


bp.register_error_handler(HTTPException, html_error)


@bp.get("/switch")
def switch():
    """The workspace switcher (a GET form): the same section of another workspace the member may see."""
    target = request.args.get("to", "")
    return redirect(url_for("ui_segments.index", workspace=target) if target else url_for("web.index"))
