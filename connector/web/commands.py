"""``connector member set-password``: give a member a password for the web UI."""

from __future__ import annotations

import click

from connector import logins
from connector.errors import InvalidError, NotFoundError


@click.group("member")
def member() -> None:
    """Members (the people who sign in)."""


@member.command("set-password")
@click.option("--email", required=True, help="The member's email.")
@click.option("--workspace", "workspace_slug", default=None, help="A workspace of the member's company.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="CONNECTOR_MEMBER_PASSWORD",
    help="The new password (prompted for when not given; or CONNECTOR_MEMBER_PASSWORD).",
)
@click.pass_obj
def set_password(obj, email: str, workspace_slug: str | None, password: str) -> None:
    """Set the web UI password of the member with EMAIL (at least 10 characters)."""
    with obj.db.session() as session:
        try:
            found = logins.find_member(session, email, workspace_slug)
            logins.set_password(session, found, password)
        except NotFoundError:
            raise click.BadParameter(f"no member {email!r}", param_hint="--email") from None
        except InvalidError as exc:
            error = exc.errors[0]
            raise click.BadParameter(error["reason"], param_hint=f"--{error['field']}") from None
    click.echo(f"password set for {email}")


commands = [member]
