"""The operator's web UI: server-rendered pages on the same Flask app, calling the same services as the API.

Jinja templates, htmx for partial updates (``static/htmx.min.js``: htmx.org 2.0.11 from the npm registry,
``dist/htmx.min.js``, committed as is), one stylesheet. Members sign in with email and
password (``connector member set-password``); the session cookie is HttpOnly, SameSite=Lax and Secure over https;
every form carries a CSRF token (Flask-WTF). Pages are under ``/w/<workspace>/``; ``/`` leads to the first one.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from connector.web import (
    alerts,
    auth,
    automation,
    destinations,
    filters,
    groups,
    lists,
    people,
    playbooks,
    saved_views,
    segments,
    sources,
    syncs,
    workspaces,
)


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure whenever the request came over https (directly or through a proxy that says so).
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def register_web(app: Flask, secret_key: str) -> None:
    """Mount the UI on ``app``; ``secret_key`` (the service's) signs sessions and CSRF tokens under its own salt."""
    app.secret_key = hashlib.sha256(("connector-web-session:" + secret_key).encode()).hexdigest()
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="connector_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=12 * 3600,
    )
    filters.register(app)
    modules = (auth, segments, people, destinations, syncs, groups, workspaces, automation, saved_views, playbooks)
    for module in (*modules, lists, sources, alerts):
        app.register_blueprint(module.bp)
