"""``connector serve``: the single-machine service.

Migrates the database, starts the local HubSpot sandbox (for the demo), seeds demo data into an empty database,
starts the scheduler in-process, and serves the API on a threaded WSGI server. Production runs the API under
gunicorn (``gunicorn 'connector:create_app()'``) and the scheduler as its own process (``connector scheduler``).
"""

from __future__ import annotations

import logging
import signal
import threading

from sqlalchemy import func, select
from werkzeug.serving import make_server

from connector import create_app
from connector.config import Settings
from connector.db import Database
from connector.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG, seed_demo
from connector.destinations import preload_destination_types
from connector.migrate import upgrade
from connector.models import Workspace
from connector.operations.checker import AlertChecker
from connector.operations.logs import configure_logging
from connector.process import settle

log = logging.getLogger("connector.serve")


def serve(
    settings: Settings,
    db: Database,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: bool = True,
    scheduler: bool = True,
    sandbox_port: int = 8010,
) -> None:
    configure_logging(settings)
    upgrade(settings.database_url)
    log.info("database ready at %s", _safe_url(db))

    sandbox = None
    if sandbox_port:
        from connector.testing.hubspot_sandbox import HubSpotSandbox

        sandbox = HubSpotSandbox(host="127.0.0.1", port=sandbox_port).start()
        log.info("HubSpot sandbox listening on %s", sandbox.url)

    with db.session() as session:
        empty = session.scalar(select(func.count()).select_from(Workspace)) == 0
    if demo and empty:
        seed_demo(db, settings, sandbox_url=sandbox.url if sandbox else None, echo=print)
    with db.session() as session:
        has_demo = session.scalar(select(Workspace.id).where(Workspace.slug == DEMO_SLUG)) is not None

    handle = None
    if scheduler:
        from connector.scheduling import start_scheduler

        if settings.operations.distributed:
            from connector.scheduling.dispatch import use_dispatcher
            from connector.workers.dispatch import CeleryDispatcher

            use_dispatcher(CeleryDispatcher(db, settings))
        handle = start_scheduler(db, settings)
    checker = AlertChecker(db, settings)
    checker.start()

    app = create_app(settings, database=db)
    server = make_server(host, port, app, threaded=True)
    stopping = threading.Event()

    def _stop(*_args) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("API on http://%s:%d/api/v1 (OpenAPI: /api/v1/openapi.json)", host, port)
    print(f"Web UI: sign in at http://{host}:{port}/login", flush=True)
    if has_demo:
        print(f"        demo login: {DEMO_EMAIL} / {DEMO_PASSWORD} (unless changed with connector member set-password)")
    preload_destination_types()
    settle()
    try:
        server.serve_forever()
    finally:
        checker.stop()
        if handle is not None:
            handle.shutdown()
        if sandbox is not None:
            sandbox.stop()
        db.dispose()


def _safe_url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=True)
