"""The sandbox answers the official ``hubspot-api-client`` the way HubSpot does: codes, shapes and messages."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate, PropertyUpdate

from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox

TIMEOUT = (2, 5)


@pytest.fixture
def client(sandbox: HubSpotSandbox) -> HubSpot:
    return HubSpot(access_token="sandbox-token", host=sandbox.url, retry=False)


@pytest.fixture
def contacts(client: HubSpot):
    return client.crm.contacts.batch_api


@pytest.fixture
def properties(client: HubSpot):
    return client.crm.properties.core_api


def upsert_input(email: str, trace: str | None = None, **properties: str) -> SimplePublicObjectBatchInputUpsert:
    return SimplePublicObjectBatchInputUpsert(
        id=email, id_property="email", object_write_trace_id=trace, properties=properties
    )


def upsert(api, inputs: list[SimplePublicObjectBatchInputUpsert], **kwargs: Any):
    return api.upsert_with_http_info(
        BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs), _request_timeout=TIMEOUT, **kwargs
    )


def body_of(exc: Exception) -> dict[str, Any]:
    return json.loads(exc.body)


def test_upsert_creates_then_updates_and_answers_200(sandbox: HubSpotSandbox, contacts) -> None:
    data, status, _ = upsert(contacts, [upsert_input("A@Example.com", firstname="Ada")])
    assert status == 200 and data.status == "COMPLETE"
    (created,) = data.results
    assert created.new is True and created.properties["email"] == "a@example.com"
    assert created.properties["firstname"] == "Ada" and created.properties["hs_object_id"] == created.id

    data, status, _ = upsert(contacts, [upsert_input("a@example.com", firstname="Grace")])
    assert status == 200 and data.results[0].new is False and data.results[0].id == created.id
    assert sandbox.stats()["upserts"]["contacts"] == {"a@example.com": 2}
    assert len(sandbox.records("contacts")) == 1


def test_create_answers_201_read_207_for_missing_ids_and_archive_204(contacts) -> None:
    inputs = [SimplePublicObjectBatchInputForCreate(properties={"email": f"p{i}@example.com"}) for i in range(2)]
    data, status, _ = contacts.create_with_http_info(
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs), _request_timeout=TIMEOUT
    )
    assert status == 201 and len(data.results) == 2

    read = BatchReadInputSimplePublicObjectId(
        id_property="email",
        properties=["email"],
        inputs=[SimplePublicObjectId(id="p0@example.com"), SimplePublicObjectId(id="ghost@example.com")],
    )
    data, status, _ = contacts.read_with_http_info(read, _request_timeout=TIMEOUT)
    assert status == 207 and data.num_errors == 1
    assert data.errors[0].category == "OBJECT_NOT_FOUND" and data.errors[0].context == {"ids": ["ghost@example.com"]}
    (found,) = data.results

    archive = BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=found.id)])
    _, status, _ = contacts.archive_with_http_info(archive, _request_timeout=TIMEOUT)
    assert status == 204
    data, status, _ = contacts.read_with_http_info(read, _request_timeout=TIMEOUT)
    assert data.results == [] and data.errors[0].context["ids"] == ["p0@example.com", "ghost@example.com"]


def test_creating_an_existing_email_is_a_409_conflict(contacts) -> None:
    body = BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[SimplePublicObjectBatchInputForCreate(properties={"email": "dup@example.com"})]
    )
    contacts.create(body, _request_timeout=TIMEOUT)
    with pytest.raises(ApiException) as refused:
        contacts.create(body, _request_timeout=TIMEOUT)
    assert refused.value.status == 409 and body_of(refused.value)["category"] == "CONFLICT"
    assert "already exists" in body_of(refused.value)["message"]


def test_bad_inputs_with_trace_ids_answer_207_and_the_good_ones_are_written(sandbox, contacts) -> None:
    inputs = [upsert_input(f"ok{i}@example.com", f"t{i}", firstname="Ok") for i in range(3)]
    inputs.insert(1, upsert_input("not-an-email", "t-bad", firstname="Bad"))
    data, status, _ = upsert(contacts, inputs)
    assert status == 207 and data.num_errors == 1
    (error,) = data.errors
    assert error.context["objectWriteTraceId"] == ["t-bad"]
    assert error.category == "VALIDATION_ERROR" and "Email address not-an-email is invalid" in error.message
    assert [d.code for d in error.errors] == ["INVALID_EMAIL"]
    assert sorted(r.properties["email"] for r in data.results) == [f"ok{i}@example.com" for i in range(3)]
    assert len(sandbox.records("contacts")) == 3


def test_a_bad_input_without_trace_ids_fails_the_whole_batch_and_writes_nothing(sandbox, contacts) -> None:
    inputs = [upsert_input("ok@example.com", firstname="Ok"), upsert_input("nope", firstname="Bad")]
    with pytest.raises(ApiException) as refused:
        upsert(contacts, inputs)
    body = body_of(refused.value)
    assert refused.value.status == 400 and body["status"] == "error" and body["correlationId"]
    assert body["errors"][0]["code"] == "INVALID_EMAIL" and "objectWriteTraceId" not in body.get("context", {})
    assert sandbox.records("contacts") == []
    assert sandbox.stats()["refused_batches"] == 1


def test_more_than_100_inputs_are_refused(contacts) -> None:
    with pytest.raises(ApiException) as refused:
        upsert(contacts, [upsert_input(f"u{i}@example.com") for i in range(101)])
    assert refused.value.status == 400
    assert body_of(refused.value)["message"].startswith("The maximum number of inputs supported in a batch is 100")


def test_duplicate_ids_are_refused_naming_them(contacts) -> None:
    with pytest.raises(ApiException) as refused:
        upsert(contacts, [upsert_input("same@example.com", "a"), upsert_input("SAME@example.com", "b")])
    body = body_of(refused.value)
    assert refused.value.status == 400 and body["message"].startswith("Duplicate IDs found in batch input: [")
    assert body["context"]["ids"] == ["SAME@example.com"]


def test_unknown_properties_and_read_only_values_are_refused(contacts) -> None:
    data, status, _ = upsert(
        contacts,
        [upsert_input("a@example.com", "t1", shoe_size="42"), upsert_input("b@example.com", "t2", createdate="x")],
    )
    assert status == 207
    codes = {e.context["objectWriteTraceId"][0]: e.errors[0].code for e in data.errors}
    assert codes == {"t1": "PROPERTY_DOESNT_EXIST", "t2": "READ_ONLY_VALUE"}


def test_upsert_by_a_non_unique_property_is_refused(client: HubSpot) -> None:
    from hubspot.crm.companies import ApiException as CompaniesApiException
    from hubspot.crm.companies import (
        BatchInputSimplePublicObjectBatchInputUpsert as CompanyUpsert,
    )
    from hubspot.crm.companies import (
        SimplePublicObjectBatchInputUpsert as CompanyInput,
    )

    body = CompanyUpsert(inputs=[CompanyInput(id="acme.com", id_property="domain", properties={"name": "Acme"})])
    with pytest.raises(CompaniesApiException) as refused:
        client.crm.companies.batch_api.upsert(body, _request_timeout=TIMEOUT)
    assert refused.value.status == 400
    assert body_of(refused.value)["message"] == "Unable to perform update/upsert by non-unique 0-2 property"


def test_properties_groups_options_and_invalid_option(sandbox, client: HubSpot, properties, contacts) -> None:
    groups = client.crm.properties.groups_api
    _, status, _ = groups.create_with_http_info(
        "contacts", PropertyGroupCreate(name="connector", label="Connector"), _request_timeout=TIMEOUT
    )
    assert status == 201
    with pytest.raises(PropertiesApiException) as exists:
        groups.create("contacts", PropertyGroupCreate(name="connector", label="Connector"), _request_timeout=TIMEOUT)
    assert exists.value.status == 409

    create = PropertyCreate(
        name="segments",
        label="Segments",
        type="enumeration",
        field_type="checkbox",
        group_name="connector",
        options=[OptionInput(label="VIP", value="vip", display_order=0, hidden=False)],
    )
    prop, status, _ = properties.create_with_http_info("contacts", create, _request_timeout=TIMEOUT)
    assert status == 201 and [o.value for o in prop.options] == ["vip"]
    with pytest.raises(PropertiesApiException) as duplicate:
        properties.create("contacts", create, _request_timeout=TIMEOUT)
    assert duplicate.value.status == 409

    # PATCH with options replaces the whole list.
    update = PropertyUpdate(
        options=[OptionInput(label="Churn risk", value="churn_risk", display_order=1, hidden=False)]
    )
    patched = properties.update("contacts", "segments", update, _request_timeout=TIMEOUT)
    assert [o.value for o in patched.options] == ["churn_risk"]
    assert [o.value for o in properties.get_by_name("contacts", "segments", _request_timeout=TIMEOUT).options] == [
        "churn_risk"
    ]

    data, status, _ = upsert(
        contacts,
        [
            upsert_input("a@example.com", "t1", segments="churn_risk"),
            upsert_input("b@example.com", "t2", segments="vip"),
        ],
    )
    assert status == 207
    (error,) = data.errors
    assert error.context["objectWriteTraceId"] == ["t2"] and error.errors[0].code == "INVALID_OPTION"
    assert sandbox.record("contacts", "a@example.com", "email")["properties"]["segments"] == "churn_risk"

    with pytest.raises(PropertiesApiException) as missing:
        properties.get_by_name("contacts", "nothing_here", _request_timeout=TIMEOUT)
    assert missing.value.status == 404


def test_checkbox_values_are_joined_by_semicolons_and_empty_clears(sandbox, properties, contacts) -> None:
    properties.create(
        "contacts",
        PropertyCreate(
            name="tags",
            label="Tags",
            type="enumeration",
            field_type="checkbox",
            group_name="contactinformation",
            options=[OptionInput(label=v, value=v) for v in ("a", "b", "c")],
        ),
        _request_timeout=TIMEOUT,
    )
    upsert(contacts, [upsert_input("a@example.com", "t", tags="a;c")])
    assert sandbox.record("contacts", "a@example.com", "email")["properties"]["tags"] == "a;c"
    upsert(contacts, [upsert_input("a@example.com", "t", tags="")])
    assert sandbox.record("contacts", "a@example.com", "email")["properties"]["tags"] == ""


def test_search_finds_by_equality(contacts, client: HubSpot) -> None:
    upsert(
        contacts, [upsert_input(f"s{i}@example.com", f"t{i}", firstname="Sam" if i % 2 else "Kim") for i in range(6)]
    )
    search = client.crm.contacts.search_api
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Sam"}]}],
        properties=["email"],
        limit=10,
    )
    found = search.do_search(request, _request_timeout=TIMEOUT)
    assert found.total == 3 and {r.properties["email"] for r in found.results} == {
        "s1@example.com",
        "s3@example.com",
        "s5@example.com",
    }


def test_wrong_token_is_401_and_a_read_only_token_cannot_write(sandbox: HubSpotSandbox) -> None:
    wrong = HubSpot(access_token="wrong", host=sandbox.url, retry=False).crm.contacts.batch_api
    with pytest.raises(ApiException) as refused:
        upsert(wrong, [upsert_input("a@example.com")])
    assert refused.value.status == 401 and body_of(refused.value)["category"] == "INVALID_AUTHENTICATION"

    readonly = HubSpot(access_token="readonly-token", host=sandbox.url, retry=False).crm.contacts.batch_api
    with pytest.raises(ApiException) as forbidden:
        upsert(readonly, [upsert_input("a@example.com")])
    assert forbidden.value.status == 403 and body_of(forbidden.value)["category"] == "MISSING_SCOPES"


def test_rate_limit_answers_429_with_hubspot_headers(sandbox: HubSpotSandbox, contacts) -> None:
    sandbox.set_rate_limit((3, 1.0))
    _, _, headers = upsert(contacts, [upsert_input("a@example.com")])
    assert headers["X-HubSpot-RateLimit-Max"] == "3" and headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
    upsert(contacts, [upsert_input("a@example.com")])
    upsert(contacts, [upsert_input("a@example.com")])
    with pytest.raises(ApiException) as limited:
        upsert(contacts, [upsert_input("a@example.com")])
    body = body_of(limited.value)
    assert limited.value.status == 429
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in limited.value.headers
    assert sandbox.stats()["rate_limited"] == 1
    time.sleep(1.05)  # the window rolls on
    _, status, _ = upsert(contacts, [upsert_input("a@example.com")])
    assert status == 200


def test_faults_fail_before_writing_except_5xx_after_write(sandbox: HubSpotSandbox, contacts) -> None:
    sandbox.set_faults(FaultPlan(rate_429=1.0))
    with pytest.raises(ApiException) as limited:
        upsert(contacts, [upsert_input("a@example.com")])
    assert limited.value.status == 429 and sandbox.records("contacts") == []

    sandbox.set_faults(FaultPlan(rate_5xx=1.0))
    with pytest.raises(ApiException) as failed:
        upsert(contacts, [upsert_input("a@example.com")])
    assert failed.value.status >= 500 and sandbox.records("contacts") == []

    sandbox.set_faults(FaultPlan(rate_drop=1.0))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        upsert(contacts, [upsert_input("a@example.com")])
    assert sandbox.records("contacts") == []

    sandbox.set_faults(FaultPlan(rate_5xx_after_write=1.0))
    with pytest.raises(ApiException) as after:
        upsert(contacts, [upsert_input("a@example.com")])
    assert after.value.status == 502 and len(sandbox.records("contacts")) == 1

    sandbox.set_faults(FaultPlan(rate_timeout=1.0, timeout_s=0.6))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        contacts.upsert(
            BatchInputSimplePublicObjectBatchInputUpsert(inputs=[upsert_input("b@example.com")]),
            _request_timeout=(1, 0.2),
        )
    sandbox.set_faults()
    assert sandbox.stats()["faults"] == {"429": 1, "5xx": 1, "drop": 1, "5xx_after_write": 1, "timeout": 1}
    # A timed-out request was applied: the client cannot know, so a retry must be harmless.
    assert sandbox.record("contacts", "b@example.com", "email") is not None


def test_faults_are_reproducible_with_a_seed() -> None:
    def outcomes() -> list[int]:
        with HubSpotSandbox(token=None, faults=FaultPlan(rate_429=0.3, rate_5xx=0.2, seed=7)) as sandbox:
            api = HubSpot(access_token="anything", host=sandbox.url, retry=False).crm.contacts.batch_api
            statuses = []
            for i in range(20):
                try:
                    statuses.append(upsert(api, [upsert_input(f"u{i}@example.com")])[1])
                except ApiException as exc:
                    statuses.append(exc.status)
            return statuses

    first = outcomes()
    assert first == outcomes() and 200 in first and 429 in first


def test_admin_endpoints_set_faults_show_stats_and_records_and_reset(sandbox: HubSpotSandbox, contacts) -> None:
    http = urllib3.PoolManager()
    upsert(contacts, [upsert_input("a@example.com", firstname="Ada")])
    stats = http.request("GET", f"{sandbox.url}/__sandbox/stats").json()
    assert stats["requests"]["POST /crm/v3/objects/contacts/batch/upsert"] == 1
    assert stats["upserts"]["contacts"] == {"a@example.com": 1} and stats["created"] == {"contacts": 1}
    records = http.request("GET", f"{sandbox.url}/__sandbox/records/contacts").json()["results"]
    assert [r["properties"]["firstname"] for r in records] == ["Ada"]

    answer = http.request("POST", f"{sandbox.url}/__sandbox/faults", json={"rate_5xx": 1.0, "match": "/batch/"})
    assert answer.status == 200 and answer.json()["rate_5xx"] == 1.0
    with pytest.raises(ApiException):
        upsert(contacts, [upsert_input("b@example.com")])
    http.request("POST", f"{sandbox.url}/__sandbox/faults", json=None)
    assert http.request("POST", f"{sandbox.url}/__sandbox/faults", json={"nonsense": 1}).status == 400

    assert http.request("POST", f"{sandbox.url}/__sandbox/reset").status == 204
    assert sandbox.records("contacts") == [] and sandbox.stats()["requests"] == {}


def test_keep_alive_requests_are_fast(contacts) -> None:
    """TCP_NODELAY and one write per answer: without them each request waits ~40 ms for a delayed ACK."""
    upsert(contacts, [upsert_input("warm@example.com")])
    started = time.perf_counter()
    for i in range(50):
        upsert(contacts, [upsert_input(f"u{i}@example.com")])
    assert time.perf_counter() - started < 1.0
