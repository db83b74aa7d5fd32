"""Mappings: what they accept, how a subject row becomes a payload, and what the payload hash depends on."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.destinations.file import FileDestination
from connector.destinations.hubspot import HubSpotDestination
from connector.syncs.mapping import InvalidRecord, Mapping, Renderer, convert, parse_mappings, payload_hash


@pytest.fixture
def hubspot() -> HubSpotDestination:
    return HubSpotDestination({"access_token": "not-used", "base_url": "http://127.0.0.1:9"})


def row(**values):
    values.setdefault("id", 1)
    values.setdefault("attributes", {})
    values.setdefault("segments", None)
    return SimpleNamespace(**values)


def renderer(destination, *mappings, identity="email") -> Renderer:
    return Renderer(parse_mappings(mappings), identity, destination)


EMAIL = {"source": {"kind": "field", "name": "email"}, "destination": "email"}


def test_segments_mapping_is_written_as_multi_select_unless_told_otherwise():
    mapping = Mapping.model_validate({"source": {"kind": "computed", "name": "Segments"}, "destination": "segs"})
    assert mapping.as_ == "multi_select"
    assert mapping.stored() == {
        "source": {"kind": "computed", "name": "Segments"},
        "destination": "segs",
        "as": "multi_select",
    }


@pytest.mark.parametrize(
    "document, field",
    [
        ({"source": {"kind": "computed", "name": "Segments"}, "destination": "s", "format": "text"}, ""),
        ({"source": {"kind": "attribute", "name": "plan"}, "destination": "p", "as": "multiline"}, ""),
        ({"source": {"kind": "computed", "name": "Score"}, "destination": "s"}, "source.computed.name"),
        ({"source": {"kind": "field", "name": "password"}, "destination": "p"}, "source.field.name"),
        ({"source": {"kind": "attribute", "name": ""}, "destination": "p"}, "source.attribute.name"),
        ({"source": {"kind": "constant", "value": {"a": 1}}, "destination": "p"}, "source.constant.value"),
        ({"source": {"kind": "sql", "name": "x"}, "destination": "p"}, "source"),
        ({"source": {"kind": "attribute", "name": "plan"}, "destination": " padded "}, "destination"),
        ({"source": {"kind": "attribute", "name": "plan"}, "destination": "p", "format": "money"}, "format"),
        ({"source": {"kind": "attribute", "name": "plan"}, "destination": "p", "extra": 1}, "extra"),
        ({"source": {"kind": "constant", "value": "soon"}, "destination": "d", "format": "date"}, ""),
    ],
)
def test_mappings_refuse_what_cannot_be_rendered(document, field):
    with pytest.raises(ValidationError) as raised:
        Mapping.model_validate(document)
    locations = {".".join(str(p) for p in error["loc"]) for error in raised.value.errors()}
    assert field in locations


def test_payload_renders_fields_attributes_constants_and_segments(hubspot):
    render = renderer(
        hubspot,
        EMAIL,
        {"source": {"kind": "attribute", "name": "plan"}, "destination": "plan"},
        {"source": {"kind": "attribute", "name": "missing"}, "destination": "gone"},
        {"source": {"kind": "constant", "value": "connector"}, "destination": "origin"},
        {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments"},
        {"source": {"kind": "computed", "name": "Segments"}, "destination": "segment_lines", "as": "multiline"},
    )
    payload = render.render(
        row(email=" Ada@Example.com ", attributes={"plan": "pro"}, segments='["VIP; gold", "Beta", "100%"]')
    )
    assert payload.identity == "Ada@Example.com"
    assert payload.properties == {
        "email": " Ada@Example.com ",
        "plan": "pro",
        "gone": None,
        "origin": "connector",
        # HubSpot's encoding: option values with ; and % escaped, sorted.
        "segments": "100%25;Beta;VIP%3B gold",
        "segment_lines": "100%\nBeta\nVIP; gold",
    }


def test_a_subject_in_no_segment_gets_an_empty_segments_value(hubspot):
    render = renderer(hubspot, EMAIL, {"source": {"kind": "computed", "name": "Segments"}, "destination": "s"})
    assert render.render(row(email="a@x.io", segments=None)).properties["s"] == ""
    assert render.render(row(email="a@x.io", segments="[]")).properties["s"] == ""
    assert render.cleared() == {"s": ""}


def test_no_identity_value_is_invalid(hubspot):
    render = renderer(hubspot, EMAIL)
    for email in (None, "", "   "):
        with pytest.raises(InvalidRecord, match="no value for the identity field email"):
            render.render(row(email=email))


@pytest.mark.parametrize(
    "value, format_, expected",
    [
        ("12", "number", 12),
        (" 2.5 ", "number", 2.5),
        (3.0, "number", 3),
        (7, "text", "7"),
        (True, "text", "true"),
        ({"b": 1, "a": [1]}, "text", '{"a":[1],"b":1}'),
        ("yes", "bool", True),
        (0, "bool", False),
        ("2024-03-01T23:30:00-02:00", "date", "2024-03-02"),
        (date(2024, 3, 1), "date", "2024-03-01"),
        ("2024-03-01T10:00:00+01:00", "datetime", "2024-03-01T09:00:00.000Z"),
        (datetime(2024, 3, 1, 9, tzinfo=UTC), None, "2024-03-01T09:00:00.000Z"),
        (float("nan"), None, None),
        (None, "number", None),
    ],
)
def test_formats_convert_values(value, format_, expected):
    assert convert(value, format_, "f") == expected


@pytest.mark.parametrize(
    "value, format_", [("abc", "number"), (True, "number"), ("maybe", "bool"), ("soon", "date"), ([1], "datetime")]
)
def test_a_value_its_format_refuses_makes_the_record_invalid(value, format_):
    with pytest.raises(InvalidRecord, match=f"f: .* is not a valid {format_}"):
        convert(value, format_, "f")


def test_payload_hash_is_canonical_and_covers_identity_and_every_value():
    base = payload_hash("a@x.io", {"plan": "pro", "seats": 3})
    assert base == payload_hash("a@x.io", {"seats": 3, "plan": "pro"})
    assert base != payload_hash("b@x.io", {"plan": "pro", "seats": 3})
    assert base != payload_hash("a@x.io", {"plan": "pro", "seats": "3"})
    assert base != payload_hash("a@x.io", {"plan": "pro", "seats": 3, "extra": None})
    assert len(base) == 64


# What a payload's values can be: scalars, lists of strings, any nesting of JSON (attributes mapped whole).
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(st.text(), st.dictionaries(st.text(max_size=10), _json_values | st.lists(st.text(), max_size=4), max_size=6))
def test_payload_hash_is_the_hash_of_the_canonical_json_whatever_writes_it(identity, properties):
    # Hashes recorded by earlier versions must still match: the fast writer may never change a byte.
    canonical = json.dumps([identity, properties], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert payload_hash(identity, properties) == hashlib.sha256(canonical.encode()).hexdigest()


def test_field_specs_ask_for_segment_names_as_options(hubspot):
    render = renderer(
        hubspot,
        EMAIL,
        {"source": {"kind": "attribute", "name": "seats"}, "destination": "seats", "format": "number"},
        {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments"},
    )
    specs = {spec.name: spec for spec in render.field_specs(["Beta", "VIP"])}
    assert specs["seats"].kind == "number"
    assert specs["segments"].kind == "multi_select"
    assert list(specs["segments"].options) == ["Beta", "VIP"]


def test_other_destinations_encode_multi_selects_their_own_way(tmp_path):
    files = FileDestination({"directory": str(tmp_path)})
    render = renderer(files, EMAIL, {"source": {"kind": "computed", "name": "Segments"}, "destination": "s"})
    assert render.render(row(email="a@x.io", segments='["b", "a;c"]')).properties["s"] == "a;c;b"
