"""Connector: people and accounts, live segments, and syncs of both to the tools where teams work."""

from __future__ import annotations

from typing import Any

from connector.config import Settings

__version__ = "0.1.0"


def create_app(settings: Settings | None = None, *, database=None, **overrides: Any):
    """The Flask application factory.

    ``settings`` defaults to the environment (``Settings.from_env``); keyword overrides replace single settings,
    e.g. ``create_app(database_url="sqlite:///x.db")``. ``database`` passes an existing ``Database`` (tests,
    embedding) instead of creating one from ``settings.database_url``.
    """
    from flask_openapi3 import Info, OpenAPI

    from connector.api import register_api
    from connector.api.bodies import register_json_body_check
    from connector.api.jsonutil import ApiJSONProvider
    from connector.api.problems import register_error_handlers, validation_error_callback
    from connector.automation import install as install_automation
    from connector.db import Database
    from connector.web import register_web

    settings = settings or Settings.from_env(**overrides)
    app = OpenAPI(
        __name__,
        info=Info(title="Connector API", version=__version__),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_prefix="/api/v1",
        doc_url="/openapi.json",
        doc_ui=False,
        validation_error_status=422,
        validation_error_callback=validation_error_callback,
    )
    app.json = ApiJSONProvider(app)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    app.extensions["connector.db"] = database or Database(settings.database_url)
    if settings.operations.distributed:
        from connector.workers.dispatch import CeleryDispatcher

        # "Run now" enqueues for the workers instead of running in a thread of this process.
        app.extensions["connector.dispatcher"] = CeleryDispatcher(app.extensions["connector.db"], settings)
    register_error_handlers(app)
    install_automation()
    register_api(app)
    register_web(app, settings.secret_key)
    register_json_body_check(app)

    # The document itself (doc_ui=False turns off flask-openapi3's UI pages and their route).
    app.add_url_rule("/api/v1/openapi.json", "openapi_json", lambda: app.api_doc)

    return app
