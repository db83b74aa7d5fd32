"""``connector`` commands of this package (collected by ``connector.cli``)."""

from __future__ import annotations

import click

from connector.testing.hubspot_sandbox import sandbox_command

commands: list[click.Command] = [sandbox_command]
