"""``connector`` commands of this package (collected by ``connector.cli``)."""

from __future__ import annotations

import click

commands: list[click.Command] = []
