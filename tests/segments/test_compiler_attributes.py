"""Attribute and built-in field leaves, and groups, compiled and run on SQLite and PostgreSQL.

Each test stores values of deliberately mixed types under one attribute and checks, operator by operator, who
matches: a value of another type than the condition's, a missing value and JSON null never match (also for the
negative operators); nothing raises in the database whatever is stored.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.segments.factories import NOW, Data


@pytest.fixture
def data(database) -> Data:
    return Data(database)


def attr(name: str, operator: str, value=None, **extra) -> dict:
    leaf = {"type": "attribute", "name": name, "operator": operator, **extra}
    if value is not None:
        leaf["value"] = value
    return leaf


def people(data: Data, name: str, values: dict[str, object]) -> dict[str, int]:
    """One user per label, holding ``values[label]`` under ``name`` (``...`` = no such attribute)."""
    return {
        label: data.user(attributes={} if value is ... else {name: value}, email=f"{label}@example.com")
        for label, value in values.items()
    }


def check(data: Data, ids: dict[str, int], cases: list[tuple[dict, set[str]]], subject_type: str = "user") -> None:
    names = {v: k for k, v in ids.items()}
    for tree, expected in cases:
        got = {names.get(i, i) for i in data.matching(tree, subject_type)}
        assert got == expected, tree


def test_string_operators_compare_strings_only_and_case_sensitively(data):
    ids = people(
        data,
        "plan",
        {"pro": "pro", "Pro": "Pro", "pro_plan": "pro plan", "number": 5, "true": True, "null": None, "missing": ...},
    )
    strings = {"pro", "Pro", "pro_plan"}
    check(
        data,
        ids,
        [
            (attr("plan", "eq", "pro"), {"pro"}),
            (attr("plan", "ne", "pro"), {"Pro", "pro_plan"}),
            (attr("plan", "contains", "pro"), {"pro", "pro_plan"}),
            (attr("plan", "not_contains", "pro"), {"Pro"}),
            (attr("plan", "starts_with", "Pr"), {"Pro"}),
            (attr("plan", "ends_with", "plan"), {"pro_plan"}),
            (attr("plan", "ends_with", "pro"), {"pro"}),
            (attr("plan", "starts_with", "plan"), set()),
            (attr("plan", "in", ["pro", "Pro", "5"]), {"pro", "Pro"}),
            (attr("plan", "not_in", ["pro"]), {"Pro", "pro_plan"}),
            (attr("plan", "eq", "5"), set()),
            (attr("plan", "ne", "zzz"), strings),
            (attr("plan", "exists"), strings | {"number", "true"}),
            (attr("plan", "not_exists"), {"null", "missing"}),
        ],
    )


def test_negative_operators_leave_out_subjects_without_the_value_unless_wrapped_in_none(data):
    ids = people(data, "plan", {"pro": "pro", "free": "free", "missing": ..., "number": 1})
    check(
        data,
        ids,
        [
            (attr("plan", "ne", "pro"), {"free"}),
            ({"type": "none", "children": [attr("plan", "eq", "pro")]}, {"free", "missing", "number"}),
            ({"type": "none", "children": [attr("plan", "ne", "pro")]}, {"pro", "missing", "number"}),
        ],
    )


def test_like_metacharacters_and_backslashes_are_plain_characters(data):
    ids = people(
        data,
        "code",
        {"percent": "50% off", "underscore": "a_b", "plain": "axb", "backslash": "back\\slash", "both": "%_\\"},
    )
    check(
        data,
        ids,
        [
            (attr("code", "contains", "%"), {"percent", "both"}),
            (attr("code", "contains", "_"), {"underscore", "both"}),
            (attr("code", "contains", "\\"), {"backslash", "both"}),
            (attr("code", "starts_with", "a_"), {"underscore"}),
            (attr("code", "starts_with", "%"), {"both"}),
            (attr("code", "ends_with", "_b"), {"underscore"}),
            (attr("code", "ends_with", "\\slash"), {"backslash"}),
            (attr("code", "not_contains", "%"), {"underscore", "plain", "backslash"}),
            (attr("code", "eq", "a_b"), {"underscore"}),
        ],
    )


def test_unicode_text_is_compared_by_characters(data):
    ids = people(data, "name", {"accents": "ünïcødé", "emoji": "go 😀!", "ascii": "unicode", "cjk": "東京"})
    check(
        data,
        ids,
        [
            (attr("name", "eq", "ünïcødé"), {"accents"}),
            (attr("name", "contains", "ï"), {"accents"}),
            (attr("name", "starts_with", "ün"), {"accents"}),
            (attr("name", "ends_with", "dé"), {"accents"}),
            (attr("name", "ends_with", "😀!"), {"emoji"}),
            (attr("name", "contains", "京"), {"cjk"}),
            (attr("name", "ends_with", "x東京"), set()),
            (attr("name", "in", ["東京", "unicode"]), {"cjk", "ascii"}),
        ],
    )


def test_unicode_attribute_names_are_addressed(data):
    ids = {"a": data.user(attributes={"größe": 3, "名前": "太郎", "a.b": 1, "a b": 2})}
    check(
        data,
        ids,
        [
            (attr("größe", "eq", 3), {"a"}),
            (attr("名前", "eq", "太郎"), {"a"}),
            (attr("a.b", "eq", 1), {"a"}),
            (attr("a b", "eq", 2), {"a"}),
            (attr("a", "exists"), set()),
        ],
    )


def test_numbers_compare_as_numbers_and_other_types_never_match(data):
    ids = people(
        data,
        "ltv",
        {
            "five": 5,
            "five_and_half": 5.5,
            "hundred": 100,
            "negative": -3,
            "tenth": 0.1,
            "zero": 0,
            "text": "abc",
            "numeric_text": "10",
            "true": True,
            "list": [1, 2],
            "object": {"a": 1},
            "missing": ...,
        },
    )
    numbers = {"five", "five_and_half", "hundred", "negative", "tenth", "zero"}
    check(
        data,
        ids,
        [
            (attr("ltv", "gt", 5), {"five_and_half", "hundred"}),
            (attr("ltv", "gte", 5), {"five", "five_and_half", "hundred"}),
            (attr("ltv", "lt", 0), {"negative"}),
            (attr("ltv", "lte", 0.1), {"negative", "tenth", "zero"}),
            (attr("ltv", "between", [0, 5.5]), {"five", "five_and_half", "tenth", "zero"}),
            (attr("ltv", "eq", 5), {"five"}),
            (attr("ltv", "eq", 5.0), {"five"}),
            (attr("ltv", "eq", 0.1), {"tenth"}),
            (attr("ltv", "eq", 1), set()),
            (attr("ltv", "ne", 5), numbers - {"five"}),
            (attr("ltv", "in", [5, 100, 7]), {"five", "hundred"}),
            (attr("ltv", "not_in", [5, 0.1]), numbers - {"five", "tenth"}),
            (attr("ltv", "gt", 9), {"hundred"}),
            (attr("ltv", "lt", 1e15), numbers),
            ({"type": "none", "children": [attr("ltv", "gt", 5)]}, set(ids) - {"five_and_half", "hundred"}),
        ],
    )


def test_booleans_are_json_true_and_false_only(data):
    ids = people(data, "flag", {"true": True, "false": False, "text": "true", "one": 1, "zero": 0, "missing": ...})
    check(
        data,
        ids,
        [
            (attr("flag", "eq", True), {"true"}),
            (attr("flag", "eq", False), {"false"}),
            (attr("flag", "ne", True), {"false"}),
            (attr("flag", "ne", False), {"true"}),
            (attr("flag", "eq", "true"), {"text"}),
            (attr("flag", "eq", 1), {"one"}),
        ],
    )


def test_dates_compare_as_instants_whatever_their_offset(data):
    ids = people(
        data,
        "seen",
        {
            "day_before": "2026-03-14T10:00:00Z",
            "offset": "2026-03-15T11:30:00+01:00",  # 10:30 UTC: text order would put it after 11:00Z
            "date_only": "2026-03-10",
            "naive": "2026-03-15 09:00",
            "future_millis": "2026-03-15 12:00:00.250",
            "week_edge": "2026-03-08T12:00:00Z",
            "not_a_day": "2026-02-30",
            "words": "yesterday",
            "number": 5,
            "missing": ...,
        },
    )
    dated = {"day_before", "offset", "date_only", "naive", "future_millis", "week_edge"}
    check(
        data,
        ids,
        [
            (attr("seen", "before", "2026-03-15T11:00:00Z"), dated - {"future_millis"}),
            (attr("seen", "after", "2026-03-15T10:00:00Z"), {"offset", "future_millis"}),
            (attr("seen", "after", "2026-03-15T12:00:00.249Z"), {"future_millis"}),
            # Milliseconds are the precision: finer digits of a condition's date are dropped.
            (attr("seen", "after", "2026-03-15T12:00:00.2504Z"), set()),
            (attr("seen", "gte", "2026-03-15T12:00:00.2509Z", value_type="date"), {"future_millis"}),
            (attr("seen", "lt", "2026-03-15T10:30:00Z", value_type="date"), dated - {"offset", "future_millis"}),
            (attr("seen", "lte", "2026-03-15T10:30:00Z", value_type="date"), dated - {"future_millis"}),
            (attr("seen", "gte", "2026-03-15T11:30:00+01:00", value_type="date"), {"offset", "future_millis"}),
            (attr("seen", "between", ["2026-03-10", "2026-03-14T10:00:00Z"]), {"date_only", "day_before"}),
            # within_last: now - 1 day <= value <= now (the inclusive edge, and a value from the future is out).
            (attr("seen", "within_last", {"amount": 1, "unit": "days"}), {"offset", "naive"}),
            (attr("seen", "within_last", {"amount": 7, "unit": "days"}), dated - {"future_millis"}),
            (attr("seen", "within_last", {"amount": 10079, "unit": "minutes"}), dated - {"future_millis", "week_edge"}),
            (attr("seen", "more_than_ago", {"amount": 5, "unit": "days"}), {"date_only", "week_edge"}),
            (attr("seen", "more_than_ago", {"amount": 7, "unit": "days"}), set()),
            (attr("seen", "more_than_ago", {"amount": 90, "unit": "minutes"}), dated - {"offset", "future_millis"}),
            (attr("seen", "eq", "2026-02-30"), {"not_a_day"}),
            ({"type": "none", "children": [attr("seen", "before", "2030-01-01")]}, set(ids) - dated),
        ],
    )


def test_relative_dates_slide_with_now(data):
    ann = data.user(attributes={"trial_started": "2026-03-10T00:00:00Z"})
    recent = attr("trial_started", "within_last", {"amount": 7, "unit": "days"})
    assert data.matching(recent, now=NOW) == {ann}
    assert data.matching(recent, now=NOW + timedelta(days=1, hours=12)) == {ann}
    assert data.matching(recent, now=NOW + timedelta(days=2)) == set()


def test_leap_days_and_the_calendar_decide_what_is_a_date(data):
    ids = people(
        data,
        "d",
        {"leap": "2024-02-29", "century_leap": "2000-02-29T12:00", "no_leap": "1900-02-29", "april31": "2026-04-31"},
    )
    check(data, ids, [(attr("d", "before", "2030-01-01"), {"leap", "century_leap"})])


def test_built_in_user_fields(data):
    ann = data.user(email="ann@acme.com", external_id="crm-1", created_at=NOW - timedelta(days=2))
    bob = data.user(email="bob@globex.com", external_id="crm-2", created_at=NOW - timedelta(days=10))
    nobody = data.user(email=None, created_at=NOW)
    ids = {"ann": ann, "bob": bob, "nobody": nobody}

    def field(name, operator, value=None):
        leaf = {"type": "attribute", "field": name, "operator": operator}
        return leaf if value is None else {**leaf, "value": value}

    check(
        data,
        ids,
        [
            (field("email", "ends_with", "@ACME.com"), {"ann"}),
            (field("email", "ne", "ann@acme.com"), {"bob"}),
            (field("email", "exists"), {"ann", "bob"}),
            (field("email", "not_exists"), {"nobody"}),
            (field("external_id", "in", ["crm-2", "crm-9"]), {"bob"}),
            (field("created_at", "within_last", {"amount": 7, "unit": "days"}), {"ann", "nobody"}),
            (field("created_at", "more_than_ago", {"amount": 7, "unit": "days"}), {"bob"}),
            (field("created_at", "before", "2026-03-13T00:00:00Z"), {"bob"}),
            (field("created_at", "between", ["2026-03-13T00:00:00Z", "2026-03-15T12:00:00Z"]), {"ann", "nobody"}),
            # A custom attribute named like a field is a different thing.
            (attr("email", "exists"), set()),
        ],
    )


def test_built_in_account_fields(data):
    acme = data.account(domain="acme.com", name="Acme Inc", external_id="A1")
    globex = data.account(domain="globex.com", name=None, external_id="G1")
    ids = {"acme": acme, "globex": globex}

    def field(name, operator, value=None):
        leaf = {"type": "attribute", "field": name, "operator": operator}
        return leaf if value is None else {**leaf, "value": value}

    check(
        data,
        ids,
        [
            (field("domain", "eq", "ACME.com"), {"acme"}),
            (field("name", "starts_with", "Acme"), {"acme"}),
            (field("name", "starts_with", "acme"), set()),
            (field("name", "not_exists"), {"globex"}),
            (field("external_id", "eq", "G1"), {"globex"}),
            (field("created_at", "within_last", {"amount": 1, "unit": "minutes"}), {"acme", "globex"}),
        ],
        subject_type="account",
    )


def test_attribute_of_account_matches_when_any_account_of_the_user_has_it(data):
    pro = data.account(attributes={"plan": "pro"}, domain="pro.com")
    free = data.account(attributes={"plan": "free"})
    bare = data.account()
    both = data.user(accounts=[pro, free])
    only_free = data.user(accounts=[free])
    only_bare = data.user(accounts=[bare])
    alone = data.user(attributes={"plan": "pro"})
    ids = {"both": both, "only_free": only_free, "only_bare": only_bare, "alone": alone}
    check(
        data,
        ids,
        [
            (attr("plan", "eq", "pro", of="account"), {"both"}),
            (attr("plan", "ne", "pro", of="account"), {"both", "only_free"}),
            (attr("plan", "exists", of="account"), {"both", "only_free"}),
            (attr("plan", "not_exists", of="account"), {"only_bare"}),
            ({"type": "attribute", "field": "domain", "of": "account", "operator": "eq", "value": "pro.com"}, {"both"}),
            (
                {"type": "none", "children": [attr("plan", "eq", "pro", of="account")]},
                {"only_free", "only_bare", "alone"},
            ),
        ],
    )


def test_empty_groups(data):
    ann, bob = data.user(), data.user()
    everyone = {ann, bob}
    assert data.matching({"type": "all", "children": []}) == everyone
    assert data.matching({"type": "any", "children": []}) == set()
    assert data.matching({"type": "none", "children": []}) == everyone
    assert data.matching({"type": "none", "children": [{"type": "all", "children": []}]}) == set()
    assert data.matching({"type": "all", "children": [{"type": "any", "children": []}]}) == set()


def test_groups_combine_children(data):
    ids = {
        "pro_vip": data.user(attributes={"plan": "pro"}, tags=["vip"]),
        "pro": data.user(attributes={"plan": "pro"}),
        "vip": data.user(tags=["vip"]),
        "none": data.user(),
    }
    pro, vip = attr("plan", "eq", "pro"), {"type": "tag", "value": "vip"}
    check(
        data,
        ids,
        [
            ({"type": "all", "children": [pro, vip]}, {"pro_vip"}),
            ({"type": "any", "children": [pro, vip]}, {"pro_vip", "pro", "vip"}),
            ({"type": "none", "children": [pro, vip]}, {"none"}),
            ({"type": "any", "children": [{"type": "none", "children": [pro]}, vip]}, {"pro_vip", "vip", "none"}),
        ],
    )


def test_twenty_levels_of_alternating_groups_compile_and_run(data):
    ann = data.user(attributes={"plan": "pro"})
    data.user(attributes={"plan": "free"})
    tree = attr("plan", "eq", "pro")
    for level in range(19):
        tree = {"type": ("all", "any")[level % 2], "children": [tree]}
    assert data.matching(tree) == {ann}
    negated = attr("plan", "eq", "pro")
    for _ in range(19):
        negated = {"type": "none", "children": [negated]}  # 19 negations: an odd number
    assert data.matching(negated) == set(data.matching({"type": "all", "children": []})) - {ann}
