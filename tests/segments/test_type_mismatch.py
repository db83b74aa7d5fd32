"""A number stored as text never matches a numeric condition: explain says why, and a preview warns when most
people hold a compared attribute as another type."""

from __future__ import annotations

from tests.ingest.helpers import ok, post_batch

RICH = {"type": "attribute", "name": "salary", "operator": "gt", "value": 25000}


def create(client, tenant, conditions) -> int:
    response = client.post(
        tenant.url("/segments?wait=true"), headers=tenant.headers, json={"name": "Rich", "conditions": conditions}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def user_id(client, tenant, external_id: str) -> int:
    return client.get(tenant.url(f"/users/{external_id}?by=external_id"), headers=tenant.headers).get_json()["id"]


def test_explain_says_the_value_is_a_string_where_the_condition_compares_numbers(client, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "attributes": {"salary": "30000"}}]))
    ok(post_batch(client, tenant, "identify", [{"external_id": "u2", "attributes": {"salary": 30000}}]))
    segment = create(client, tenant, RICH)

    text = client.get(
        tenant.url(f"/segments/{segment}/explain?subject_id={user_id(client, tenant, 'u1')}"), headers=tenant.headers
    ).get_json()
    assert text["member"] is False
    assert text["explanation"]["observed"]["why"] == 'value is the string "30000"; the condition compares numbers'

    number = client.get(
        tenant.url(f"/segments/{segment}/explain?subject_id={user_id(client, tenant, 'u2')}"), headers=tenant.headers
    ).get_json()
    assert number["member"] is True and "why" not in number["explanation"]["observed"]


def test_explain_names_a_boolean_stored_as_text(client, tenant):
    ok(post_batch(client, tenant, "identify", [{"external_id": "u1", "attributes": {"beta": "true"}}]))
    segment = create(client, tenant, {"type": "attribute", "name": "beta", "operator": "eq", "value": True})
    explained = client.get(
        tenant.url(f"/segments/{segment}/explain?subject_id={user_id(client, tenant, 'u1')}"), headers=tenant.headers
    ).get_json()
    assert explained["explanation"]["observed"]["why"] == 'value is the string "true"; the condition compares booleans'


def test_preview_warns_when_most_values_of_a_compared_attribute_are_text(client, tenant):
    batch = [{"external_id": f"t{i}", "attributes": {"salary": str(30000 + i)}} for i in range(8)]
    batch += [{"external_id": f"n{i}", "attributes": {"salary": 30000 + i}} for i in range(2)]
    ok(post_batch(client, tenant, "identify", batch))
    tree = {"type": "all", "children": [{"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}, RICH]}

    preview = client.post(tenant.url("/segments/preview"), headers=tenant.headers, json={"conditions": RICH}).get_json()
    assert preview["count"] == 2
    (warning,) = preview["warnings"]
    assert warning["field"] == "conditions" and warning["attribute"] == "salary"
    assert "string in 8 of the 10 users" in warning["reason"] and "compares numbers" in warning["reason"]

    nested = client.post(tenant.url("/segments/preview"), headers=tenant.headers, json={"conditions": tree}).get_json()
    assert [w["field"] for w in nested["warnings"]] == ["conditions.children[1]"]


def test_preview_does_not_warn_when_most_values_have_the_compared_type(client, tenant):
    batch = [{"external_id": f"n{i}", "attributes": {"salary": 30000 + i}} for i in range(8)]
    batch += [{"external_id": "t0", "attributes": {"salary": "unknown"}}]
    ok(post_batch(client, tenant, "identify", batch))
    preview = client.post(tenant.url("/segments/preview"), headers=tenant.headers, json={"conditions": RICH}).get_json()
    assert preview["warnings"] == []
