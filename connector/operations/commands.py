"""``connector alerts …`` (collected by ``connector.cli``)."""

from __future__ import annotations

import click

from connector.operations.checker import run_alert_check


@click.group("alerts")
def alerts() -> None:
    """Alerts on overdue and failing syncs."""


@alerts.command("check")
@click.pass_obj
def check(obj) -> None:
    """Open and resolve alerts now, and send their notifications (e.g. from cron, when no worker runs)."""
    changes = run_alert_check(obj.db, obj.settings)
    click.echo(f"{len(changes.opened)} alert(s) opened, {len(changes.resolved)} resolved")


commands: list[click.Command] = [alerts]
