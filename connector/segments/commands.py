"""``connector segments …`` commands (collected by ``connector.cli``)."""

from __future__ import annotations

import click


@click.group()
def segments() -> None:
    """Segments."""


@segments.command("refresh")
@click.option("--workspace", "workspace_slug", default=None, help="Slug of one workspace (default: every one).")
@click.option("--segment", "segment_ref", default=None, help="Name or id of one segment (needs --workspace).")
@click.option(
    "--all/--time-relative",
    "everything",
    default=True,
    show_default=True,
    help="Every dynamic segment, or only those whose conditions move with time (sliding windows).",
)
@click.pass_obj
def refresh(obj, workspace_slug: str | None, segment_ref: str | None, everything: bool) -> None:
    """Fully re-evaluate segments, in dependency order, one transaction per workspace.

    Segments referencing a refreshed one follow for the subjects that changed; every changed subject's
    ``Segments`` property is recomputed.
    """
    from sqlalchemy import or_, select

    from connector.models import Segment, SegmentKind, Workspace
    from connector.segments.run import refresh_segments

    if segment_ref is not None and workspace_slug is None:
        raise click.UsageError("--segment needs --workspace")
    with obj.db.session() as session:
        workspaces = select(Workspace.id, Workspace.slug).order_by(Workspace.id)
        if workspace_slug is not None:
            workspaces = workspaces.where(Workspace.slug == workspace_slug)
        targets = session.execute(workspaces).all()
        if workspace_slug is not None and not targets:
            raise click.BadParameter(f"no workspace with slug {workspace_slug!r}", param_hint="--workspace")
        plan: list[tuple[int, str, list[int]]] = []
        for ws_id, slug in targets:
            query = select(Segment.id).where(Segment.workspace_id == ws_id, Segment.kind == SegmentKind.DYNAMIC)
            if not everything:
                query = query.where(Segment.is_time_relative.is_(True))
            if segment_ref is not None:
                by_name = Segment.name == segment_ref
                query = query.where(
                    or_(by_name, Segment.id == int(segment_ref))
                    if segment_ref.isdecimal() and len(segment_ref) < 19
                    else by_name
                )
            ids = list(session.scalars(query.order_by(Segment.id)))
            if segment_ref is not None and not ids:
                raise click.BadParameter(
                    f"no dynamic segment named (or with id) {segment_ref!r} in {slug}", param_hint="--segment"
                )
            plan.append((ws_id, slug, ids))

    total = sum(len(ids) for _, _, ids in plan)
    summaries = []
    with click.progressbar(length=total, label="Refreshing segments", show_pos=True) as bar:
        for ws_id, slug, ids in plan:
            if not ids:
                continue
            with obj.db.session() as session:
                evaluation = refresh_segments(session, ws_id, ids, progress=lambda _segment_id: bar.update(1))
            summaries.append((slug, evaluation))
    for slug, evaluation in summaries:
        counts = evaluation.summary()
        click.echo(
            f"{slug}: {counts['segments']} segments refreshed, {counts['entered']} entered, {counts['exited']} exited"
        )
    if not summaries:
        click.echo("no segments to refresh")


commands: list[click.Command] = [segments]
