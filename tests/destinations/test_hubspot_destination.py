"""The HubSpot destination, through the real client, against the sandbox."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hubspot import HubSpot
from hubspot.crm.properties import OptionInput, PropertyUpdate

from connector.destinations.base import ConfigError, FieldSpec, OutboundRecord, TransientError, WritePlan
from connector.destinations.hubspot import HubSpotDestination
from connector.destinations.hubspot_wire import option_value, render_value
from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox

TOKEN = "sandbox-token"
CONTACTS = WritePlan("contacts", "email", (FieldSpec("firstname"), FieldSpec("lastname")))


@pytest.fixture
def destination(sandbox: HubSpotSandbox) -> Iterator[HubSpotDestination]:
    destination = HubSpotDestination({"access_token": TOKEN, "base_url": sandbox.url, "timeout_s": (1, 2)})
    yield destination
    destination.close()


def people(count: int, prefix: str = "p", **properties: str) -> list[OutboundRecord]:
    return [
        OutboundRecord(f"{prefix}{i}", f"{prefix}{i}@example.com", {"firstname": f"First{i}", **properties})
        for i in range(count)
    ]


def test_one_bad_email_among_99_good_is_isolated_when_hubspot_refuses_the_whole_batch(sandbox, destination) -> None:
    sandbox.whole_batch_errors = True  # every bad input fails its whole batch, trace ids or not
    batch = people(99)
    batch.insert(37, OutboundRecord("bad", "bad-email", {"firstname": "Bad"}))

    results = {r.key: r for r in destination.write(CONTACTS, batch)}

    assert len(results) == 100
    assert results["bad"].status == "rejected" and "Email address bad-email is invalid" in results["bad"].reason
    assert all(results[r.key].status == "ok" and results[r.key].remote_id for r in batch if r.key != "bad")
    assert len(sandbox.records("contacts")) == 99
    requests = sandbox.stats()["requests"]["POST /crm/v3/objects/contacts/batch/upsert"]
    assert requests <= 1 + 2 * 7  # halving: two requests per level, about log2(100) levels
    assert all(count == 1 for count in sandbox.stats()["upserts"]["contacts"].values())  # nothing written twice


def test_a_207_rejects_only_the_named_records_with_hubspots_message(sandbox, destination) -> None:
    batch = [*people(3), OutboundRecord("bad", "nope", {"firstname": "X"}), OutboundRecord("odd", "o@x.io", {"x": 1})]
    results = {r.key: r for r in destination.write(CONTACTS, batch)}
    assert results["bad"].reason == "Email address nope is invalid (INVALID_EMAIL)"
    assert results["odd"].reason == 'Property "x" does not exist (PROPERTY_DOESNT_EXIST)'
    assert [results[f"p{i}"].status for i in range(3)] == ["ok"] * 3
    assert sandbox.stats()["requests"]["POST /crm/v3/objects/contacts/batch/upsert"] == 1


def test_remote_ids_belong_to_their_records_whatever_order_hubspot_answers_in(sandbox, destination) -> None:
    batch = [OutboundRecord(f"k{i}", f"Mixed.Case{i}@Example.com", {"firstname": str(i)}) for i in range(40)]
    for result in destination.write(CONTACTS, batch):
        record = sandbox.record("contacts", result.remote_id)
        assert record["properties"]["firstname"] == result.key.removeprefix("k")


def test_properties_are_sent_as_strings(sandbox, destination) -> None:
    plan = WritePlan("contacts", "email", (FieldSpec("score", "number"), FieldSpec("active", "bool")))
    destination.prepare(plan)
    destination.write(plan, [OutboundRecord("1", "a@example.com", {"score": 2.0, "active": True, "firstname": None})])
    stored = sandbox.record("contacts", "a@example.com", "email")["properties"]
    assert (stored["score"], stored["active"], stored["firstname"]) == ("2", "true", "")
    assert render_value(1.5) == "1.5" and render_value(False) == "false" and render_value(None) == ""


def test_multi_select_property_is_created_then_extended_keeping_existing_options(sandbox, destination) -> None:
    segments = FieldSpec("segments", "multi_select", "Segments", ("VIP", "Trial"))
    destination.prepare(WritePlan("contacts", "email", (segments,)))
    prop = sandbox.property("contacts", "segments")
    assert (prop["type"], prop["fieldType"], prop["groupName"]) == ("enumeration", "checkbox", "connector")
    assert [(o["label"], o["value"]) for o in prop["options"]] == [("VIP", "VIP"), ("Trial", "Trial")]

    # Someone adds an option by hand in HubSpot; then a new segment appears.
    properties = HubSpot(access_token=TOKEN, host=sandbox.url).crm.properties.core_api
    by_hand = [OptionInput(label=o["label"], value=o["value"]) for o in prop["options"]]
    properties.update(
        "contacts", "segments", PropertyUpdate(options=[*by_hand, OptionInput(label="Manual", value="manual")])
    )
    grown = FieldSpec("segments", "multi_select", "Segments", ("VIP", "Trial", "Churn risk; EU"))
    plan = WritePlan("contacts", "email", (grown,))
    destination.prepare(plan)
    options = sandbox.property("contacts", "segments")["options"]
    assert [(o["label"], o["value"]) for o in options] == [
        ("VIP", "VIP"),
        ("Trial", "Trial"),
        ("Manual", "manual"),
        ("Churn risk; EU", "Churn risk%3B EU"),
    ]

    value = destination.render_multi_select(["VIP", "Churn risk; EU", "VIP"])
    assert value == "Churn risk%3B EU;VIP" and option_value("100%") == "100%25"
    (result,) = destination.write(plan, [OutboundRecord("1", "a@example.com", {"segments": value})])
    assert result.status == "ok"
    assert sandbox.record("contacts", "a@example.com", "email")["properties"]["segments"] == value

    before = sandbox.stats()["requests"]
    destination.prepare(plan)  # nothing missing: the group exists, the property is read, nothing else
    after = sandbox.stats()["requests"]
    assert sum(after.values()) - sum(before.values()) == 2
    assert after["PATCH /crm/v3/properties/contacts/segments"] == before["PATCH /crm/v3/properties/contacts/segments"]


def test_update_mode_changes_only_records_hubspot_has(sandbox, destination) -> None:
    destination.write(CONTACTS, people(2))
    update = WritePlan("contacts", "email", CONTACTS.fields, mode="update")
    batch = [
        OutboundRecord("p0", "P0@example.com", {"lastname": "Lovelace"}),
        OutboundRecord("new", "new@example.com", {"lastname": "Hopper"}),
    ]
    results = {r.key: r for r in destination.write(update, batch)}
    assert results["p0"].status == "ok" and results["p0"].remote_id
    assert results["new"].status == "rejected" and results["new"].reason == "not found in HubSpot (update mode)"
    assert sandbox.record("contacts", "p0@example.com", "email")["properties"]["lastname"] == "Lovelace"
    assert sandbox.record("contacts", "new@example.com", "email") is None


def test_a_repeat_after_a_502_that_was_applied_is_harmless(sandbox, destination) -> None:
    batch = people(10)
    sandbox.set_faults(FaultPlan(rate_5xx_after_write=1.0))
    with pytest.raises(TransientError):
        destination.write(CONTACTS, batch)
    sandbox.set_faults()
    assert all(r.status == "ok" for r in destination.write(CONTACTS, batch))
    assert len(sandbox.records("contacts")) == 10
    assert set(sandbox.stats()["upserts"]["contacts"].values()) == {2}


def test_rate_limits_become_transient_errors_with_a_wait(sandbox, destination) -> None:
    sandbox.set_rate_limit((1, 5.0))
    destination.write(CONTACTS, people(1))
    with pytest.raises(TransientError) as interval:
        destination.write(CONTACTS, people(1))
    assert interval.value.retry_after == 5.0  # the window, from X-HubSpot-RateLimit-Interval-Milliseconds
    sandbox.send_retry_after = True
    with pytest.raises(TransientError) as told:
        destination.write(CONTACTS, people(1))
    assert 0 < told.value.retry_after <= 5


def test_timeouts_and_dropped_connections_are_transient(sandbox) -> None:
    destination = HubSpotDestination({"access_token": TOKEN, "base_url": sandbox.url, "timeout_s": (1, 0.2)})
    sandbox.set_faults(FaultPlan(rate_timeout=1.0, timeout_s=0.5))
    with pytest.raises(TransientError, match="timed out"):
        destination.write(CONTACTS, people(1))
    sandbox.set_faults(FaultPlan(rate_drop=1.0))
    with pytest.raises(TransientError):
        destination.check()


def test_bad_tokens_and_missing_scopes_are_config_errors(sandbox) -> None:
    with pytest.raises(ConfigError, match="401"):
        HubSpotDestination({"access_token": "wrong", "base_url": sandbox.url}).write(CONTACTS, people(1))
    readonly = HubSpotDestination({"access_token": "readonly-token", "base_url": sandbox.url})
    readonly.check()  # reading is allowed
    with pytest.raises(ConfigError, match="403"):
        readonly.write(CONTACTS, people(1))


def test_companies_are_matched_by_a_unique_property_prepare_creates(sandbox, destination) -> None:
    plan = WritePlan("companies", "company_key", (FieldSpec("name"), FieldSpec("company_key")))
    destination.prepare(plan)
    assert sandbox.property("companies", "company_key")["hasUniqueValue"] is True
    batch = [OutboundRecord("a", "acme", {"name": "Acme"}), OutboundRecord("b", "globex", {"name": "Globex"})]
    assert all(r.status == "ok" for r in destination.write(plan, batch))
    assert all(r.status == "ok" for r in destination.write(plan, batch))
    assert len(sandbox.records("companies")) == 2

    with pytest.raises(ConfigError, match="does not have unique values"):
        destination.prepare(WritePlan("companies", "domain", ()))
    with pytest.raises(ConfigError, match="cannot write 'deals'"):
        destination.prepare(WritePlan("deals", "dealname", ()))


def test_read_only_properties_are_refused_when_preparing(destination) -> None:
    with pytest.raises(ConfigError, match="read-only"):
        destination.prepare(WritePlan("contacts", "email", (FieldSpec("createdate", "date"),)))


def test_records_without_identity_or_twice_in_a_batch_are_rejected_without_sending(sandbox, destination) -> None:
    batch = [*people(2), OutboundRecord("again", "P1@example.com", {}), OutboundRecord("none", "  ", {})]
    results = {r.key: r for r in destination.write(CONTACTS, batch)}
    assert results["again"].status == "rejected" and "twice" in results["again"].reason
    assert results["none"].status == "rejected" and "no value for email" in results["none"].reason
    assert results["p1"].status == "ok" and len(sandbox.records("contacts")) == 2


def test_remove_archives_by_identity(sandbox, destination) -> None:
    written = {r.key: r.remote_id for r in destination.write(CONTACTS, people(3))}
    results = {r.key: r for r in destination.remove(CONTACTS, [*people(2), OutboundRecord("x", "x@example.com")])}
    assert results["p0"].remote_id == written["p0"] and results["x"].status == "ok"
    assert [r["properties"]["email"] for r in sandbox.records("contacts")] == ["p2@example.com"]


def test_rate_limit_comes_from_the_config_and_a_bound_limiter_sees_every_request(sandbox) -> None:
    destination = HubSpotDestination({"access_token": TOKEN, "base_url": sandbox.url, "rate_limit_requests": 190})
    assert destination.rate_limit == (190, 10.0)
    assert HubSpotDestination({"access_token": TOKEN}).rate_limit == (100, 10.0)
    tokens = []
    destination.bind_rate_limiter(lambda: tokens.append(1))
    destination.prepare(CONTACTS)
    destination.write(WritePlan("contacts", "email", mode="update"), people(2))
    assert len(tokens) == sum(sandbox.stats()["requests"].values())


def test_the_token_never_shows(sandbox, caplog: pytest.LogCaptureFixture) -> None:
    secret = "pat-na1-very-secret-token"
    quiet = HubSpotSandbox(token=secret).start()
    try:
        caplog.set_level(logging.DEBUG)
        destination = HubSpotDestination({"access_token": secret, "base_url": quiet.url})
        destination.check()
        destination.prepare(CONTACTS)
        destination.write(CONTACTS, [*people(2), OutboundRecord("bad", "bad", {})])
        errors = []
        for config in ({"access_token": secret + "-wrong", "base_url": quiet.url},):
            try:
                HubSpotDestination(config).write(CONTACTS, people(1))
            except ConfigError as exc:
                errors.append(exc)
        quiet.set_faults(FaultPlan(rate_429=1.0))
        try:
            destination.write(CONTACTS, people(1))
        except TransientError as exc:
            errors.append(exc)
        shown = [
            repr(destination),
            str(destination.config),
            repr(destination.config),
            destination.config.model_dump_json(),
            str(destination.config.model_dump()),
            caplog.text,
            *(f"{e!s} {e!r} {e.__cause__!s}" for e in errors),
        ]
        assert len(errors) == 2
        assert not [text for text in shown if secret in text]
    finally:
        quiet.stop()


def test_destinations_share_a_budget_exactly_when_they_hold_the_same_token() -> None:
    def key(token: str, base_url: str | None = "http://127.0.0.1:8010") -> str:
        return HubSpotDestination({"access_token": token, "base_url": base_url}).budget_key

    assert key("pat-na1-one") == key("pat-na1-one")
    assert key("pat-na1-one") != key("pat-na1-two")
    assert key("pat-na1-one") != key("pat-na1-one", "http://127.0.0.1:8011")
    assert key("pat-na1-one", None).startswith("hubspot:api.hubapi.com:")
    # Stored beside the shared window: never the token itself.
    assert "pat-na1-one" not in key("pat-na1-one") and "://" not in key("pat-na1-one")
