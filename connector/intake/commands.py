"""``connector import users|accounts FILE.csv --workspace SLUG``: CSV import from the command line."""

from __future__ import annotations

import io
from pathlib import Path

import click
from sqlalchemy import select
from tqdm import tqdm

from connector.ingest.imports import ImportFormatError, import_accounts, import_users, parse_column_types
from connector.intake import ingest_file
from connector.models import Workspace


class _Progress(io.RawIOBase):
    """A binary file that advances a progress bar by the bytes read from it."""

    def __init__(self, raw, bar) -> None:
        self.raw = raw
        self.bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.raw.readinto(buffer)
        self.bar.update(count or 0)
        return count


def _run_import(obj, kind: str, file: Path, workspace_slug: str, types_spec: str | None, progress: bool) -> None:
    importer = import_users if kind == "users" else import_accounts
    try:
        types = parse_column_types(types_spec)
    except ImportFormatError as exc:
        raise click.BadParameter(exc.reason, param_hint="--types") from None
    with obj.db.session() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == workspace_slug))
    if workspace_id is None:
        raise click.BadParameter(f"no workspace with slug {workspace_slug!r}", param_hint="--workspace")
    with (
        file.open("rb", buffering=0) as raw,
        tqdm(total=file.stat().st_size, unit="B", unit_scale=True, desc=file.name, disable=not progress) as bar,
    ):
        stream = io.BufferedReader(_Progress(raw, bar))
        try:
            report = ingest_file(obj.db, workspace_id, importer, stream, types=types)
        except ImportFormatError as exc:
            raise click.ClickException(f"{file}: {exc.reason}") from None
    click.echo(
        f"{report.rows} rows: {report.created} {kind} created, {report.updated} updated, {report.failed} rows failed"
    )
    for error in report.errors[:20]:
        column = f" ({error['column']})" if error["column"] else ""
        click.echo(f"  line {error['row']}{column}: {error['reason']}", err=True)
    if report.failed > 20:
        click.echo(f"  … and {report.failed - 20} more failed rows", err=True)


@click.group("import")
def import_group() -> None:
    """Import users or accounts from CSV files (see connector.ingest.imports for the columns)."""


def _import_command(kind: str) -> click.Command:
    @click.command(kind, help=f"Import {kind} from FILE (CSV with a header row) into a workspace.")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--workspace", "workspace_slug", required=True, help="Slug of the workspace to import into.")
    @click.option("--types", "types_spec", default=None, help="Attribute column types, e.g. ltv:number,signup:date")
    @click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar by bytes.")
    @click.pass_obj
    def command(obj, file: Path, workspace_slug: str, types_spec: str | None, progress: bool) -> None:
        _run_import(obj, kind, file, workspace_slug, types_spec, progress)

    return command


import_group.add_command(_import_command("users"))
import_group.add_command(_import_command("accounts"))

commands: list[click.Command] = [import_group]
