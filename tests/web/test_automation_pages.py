"""Automation pages through the test client: sequences, a segment's daily action, views and playbooks — the
forms write through the same services as the API, refusals show next to their field, viewers cannot change
anything and a POST without its CSRF token changes nothing."""

from __future__ import annotations

import re

from connector.models import Role
from tests.web.conftest import add_member, csrf_token, sign_in

PRO = {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}
SEQUENCE = {"name": "Welcome", "channels": ["email"], "steps": [{"name": "Hello", "delay_minutes": 0}]}


def _token(client, path: str = "/w/acme/sequences") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def _api(client, tenant, method: str, path: str, **kwargs):
    return client.open(tenant.url(path), method=method, headers=tenant.headers, **kwargs)


def _pro_segment(client, tenant) -> int:
    people = [{"external_id": f"u{i}", "email": f"u{i}@acme.example", "attributes": {"plan": "pro"}} for i in range(3)]
    assert _api(client, tenant, "POST", "/identify", json={"batch": people}).status_code == 200
    response = _api(client, tenant, "POST", "/segments", json={"name": "Pro", "conditions": PRO})
    assert response.status_code == 201
    return response.get_json()["id"]


def test_a_sequence_made_in_the_form_is_the_one_the_api_reads_with_its_secret_never_shown(client, editor):
    sign_in(client)
    assert "No sequences yet" in client.get("/w/acme/sequences").get_data(as_text=True)
    form = {
        "csrf_token": _token(client, "/w/acme/sequences/new"),
        "name": "Onboarding",
        "description": "First week",
        "channel-email": "on",
        "channel-sms": "on",
        "steps-0-name": "Welcome",
        "steps-0-delay": "0",
        "steps-1-name": "Tips",
        "steps-1-delay": "1440",
        "webhook_url": "https://hooks.example/steps",
        "webhook_secret": "s3cret-value-1",
    }
    response = client.post("/w/acme/sequences/new", data=form)
    assert response.status_code == 302
    [sequence] = _api(client, editor, "GET", "/sequences").get_json()["data"]
    assert sequence["name"] == "Onboarding" and sequence["channels"] == ["email", "sms"]
    assert sequence["steps"] == [{"name": "Welcome", "delay_minutes": 0}, {"name": "Tips", "delay_minutes": 1440}]
    assert sequence["webhook_secret"] == "********"
    edit_page = client.get(f"/w/acme/sequences/{sequence['id']}/edit").get_data(as_text=True)
    assert "s3cret-value-1" not in edit_page and "A secret is stored" in edit_page


def test_a_bad_step_delay_is_shown_next_to_the_steps_and_nothing_is_saved(client, editor):
    sign_in(client)
    form = {
        "csrf_token": _token(client, "/w/acme/sequences/new"),
        "name": "Broken",
        "channel-email": "on",
        "steps-0-name": "Welcome",
        "steps-0-delay": "-5",
    }
    response = client.post("/w/acme/sequences/new", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'<p class="error" id="steps-error">[^<]*greater than or equal to 0', page)
    assert _api(client, editor, "GET", "/sequences").get_json()["data"] == []


def test_manual_enrol_and_exit_show_in_the_sequences_enrolments(client, editor):
    _pro_segment(client, editor)
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    people = _api(client, editor, "GET", "/users?limit=10").get_json()["data"]
    sign_in(client)
    url = f"/w/acme/sequences/{sequence['id']}"
    ids = " ".join(str(p["id"]) for p in people[:2])
    response = client.post(url + "/enrol", data={"csrf_token": _token(client, url), "user_ids": ids,
                                                 "fallback_channel": "email"})  # fmt: skip
    assert response.status_code == 200 and "Enrolled 2; 0 already enrolled or unknown." in response.get_data(True)
    enrolments = _api(client, editor, "GET", f"/enrolments?sequence_id={sequence['id']}").get_json()["data"]
    assert {e["source"] for e in enrolments} == {"ui"} and len(enrolments) == 2
    exit_url = f"{url}/enrolments/{enrolments[0]['id']}/exit"
    assert client.post(exit_url, data={"csrf_token": _token(client, url)}).status_code == 302
    page = client.get(url + "?state=exited").get_data(as_text=True)
    assert page.count("<td>exited</td>") == 1
    assert _api(client, editor, "GET", f"/enrolments/{enrolments[0]['id']}").get_json()["state"] == "exited"


def test_a_segment_action_is_set_from_the_segment_page_and_a_bad_zone_is_named(client, editor):
    segment_id = _pro_segment(client, editor)
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    sign_in(client)
    assert "Daily action" in client.get(f"/w/acme/segments/{segment_id}").get_data(as_text=True)
    url = f"/w/acme/segments/{segment_id}/action"
    assert "has no daily action" in client.get(url).get_data(as_text=True)
    form = {"csrf_token": _token(client, url), "sequence_id": str(sequence["id"]), "time": "09:00",
            "timezone": "Mars/Olympus", "fallback_channel": "email", "enabled": "on", "op": "save"}  # fmt: skip
    refused = client.post(url, data=form)
    assert refused.status_code == 422
    assert re.search(r'<p class="error" id="timezone-error">[^<]+', refused.get_data(as_text=True))
    assert _api(client, editor, "GET", f"/segments/{segment_id}/action").status_code == 404
    assert client.post(url, data={**form, "timezone": "Europe/Berlin"}).status_code == 302
    action = _api(client, editor, "GET", f"/segments/{segment_id}/action").get_json()
    assert (action["time"], action["timezone"], action["enabled"]) == ("09:00", "Europe/Berlin", True)
    page = client.get(url).get_data(as_text=True)
    assert "enabled" in page and "Europe/Berlin" in page and 'id="next-run"' in page
    assert client.post(url, data={**form, "timezone": "Europe/Berlin", "op": "delete"}).status_code == 302
    assert _api(client, editor, "GET", f"/segments/{segment_id}/action").status_code == 404


def test_a_view_built_with_segment_not_in_counts_what_the_api_counts(client, editor):
    segment_id = _pro_segment(client, editor)
    others = [{"external_id": f"f{i}", "email": f"f{i}@acme.example", "attributes": {"plan": "free"}} for i in range(2)]
    _api(client, editor, "POST", "/identify", json={"batch": others})
    sign_in(client)
    form = {"csrf_token": _token(client, "/w/acme/views/new"), "subject_type": "user", "name": "Not pro",
            "n.type": "all", "n.0.type": "segment", "n.0.operator": "not_in", "n.0.segment_id": str(segment_id),
            "columns": "id\nemail\nattributes.plan", "sort_by": "email", "direction": "desc", "op": "save"}  # fmt: skip
    response = client.post("/w/acme/views/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    [view] = _api(client, editor, "GET", "/views").get_json()["data"]
    api_count = _api(client, editor, "GET", f"/views/{view['id']}/count").get_json()["count"]
    page = client.get(response.location).get_data(as_text=True)
    assert api_count == 2 and f'data-count="{api_count}"' in page
    assert page.index("f1@acme.example") < page.index("f0@acme.example")
    csv_text = client.get(f"/w/acme/views/{view['id']}/rows.csv").get_data(as_text=True)
    assert csv_text.splitlines()[0] == "id,email,attributes.plan" and len(csv_text.splitlines()) == 3


def test_an_unknown_view_column_is_named_and_nothing_is_saved(client, editor):
    sign_in(client)
    form = {"csrf_token": _token(client, "/w/acme/views/new"), "subject_type": "user", "name": "Bad",
            "n.type": "all", "columns": "id\nshoe_size", "sort_by": "id", "direction": "asc", "op": "save"}  # fmt: skip
    response = client.post("/w/acme/views/new", data=form)
    assert response.status_code == 422 and "columns[1]: unknown column" in response.get_data(as_text=True)
    assert _api(client, editor, "GET", "/views").get_json()["data"] == []


def test_a_playbook_made_in_the_form_pauses_and_resumes_with_catch_up(client, editor):
    segment_id = _pro_segment(client, editor)
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    sign_in(client)
    assert "No playbooks yet" in client.get("/w/acme/playbooks").get_data(as_text=True)
    form = {"csrf_token": _token(client, "/w/acme/playbooks/new"), "subject_type": "user", "name": "Welcome pros",
            "trigger_kind": "enters", "segment_id": str(segment_id), "n.type": "all",
            "actions-0-type": "enrol", "actions-0-sequence_id": str(sequence["id"]),
            "actions-0-fallback_channel": "email", "enabled": "on", "op": "save"}  # fmt: skip
    response = client.post("/w/acme/playbooks/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    [playbook] = _api(client, editor, "GET", "/playbooks").get_json()["data"]
    assert playbook["trigger"] == {"kind": "enters", "segment_id": segment_id}
    assert playbook["actions"] == [{"type": "enrol", "sequence_id": sequence["id"], "fallback_channel": "email"}]
    url = f"/w/acme/playbooks/{playbook['id']}"
    assert "No firings yet" in client.get(url).get_data(as_text=True)
    assert client.post(url + "/pause", data={"csrf_token": _token(client, url)}).status_code == 302
    assert _api(client, editor, "GET", f"/playbooks/{playbook['id']}").get_json()["enabled"] is False
    assert client.post(url + "/resume", data={"csrf_token": _token(client, url), "catch_up": "on"}).status_code == 302
    assert _api(client, editor, "GET", f"/playbooks/{playbook['id']}").get_json()["enabled"] is True


def test_a_playbook_missing_its_trigger_segment_is_refused_next_to_the_trigger(client, editor):
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    sign_in(client)
    form = {"csrf_token": _token(client, "/w/acme/playbooks/new"), "subject_type": "user", "name": "No trigger",
            "trigger_kind": "enters", "segment_id": "", "n.type": "all", "actions-0-type": "enrol",
            "actions-0-sequence_id": str(sequence["id"]), "actions-0-fallback_channel": "email",
            "op": "save"}  # fmt: skip
    response = client.post("/w/acme/playbooks/new", data=form)
    assert response.status_code == 422
    assert re.search(r'<p class="error">trigger\.[a-z.]*segment_id: [^<]+', response.get_data(as_text=True))
    assert _api(client, editor, "GET", "/playbooks").get_json()["data"] == []


def test_a_viewer_reads_automation_pages_without_edit_buttons_and_every_change_is_forbidden(client, database, editor):
    segment_id = _pro_segment(client, editor)
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    enrol = {"type": "enrol", "sequence_id": sequence["id"], "fallback_channel": "email"}
    body = {"name": "P", "trigger": {"kind": "enters", "segment_id": segment_id}, "actions": [enrol]}
    playbook = _api(client, editor, "POST", "/playbooks", json=body).get_json()
    view = _api(client, editor, "POST", "/views", json={"name": "V", "columns": ["id"]}).get_json()
    add_member(database, editor, "viewer@acme.example", Role.VIEWER)
    sign_in(client, "viewer@acme.example")
    pages = {
        "/w/acme/sequences": "New sequence",
        f"/w/acme/sequences/{sequence['id']}": "Enrol people",
        f"/w/acme/segments/{segment_id}/action": "Save action",
        "/w/acme/views": "New view",
        f"/w/acme/views/{view['id']}": "Delete",
        "/w/acme/playbooks": "New playbook",
        f"/w/acme/playbooks/{playbook['id']}": "Pause",
    }
    for path, edit_text in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert edit_text not in response.get_data(as_text=True), path
    for form in ("/w/acme/sequences/new", "/w/acme/views/new", "/w/acme/playbooks/new"):
        assert client.get(form).status_code == 403
    token = _token(client)
    posts = [
        ("/w/acme/sequences/new", {"name": "Nope", "channel-email": "on", "steps-0-name": "x"}),
        (f"/w/acme/sequences/{sequence['id']}/enrol", {"user_ids": "1", "fallback_channel": "email"}),
        (f"/w/acme/sequences/{sequence['id']}/delete", {}),
        (f"/w/acme/segments/{segment_id}/action", {"sequence_id": str(sequence["id"]), "time": "09:00",
                                                   "timezone": "UTC", "fallback_channel": "email", "op": "save"}),
        (f"/w/acme/views/{view['id']}/delete", {}),
        (f"/w/acme/playbooks/{playbook['id']}/pause", {}),
        (f"/w/acme/playbooks/{playbook['id']}/delete", {}),
    ]  # fmt: skip
    for path, data in posts:
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert [s["name"] for s in _api(client, editor, "GET", "/sequences").get_json()["data"]] == ["Welcome"]
    assert _api(client, editor, "GET", f"/segments/{segment_id}/action").status_code == 404
    assert _api(client, editor, "GET", f"/playbooks/{playbook['id']}").get_json()["enabled"] is True
    assert len(_api(client, editor, "GET", "/views").get_json()["data"]) == 1


def test_automation_posts_without_a_csrf_token_are_refused_and_change_nothing(client, editor):
    segment_id = _pro_segment(client, editor)
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    sign_in(client)
    posts = [
        ("/w/acme/sequences/new", {"name": "Forged", "channel-email": "on", "steps-0-name": "x"}),
        (f"/w/acme/sequences/{sequence['id']}/delete", {}),
        (f"/w/acme/segments/{segment_id}/action", {"sequence_id": str(sequence["id"]), "time": "09:00",
                                                   "timezone": "UTC", "fallback_channel": "email", "op": "save"}),
        ("/w/acme/views/new", {"name": "Forged", "n.type": "all", "columns": "id", "op": "save"}),
    ]  # fmt: skip
    for path, data in posts:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "The form expired or was not sent by this site" in response.get_data(as_text=True)
    assert [s["name"] for s in _api(client, editor, "GET", "/sequences").get_json()["data"]] == ["Welcome"]
    assert _api(client, editor, "GET", f"/segments/{segment_id}/action").status_code == 404
    assert _api(client, editor, "GET", "/views").get_json()["data"] == []
