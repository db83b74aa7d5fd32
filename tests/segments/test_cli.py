"""``connector segments refresh`` against a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from click.testing import CliRunner

from connector.cli import main
from connector.models import User
from connector.segments import service
from tests.segments.factories import NOW, Data, make_workspace
from tests.segments.support import PRO, members

WEEKLY_VIEWERS = {"type": "page_view", "window": {"within_last": {"amount": 7, "unit": "days"}}}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def workspace(database) -> Data:
    return Data(database, make_workspace(database, slug="shop"))


def create(database, data, name, conditions) -> int:
    with database.session() as session:
        return service.create_segment(
            session, data.workspace_id, name=name, subject_type="user", conditions=conditions
        ).id


def run(database_url, *args):
    return CliRunner().invoke(main, ["--database-url", database_url, "segments", "refresh", *args])


def behind_the_engines_back(database, user_id, plan):
    with database.session() as session:
        session.get(User, user_id).attributes = {"plan": plan}


def test_refresh_every_segment_of_a_workspace(database, database_url, workspace, clock):
    ann = workspace.user(attributes={"plan": "free"})
    pro = create(database, workspace, "Pro", PRO)
    create(database, workspace, "Weekly viewers", WEEKLY_VIEWERS)
    behind_the_engines_back(database, ann, "pro")

    result = run(database_url, "--workspace", "shop")

    assert result.exit_code == 0, result.output
    assert "shop: 2 segments refreshed, 1 entered, 0 exited" in result.output
    assert members(database, pro) == {ann}


def test_refresh_one_segment_by_name_or_id(database, database_url, workspace, clock):
    ann = workspace.user(attributes={"plan": "free"})
    pro = create(database, workspace, "Pro", PRO)
    create(database, workspace, "Free", {**PRO, "value": "free"})
    behind_the_engines_back(database, ann, "pro")

    by_name = run(database_url, "--workspace", "shop", "--segment", "Pro")
    assert "shop: 1 segments refreshed, 1 entered, 0 exited" in by_name.output
    by_id = run(database_url, "--workspace", "shop", "--segment", str(pro))
    assert "shop: 1 segments refreshed, 0 entered, 0 exited" in by_id.output


def test_refresh_time_relative_only(database, database_url, workspace, clock):
    ann = workspace.user(attributes={"plan": "free"})
    workspace.page_view(ann, "https://x.com/", at=NOW - timedelta(days=6))
    pro = create(database, workspace, "Pro", PRO)
    viewers = create(database, workspace, "Weekly viewers", WEEKLY_VIEWERS)
    behind_the_engines_back(database, ann, "pro")
    clock.shift(timedelta(days=2))

    result = run(database_url, "--time-relative")

    assert result.exit_code == 0, result.output
    assert "shop: 1 segments refreshed, 0 entered, 1 exited" in result.output
    assert members(database, viewers) == set()
    assert members(database, pro) == set()


def test_bad_options_are_usage_errors(database, database_url, workspace):
    assert run(database_url, "--segment", "Pro").exit_code == 2
    missing = run(database_url, "--workspace", "nowhere")
    assert missing.exit_code == 2 and "no workspace with slug 'nowhere'" in missing.output
    unknown = run(database_url, "--workspace", "shop", "--segment", "Ghosts")
    assert unknown.exit_code == 2


def test_nothing_to_refresh(database, database_url, workspace):
    result = run(database_url, "--workspace", "shop")
    assert result.exit_code == 0 and "no segments to refresh" in result.output
