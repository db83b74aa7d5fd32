"""Views: a condition tree read as pages, a count and a CSV export; no membership kept."""

from __future__ import annotations

import pytest

from connector.automation import views
from connector.errors import InvalidError
from tests.automation.support import PRO, ingest, make_segment


def save(database, ws, **data):
    with database.session() as session:
        return views.save_view(session, ws, {"name": "V", **data}).id


def test_a_view_lists_its_rows_in_pages_with_its_columns(database, tenant):
    ws = tenant.workspace_id
    pro = make_segment(database, ws, "Pro", PRO)
    ingest(
        database,
        ws,
        *(
            {"external_id": f"u{i}", "email": f"u{i}@acme.example", "attributes": {"plan": "pro", "n": i}}
            for i in range(5)
        ),
        {"external_id": "free", "attributes": {"plan": "free"}},
    )
    view = save(
        database,
        ws,
        conditions={"type": "segment", "operator": "in", "segment_id": pro},
        columns=["email", "attributes.n", "Segments"],
        sort={"by": "email", "direction": "desc"},
    )
    with database.session() as session:
        found = views.get_view(session, ws, view)
        first, offset = views.read_page(session, found, limit=3)
        second, end = views.read_page(session, found, offset=offset, limit=3)
        assert views.count_view(session, found) == 5
        exported = list(views.export_rows(session, found))
    assert [r["email"] for r in first + second] == [f"u{i}@acme.example" for i in (4, 3, 2, 1, 0)]
    assert first[0] == {"email": "u4@acme.example", "attributes.n": 4, "Segments": ["Pro"]}
    assert end is None
    assert exported[0] == ["email", "attributes.n", "Segments"]
    assert len(exported) == 6


def test_a_view_follows_the_data_without_keeping_membership(database, tenant):
    ws = tenant.workspace_id
    view = save(database, ws, conditions=PRO)
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
    with database.session() as session:
        assert views.count_view(session, views.get_view(session, ws, view)) == 1
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "free"}})
    with database.session() as session:
        assert views.count_view(session, views.get_view(session, ws, view)) == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"columns": ["password"]}, "columns[0]"),
        ({"sort": {"by": "attributes.plan"}}, "sort.by"),
        ({"conditions": {"type": "segment", "segment_id": 999}}, "conditions.segment_id"),
        ({"conditions": {"type": "nope"}}, "conditions.type"),
    ],
)
def test_bad_views_are_refused_naming_the_field(database, tenant, data, field):
    with pytest.raises(InvalidError) as excinfo:
        save(database, tenant.workspace_id, **data)
    assert [e["field"] for e in excinfo.value.errors] == [field]
