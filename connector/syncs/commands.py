"""``connector syncs …`` and ``connector destinations …`` (collected by ``connector.cli``)."""

from __future__ import annotations

import sys
import time

import click

WORKSPACE_HELP = "Workspace slug (to find a sync by name, or to list one workspace)."


def _workspace_option(help_text: str = WORKSPACE_HELP):
    return click.option("--workspace", "workspace_slug", default=None, help=help_text)


def _find_sync(session, ref: str, workspace_slug: str | None):
    from connector.errors import ConflictError, NotFoundError
    from connector.syncs.definitions import find_sync

    try:
        return find_sync(session, ref, workspace_slug)
    except NotFoundError:
        where = f" in workspace {workspace_slug!r}" if workspace_slug else ""
        raise click.BadParameter(f"no sync {ref!r}{where}", param_hint="SYNC") from None
    except ConflictError as exc:
        raise click.BadParameter(str(exc), param_hint="SYNC") from None


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {value}" for name, value in counts.items() if value or name in ("planned", "unchanged"))


@click.group("syncs")
def syncs() -> None:
    """Syncs to destinations: list, run, history."""


@syncs.command("list")
@_workspace_option("Only the syncs of this workspace (slug).")
@click.pass_obj
def list_syncs(obj, workspace_slug: str | None) -> None:
    """List syncs with their last run."""
    from sqlalchemy import select

    from connector.models import Destination, Sync, Workspace
    from connector.syncs.history import last_runs

    with obj.db.session() as session:
        stmt = (
            select(Sync, Workspace.slug, Destination.name, Destination.type)
            .join(Workspace, Workspace.id == Sync.workspace_id)
            .join(Destination, Destination.id == Sync.destination_id)
            .order_by(Workspace.slug, Sync.id)
        )
        if workspace_slug:
            stmt = stmt.where(Workspace.slug == workspace_slug)
        rows = session.execute(stmt).all()
        last = last_runs(session, [row[0].id for row in rows])
        if not rows:
            click.echo("no syncs")
        for sync, slug, destination_name, destination_type in rows:
            run = last.get(sync.id)
            state = f"{run.status.value} {run.started_at:%Y-%m-%d %H:%M:%S}" if run else "never run"
            enabled = "" if sync.enabled else " (disabled)"
            click.echo(
                f"{sync.id:>5}  {slug}/{sync.name}{enabled}: {sync.subject_type.value}s -> {destination_name} "
                f"({destination_type} {sync.destination_object}), {sync.mode.value}; last run: {state}"
            )


@syncs.command("run")
@click.argument("sync_ref", metavar="SYNC")
@_workspace_option()
@click.option("--dry-run", is_flag=True, help="Plan only: show counts and sample payloads, send nothing.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 32), help="Batches in flight.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.pass_obj
def run(obj, sync_ref: str, workspace_slug: str | None, dry_run: bool, workers: int, quiet: bool) -> None:
    """Run SYNC (an id, or a name) now, in the foreground, with progress."""
    import json

    from connector.models import RunStatus
    from connector.syncs.engine import run_sync

    with obj.db.session() as session:
        sync = _find_sync(session, sync_ref, workspace_slug)
        sync_id, name = sync.id, sync.name
    shown = [0.0]

    def progress(counts) -> None:
        now = time.monotonic()
        if not quiet and now - shown[0] >= 1.0:
            shown[0] = now
            click.echo(f"  … {_counts(counts.as_dict())}", err=True)

    click.echo(f"{'dry run of' if dry_run else 'running'} sync {sync_id} ({name})", err=True)
    outcome = run_sync(
        obj.db,
        sync_id,
        "cli",
        dry_run=dry_run,
        secret_key=obj.settings.secret_key,
        workers=workers,
        progress=progress,
    )
    summary = _counts(outcome.counts.as_dict())
    click.echo(f"run {outcome.run_id}: {outcome.status.value} in {outcome.elapsed_s:.1f}s — {summary}")
    if outcome.first_error:
        click.echo(f"first error: {outcome.first_error}")
    if dry_run:
        for sample in outcome.samples:
            click.echo(json.dumps(sample, ensure_ascii=False, sort_keys=True))
    if outcome.status in (RunStatus.FAILED, RunStatus.SKIPPED):
        sys.exit(1)


@syncs.command("runs")
@click.argument("sync_ref", metavar="SYNC")
@_workspace_option()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--errors", "show_errors", is_flag=True, help="Also list each run's record errors (up to 20).")
@click.pass_obj
def runs(obj, sync_ref: str, workspace_slug: str | None, limit: int, show_errors: bool) -> None:
    """The run history of SYNC, newest first."""
    from connector.syncs.history import COUNTS, list_run_errors, list_runs

    with obj.db.session() as session:
        sync = _find_sync(session, sync_ref, workspace_slug)
        history = list_runs(session, sync.id, limit, None)
        if not history:
            click.echo("no runs")
        for r in history:
            finished = f"{r.finished_at:%H:%M:%S}" if r.finished_at else "…"
            kind = " dry-run" if r.dry_run else ""
            counts = _counts({name: getattr(r, name) or 0 for name in COUNTS})
            click.echo(
                f"{r.id:>6}  {r.started_at:%Y-%m-%d %H:%M:%S}–{finished}  "
                f"{r.status.value:<9} {r.trigger}{kind}  {counts}"
            )
            if r.first_error:
                click.echo(f"        first error: {r.first_error}")
            if show_errors:
                for error in list_run_errors(session, r.id, 20, None):
                    click.echo(f"        {error.kind}: {error.identity or error.subject_id}: {error.reason}")


@click.group("destinations")
def destinations() -> None:
    """Destinations: list, check the connection."""


@destinations.command("list")
@_workspace_option("Only the destinations of this workspace (slug).")
@click.pass_obj
def list_destinations(obj, workspace_slug: str | None) -> None:
    """List destinations (never their secrets)."""
    from sqlalchemy import select

    from connector.models import Destination, Workspace

    with obj.db.session() as session:
        stmt = (
            select(Destination, Workspace.slug)
            .join(Workspace, Workspace.id == Destination.workspace_id)
            .order_by(Workspace.slug, Destination.id)
        )
        if workspace_slug:
            stmt = stmt.where(Workspace.slug == workspace_slug)
        rows = session.execute(stmt).all()
        if not rows:
            click.echo("no destinations")
        for destination, slug in rows:
            click.echo(f"{destination.id:>5}  {slug}/{destination.name} ({destination.type})")


@destinations.command("check")
@click.argument("destination_id", type=click.IntRange(1, 2**63 - 1))
@click.pass_obj
def check(obj, destination_id: int) -> None:
    """Test the connection and credentials of destination DESTINATION_ID."""
    from connector.models import Destination
    from connector.security import SecretBox
    from connector.syncs.connections import check_destination

    with obj.db.session() as session:
        destination = session.get(Destination, destination_id)
        if destination is None:
            raise click.BadParameter(f"no destination {destination_id}", param_hint="DESTINATION_ID")
    result = check_destination(destination, SecretBox(obj.settings.secret_key))
    if result["ok"]:
        click.echo(f"destination {destination_id} ({destination.name}): ok")
    else:
        click.echo(f"destination {destination_id} ({destination.name}): {result['error']}")
        sys.exit(1)


commands: list[click.Command] = [syncs, destinations]
