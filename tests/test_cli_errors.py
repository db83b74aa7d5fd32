"""The command line says a service's refusal once for every command: the message, exit status 2."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.errors import ConflictError, InvalidError, NotFoundError


@pytest.fixture
def refusing():
    raised: list[Exception] = []

    @main.command("refuse-for-test")
    def refuse() -> None:
        raise raised[0]

    yield raised
    main.commands.pop("refuse-for-test")


@pytest.mark.parametrize(
    "error, message",
    [
        (NotFoundError("sync"), "No such sync."),
        (ConflictError("a run of this sync is in progress"), "a run of this sync is in progress"),
        (InvalidError.one("schedule.minutes", "must be between 1 and 527040"), "schedule.minutes: must be between"),
    ],
)
def test_a_refusal_is_a_message_and_exit_status_2(refusing, error, message):
    refusing.append(error)
    result = CliRunner().invoke(main, ["refuse-for-test"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_other_click_errors_keep_their_own_status(refusing):
    refusing.append(click.ClickException("plain"))
    assert CliRunner().invoke(main, ["refuse-for-test"]).exit_code == 1
