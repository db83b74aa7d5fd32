"""``connector sources …`` (collected by ``connector.cli``): list sources, check them, run their models."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from connector.errors import ConflictError, NotFoundError
from connector.models import Source, SourceModel, Workspace
from connector.security import SecretBox
from connector.sources.runs import RunOutcome, run_model
from connector.sources.service import check_source, find_source


@click.group("sources")
def sources() -> None:
    """SQL sources: list, check, run."""


def _find(session, ref: str, workspace_slug: str) -> Source:
    workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == workspace_slug))
    if workspace_id is None:
        raise click.BadParameter(f"no workspace {workspace_slug!r}", param_hint="--workspace")
    try:
        return find_source(session, workspace_id, ref)
    except NotFoundError:
        raise click.BadParameter(f"no source {ref!r} in workspace {workspace_slug!r}", param_hint="SOURCE") from None


@sources.command("list")
@click.option("--workspace", "workspace_slug", default=None, help="Only the sources of this workspace (slug).")
@click.pass_obj
def list_sources(obj, workspace_slug: str | None) -> None:
    """List sources (URLs masked) and their models."""
    with obj.db.session() as session:
        stmt = select(Source, Workspace.slug).join(Workspace, Workspace.id == Source.workspace_id)
        if workspace_slug:
            stmt = stmt.where(Workspace.slug == workspace_slug)
        rows = session.execute(stmt.order_by(Workspace.slug, Source.id)).all()
        if not rows:
            click.echo("no sources")
        for source, slug in rows:
            click.echo(f"{source.id:>5}  {slug}/{source.name}: {source.display_url}")
            models = session.scalars(select(SourceModel).where(SourceModel.source_id == source.id)).all()
            for model in models:
                how = f"cursor {model.cursor_column}" if model.cursor_column else "hash diff"
                click.echo(f"         model {model.id} {model.name}: {model.kind} by {how}")


@sources.command("check")
@click.argument("source_ref", metavar="SOURCE")
@click.option("--workspace", "workspace_slug", required=True, help="Workspace slug.")
@click.pass_obj
def check(obj, source_ref: str, workspace_slug: str) -> None:
    """Connect to SOURCE (an id or a name)."""
    with obj.db.session() as session:
        source = _find(session, source_ref, workspace_slug)
    result = check_source(source, SecretBox(obj.settings.secret_key))
    click.echo(f"source {source.id} ({source.name}): {'ok' if result['ok'] else result['error']}")
    if not result["ok"]:
        sys.exit(1)


@sources.command("run")
@click.argument("source_ref", metavar="SOURCE")
@click.option("--workspace", "workspace_slug", required=True, help="Workspace slug.")
@click.option("--model", "model_name", default=None, help="Only this model (a name); default: every enabled one.")
@click.pass_obj
def run(obj, source_ref: str, workspace_slug: str, model_name: str | None) -> None:
    """Run the models of SOURCE now, in the foreground."""
    with obj.db.session() as session:
        source = _find(session, source_ref, workspace_slug)
        query = select(SourceModel.id, SourceModel.name).where(SourceModel.source_id == source.id)
        query = query.where(SourceModel.name == model_name) if model_name else query.where(SourceModel.enabled)
        models = session.execute(query.order_by(SourceModel.id)).all()
    if not models:
        raise click.BadParameter(f"no model {model_name!r}" if model_name else "the source has no enabled model")
    box = SecretBox(obj.settings.secret_key)
    failed = False
    for model_id, name in models:
        try:
            outcome = run_model(obj.db, model_id, box, "cli")
        except ConflictError as exc:
            click.echo(f"model {name}: {exc}")
            failed = True
            continue
        click.echo(_describe(name, outcome))
        failed = failed or outcome.status == "failed"
    if failed:
        sys.exit(1)


def _describe(name: str, outcome: RunOutcome) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items())
    line = f"model {name}: run {outcome.run_id} {outcome.status} — {counts}"
    return line + (f"\n  error: {outcome.error}" if outcome.error else "")


commands: list[click.Command] = [sources]
