"""List syncs on a sync's page: turn HubSpot static lists on or off for the sync's segments, and see each
segment's list (name, HubSpot list id, members acknowledged) with the sync's last run.

The same services as ``connector/api/lists.py``: ``enable_lists`` and ``list_state`` of ``connector.syncs.lists``.
"""

from __future__ import annotations

from flask import request

from connector.syncs import definitions, history
from connector.syncs.lists import enable_lists, list_state
from connector.web.context import db, go, render, workspace_blueprint, workspace_id, ws_url
from connector.web.refusals import Refusal, refusals

bp = workspace_blueprint("ui_lists", "/syncs")


def _page(sync_id: int, refusal: Refusal | None = None, saved: bool = False):
    with refusals(), db() as session:
        sync = definitions.get_sync(session, workspace_id(), sync_id)
        state = list_state(session, workspace_id(), sync.id)
        runs = history.list_runs(session, sync.id, 1, None)
        session.expunge_all()
    return render(
        "syncs/lists.html",
        refusal.status if refusal else 200,
        sync=sync,
        state=state,
        last_run=runs[0] if runs else None,
        refusal=refusal,
        saved=saved,
    )


@bp.get("/<int:sync_id>/lists")
def show(sync_id: int):
    return _page(sync_id, saved=request.args.get("saved") == "1")


@bp.post("/<int:sync_id>/lists")
def change(sync_id: int):
    """Turn the sync's lists on (``enabled=on``) or off; a sync that cannot keep lists is told why, by the field."""
    try:
        with refusals(), db() as session:
            enable_lists(session, workspace_id(), sync_id, request.form.get("enabled") == "on")
    except Refusal as exc:
        if exc.status == 404:
            raise
        return _page(sync_id, exc)
    return go(ws_url("ui_lists.show", sync_id=sync_id, saved=1))
