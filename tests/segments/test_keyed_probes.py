"""Evaluating a segment for the people a batch changed is planned as probes by key (``scratch.keyed_probes``), so
its cost follows the batch, not the size of the workspace."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from connector.changes import ChangeSet
from connector.scratch import KEYED_RANDOM_PAGE_COST, keyed_probes
from connector.segments.incremental import apply_changes
from tests.segments.factories import Data
from tests.segments.support import PRO, members
from tests.segments.test_incremental import create
from tests.syncs.conftest import seed_users


def random_page_cost(session) -> str:
    return session.execute(text("SELECT current_setting('random_page_cost')")).scalar_one()


def test_the_block_plans_with_a_low_random_read_cost_and_restores_the_transactions_own(database):
    if database.dialect != "postgresql":
        pytest.skip("random_page_cost is PostgreSQL's; other dialects plan as before")
    with database.session() as session:
        session.execute(text("SET LOCAL random_page_cost = 3"))
        with keyed_probes(session):
            assert random_page_cost(session) == KEYED_RANDOM_PAGE_COST
        assert random_page_cost(session) == "3"
    with database.session() as session:
        assert random_page_cost(session) == "4"  # PostgreSQL's default: the setting never outlives a transaction


def test_the_block_does_nothing_on_other_dialects(database):
    if database.dialect == "postgresql":
        pytest.skip("tested above")
    with database.session() as session, keyed_probes(session):
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_a_segment_evaluated_for_changed_people_is_planned_as_probes_and_the_setting_restored(database):
    if database.dialect != "postgresql":
        pytest.skip("random_page_cost is PostgreSQL's")
    data = Data(database)
    pro = create(database, data.workspace_id, "Pro", PRO)
    # More people than a list of ids holds (``run.BOUND_IDS``): the segment runs once over a table of them.
    people = seed_users(
        database,
        data.workspace_id,
        [{"email": f"p{i}@example.com", "attributes": {"plan": "pro"}} for i in range(1200)],
    )
    seen: list[str] = []

    def note_cost(connection, cursor, statement, parameters, context, executemany):
        if "scratch_evaluated_parallel" in statement and statement.startswith("CREATE"):
            probe = connection.connection.dbapi_connection.cursor()
            probe.execute("SELECT current_setting('random_page_cost')")
            seen.append(probe.fetchone()[0])
            probe.close()

    with database.session() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", note_cost)
        try:
            apply_changes(session, data.workspace_id, ChangeSet(set(people), set(), {"attribute"}))
            after = random_page_cost(session)
        finally:
            event.remove(connection, "before_cursor_execute", note_cost)

    assert seen == [KEYED_RANDOM_PAGE_COST]
    assert after == "4"
    assert members(database, pro) == set(people)
