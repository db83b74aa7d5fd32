"""The ``connector`` command line."""

from __future__ import annotations

import importlib
import sys

import click

from connector.config import Settings
from connector.errors import InvalidError, ServiceError

# Feature packages contribute their commands through a ``commands`` list in these modules, imported only when one
# of their commands runs (or help lists them): a command pays for its own imports, not for every package's.
COMMAND_MODULES = {
    "import": "connector.intake.commands",
    "segments": "connector.segments.commands",
    "syncs": "connector.syncs.commands",
    "destinations": "connector.syncs.commands",
    "sources": "connector.sources.commands",
    "scheduler": "connector.scheduling.commands",
    "hubspot-sandbox": "connector.testing.commands",
    "member": "connector.web.commands",
    "worker": "connector.workers.commands",
    "alerts": "connector.operations.commands",
}


class Context:
    def __init__(self, database_url: str | None) -> None:
        self.settings = Settings.from_env(**({"database_url": database_url} if database_url else {}))
        self._db = None

    @property
    def db(self):
        from connector.automation import install
        from connector.db import Database

        install()
        if self._db is None:
            self._db = Database(self.settings.database_url)
        return self._db


pass_context = click.make_pass_decorator(Context)


class Refused(click.ClickException):
    """A service's refusal (``connector.errors``), said once for every command: its message, exit status 2."""

    exit_code = 2


class ConnectorGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMAND_MODULES:
            for command in importlib.import_module(COMMAND_MODULES[name]).commands:
                self.add_command(command)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InvalidError as exc:
            raise Refused("; ".join(f"{e['field']}: {e['reason']}" for e in exc.errors)) from None
        except ServiceError as exc:
            raise Refused(str(exc)) from None


@click.group(cls=ConnectorGroup)
@click.option("--database-url", envvar="CONNECTOR_DATABASE_URL", default=None, help="SQLAlchemy URL of the database.")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Connector: people and accounts, live segments, syncs to CRMs."""
    from connector.process import settle

    settle()  # the command's module is imported by now (``ConnectorGroup.get_command``)
    ctx.obj = Context(database_url)


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_context
def db_upgrade(obj: Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from connector.migrate import upgrade

    upgrade(obj.settings.database_url, revision)
    click.echo(f"database at {revision}")


@main.group()
def workspace() -> None:
    """Workspaces."""


@workspace.command("create")
@click.argument("name")
@click.option("--slug", default=None)
@click.option("--company", "company_name", default=None, help="Company name (created); defaults to NAME.")
@click.option("--time-zone", default="UTC", show_default=True)
@click.option("--parent", default=None, help="Slug of the HQ workspace this one belongs to.")
@click.option("--admin-email", default=None, help="Create a workspace admin with this email and print a token.")
@pass_context
def workspace_create(obj, name, slug, company_name, time_zone, parent, admin_email) -> None:
    """Create a workspace (and its company unless --parent names one)."""
    from sqlalchemy import select

    from connector.models import Company, Role, Workspace
    from connector.tenancy import create_company, create_member, create_token, create_workspace

    with obj.db.session() as session:
        parent_ws = None
        if parent:
            parent_ws = session.scalar(select(Workspace).where(Workspace.slug == parent))
            if parent_ws is None:
                raise click.BadParameter(f"no workspace with slug {parent!r}", param_hint="--parent")
            company = session.get(Company, parent_ws.company_id)
        else:
            company = create_company(session, company_name or name)
        ws = create_workspace(session, company, name, slug=slug, time_zone=time_zone, parent=parent_ws)
        click.echo(f"workspace {ws.slug} (id {ws.id})")
        if admin_email:
            member = create_member(session, company, admin_email, roles={ws: Role.WORKSPACE_ADMIN})
            click.echo(f"token for {admin_email} (shown once): {create_token(session, member, 'cli')}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="The member's email.")
@click.option("--workspace", "workspace_slug", required=True, help="A workspace of the member's company.")
@click.option(
    "--role",
    type=click.Choice(["workspace_admin", "editor", "viewer"]),
    default=None,
    help="Add the member to the workspace with this role (creating the member if needed).",
)
@click.option("--name", default="cli", show_default=True)
@pass_context
def token_create(obj, email, workspace_slug, role, name) -> None:
    """Create an API token for a member and print it (it is shown once)."""
    from sqlalchemy import select

    from connector.models import Company, Member, Role, Workspace, WorkspaceMembership
    from connector.tenancy import create_member, create_token

    with obj.db.session() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == workspace_slug))
        if ws is None:
            raise click.BadParameter(f"no workspace with slug {workspace_slug!r}", param_hint="--workspace")
        member = session.scalar(select(Member).where(Member.company_id == ws.company_id, Member.email == email))
        if member is None:
            if role is None:
                raise click.BadParameter(f"no member {email!r}; give --role to create one", param_hint="--email")
            member = create_member(session, session.get(Company, ws.company_id), email, roles={ws: Role(role)})
        elif role is not None:
            session.merge(WorkspaceMembership(workspace_id=ws.id, member_id=member.id, role=Role(role)))
        click.echo(create_token(session, member, name))


@token.command("list")
@pass_context
def token_list(obj) -> None:
    """Every API token: id, prefix, member, name, last use, revoked or not (never the secret)."""
    from connector.administration import all_tokens

    with obj.db.session() as session:
        for view in all_tokens(session):
            t = view.token
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
            click.echo(f"{t.id}\t{t.prefix}…\t{view.member_email}\t{t.name or '-'}\t{used}\t{state}")


@token.command("revoke")
@click.argument("reference")
@pass_context
def token_revoke(obj, reference: str) -> None:
    """Revoke the token with this id or prefix (as ``token list`` shows): it authenticates nothing from now on."""
    from connector.administration import revoke_token_by_reference
    from connector.errors import ServiceError

    with obj.db.session() as session:
        try:
            view = revoke_token_by_reference(session, reference.rstrip("…"))
        except ServiceError as exc:
            raise click.BadParameter(str(exc), param_hint="REFERENCE") from None
        click.echo(f"token {view.token.id} ({view.token.prefix}…) of {view.member_email} revoked")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo/--no-demo", default=True, show_default=True, help="Seed demo data into an empty database.")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True, help="Run the scheduler in-process.")
@click.option(
    "--sandbox-port",
    default=8010,
    show_default=True,
    type=int,
    help="Port of the local HubSpot sandbox started for the demo (0: do not start it).",
)
@pass_context
def serve(obj: Context, host: str, port: int, demo: bool, scheduler: bool, sandbox_port: int) -> None:
    """Run the service: migrate, seed the demo when empty, start the scheduler, serve the API."""
    from connector.serve import serve as run

    run(obj.settings, obj.db, host=host, port=port, demo=demo, scheduler=scheduler, sandbox_port=sandbox_port)


@main.command()
@click.option("--sandbox-url", default="http://127.0.0.1:8010", show_default=True)
@pass_context
def demo(obj: Context, sandbox_url: str) -> None:
    """Seed demo data (a workspace, people, accounts, events, segments, a HubSpot sync) into the database."""
    from connector.demo import seed_demo

    seed_demo(obj.db, obj.settings, sandbox_url=sandbox_url, echo=click.echo)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
