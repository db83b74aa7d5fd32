"""Pages through the test client: a run's records a page at a time, the members CSV, errors beside the field."""

from __future__ import annotations

import re
import time

from tests.web.conftest import add_hubspot_sync, csrf_token, sign_in


def _form_token(client, path: str) -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def test_run_page_lists_invalid_records_with_reasons_a_page_at_a_time(client, editor, sandbox):
    people = [{"external_id": "with-email", "email": "ok@acme.example"}]
    people += [{"external_id": f"no-email-{i:02d}"} for i in range(51)]
    assert client.post(editor.url("/identify"), json={"batch": people}, headers=editor.headers).status_code == 200
    sync = add_hubspot_sync(client, editor, sandbox)
    sign_in(client)
    token = _form_token(client, f"/w/acme/syncs/{sync['id']}")
    started = client.post(f"/w/acme/syncs/{sync['id']}/run", data={"csrf_token": token})
    assert started.status_code == 302
    run_url = started.location
    deadline = time.monotonic() + 60
    while 'id="run-status" class="status-running"' in (page := client.get(run_url).get_data(as_text=True)):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)

    assert 'class="status-partial"' in page
    assert re.search(r'data-count="invalid">51<', page) and re.search(r'data-count="added">1<', page)
    first = re.findall(r"<td>invalid</td><td>([^<]+)</td>", page)
    assert len(first) == 50 and "identity" in first[0]
    next_page = re.search(r'href="([^"]+after=\d+)">Next page', page).group(1).replace("&amp;", "&")
    rest = re.findall(r"<td>invalid</td><td>([^<]+)</td>", client.get(next_page).get_data(as_text=True))
    assert len(rest) == 1
    assert [r["properties"]["email"] for r in sandbox.records("contacts")] == ["ok@acme.example"]


def test_members_download_is_a_csv_of_every_member(client, editor):
    batch = [{"external_id": f"u{i}", "email": f"u{i}@acme.example", "attributes": {"plan": "pro"}} for i in range(3)]
    client.post(editor.url("/identify"), json={"batch": batch}, headers=editor.headers)
    body = {"name": "Pro", "conditions": {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}}
    segment = client.post(editor.url("/segments?wait=true"), json=body, headers=editor.headers).get_json()
    sign_in(client)
    response = client.get(f"/w/acme/segments/{segment['id']}/members.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("id,external_id,email,entered_at")
    assert sorted(line.split(",")[2] for line in lines[1:]) == [f"u{i}@acme.example" for i in range(3)]


def test_a_refused_definition_is_shown_beside_its_condition_and_nothing_is_saved(client, editor):
    sign_in(client)
    token = _form_token(client, "/w/acme/segments/new")
    form = {
        "csrf_token": token,
        "subject_type": "user",
        "name": "Big spenders",
        "n.type": "all",
        "n.0.type": "attribute",
        "n.0.name": "ltv",
        "n.0.operator": "gt",
        "n.0.value": "a lot",
        "n.0.value_type": "number",
        "op": "save",
    }
    response = client.post("/w/acme/segments/new", data=form)
    assert response.status_code == 422
    node = re.search(r'<fieldset id="node-n.0">(.*?)</fieldset>', response.get_data(as_text=True), re.S).group(1)
    assert "must be a number" in node
    assert client.get(editor.url("/segments"), headers=editor.headers).get_json()["data"] == []


def test_a_missing_segment_is_a_not_found_page(client, editor):
    sign_in(client)
    response = client.get("/w/acme/segments/424242")
    assert response.status_code == 404
    assert "text/html" in response.content_type and "Not found" in response.get_data(as_text=True)


def test_the_builder_adds_and_saves_a_message_leaf(client, editor):
    sign_in(client)
    token = _form_token(client, "/w/acme/segments/new")
    base = {"csrf_token": token, "subject_type": "user", "name": "Clicked lately", "n.type": "all"}
    added = client.post("/w/acme/segments/new", data={**base, "op": "add:n:message"})
    page = added.get_data(as_text=True)
    assert added.status_code == 200 and 'name="n.0.event"' in page and 'name="n.0.sequence_id"' in page
    leaf = {"n.0.type": "message", "n.0.operator": "did", "n.0.event": "clicked", "n.0.window": "7 days"}
    saved = client.post("/w/acme/segments/new?wait=true", data={**base, **leaf, "n.0.count": "2", "op": "save"})
    assert saved.status_code in (302, 303), saved.get_data(as_text=True)[:500]
    (segment,) = client.get(editor.url("/segments"), headers=editor.headers).get_json()["data"]
    (condition,) = segment["conditions"]["children"]
    assert condition["type"] == "message" and condition["event"] == "clicked"
    assert condition["count"] == {"operator": "at_least", "value": 2}
    assert condition["window"]["within_last"] == {"amount": 7, "unit": "days"}
