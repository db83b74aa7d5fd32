"""Field mappings: what a sync writes to each destination field, and how one subject becomes a payload.

A mapping takes its value from a subject's ``attribute``, one of its ``field`` columns, any registered ``computed``
property (``connector.computed``: ``Segments``, the sorted names of the segments it is in; ``event_count``; …) or a
``constant``, optionally converted by ``format``. ``Segments`` is written ``as`` a multi-select (the destination's
encoding, e.g. HubSpot checkboxes) or as lines of text; other computed values are converted like attributes, a
subject without a value getting the property's default. Rendering is pure: a subject row in, a payload (or the
reason it cannot be sent) out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.computed import SEGMENTS, computed_properties, computed_property
from connector.destinations import Destination, FieldSpec
from connector.models import SubjectType

FIELDS: dict[SubjectType, tuple[str, ...]] = {
    SubjectType.USER: ("id", "email", "external_id", "created_at"),
    SubjectType.ACCOUNT: ("id", "external_id", "domain", "name", "created_at"),
}
# FieldSpec kind a destination field gets for each format (prepare creates missing fields of that kind).
FORMAT_KINDS = {None: "text", "text": "text", "number": "number", "bool": "bool", "date": "date", "datetime": "text"}
TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off", ""}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeSource(_Strict):
    kind: Literal["attribute"]
    name: str = Field(min_length=1, max_length=200)


class FieldSource(_Strict):
    kind: Literal["field"]
    name: Literal["id", "email", "external_id", "domain", "name", "created_at"]


class ComputedSource(_Strict):
    kind: Literal["computed"]
    name: str = Field(min_length=1, max_length=100, description="A registered computed property, e.g. Segments")

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        known = [p.name for p in computed_properties()]
        if value not in known:
            raise ValueError(f"not a computed property (known: {', '.join(known)})")
        return value


class ConstantSource(_Strict):
    kind: Literal["constant"]
    value: Any = Field(description="A string, number, boolean or null")

    @field_validator("value")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        if value is not None and type(value) not in (str, int, float, bool):
            raise ValueError("a constant is a string, a number, a boolean or null")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a constant number must be finite")
        return value


Source = Annotated[AttributeSource | FieldSource | ComputedSource | ConstantSource, Field(discriminator="kind")]


class Mapping(_Strict):
    """One destination field and where its value comes from."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Source
    destination: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    format: Literal["text", "number", "bool", "date", "datetime"] | None = None
    as_: Literal["multi_select", "multiline"] | None = Field(None, alias="as")
    # Segments only: which segment names may reach the destination (a list of names, or "filter": the segments of
    # the sync's filter); None: every segment of the workspace.
    segments: list[Annotated[str, Field(min_length=1, max_length=200)]] | Literal["filter"] | None = Field(
        None, max_length=1000
    )

    @model_validator(mode="after")
    def _as_only_for_segments(self) -> Mapping:
        if self.is_segments:
            if self.format is not None:
                raise ValueError("a computed Segments mapping has no format; say how it is written with 'as'")
            if self.as_ is None:
                self.as_ = "multi_select"
        elif self.as_ is not None:
            raise ValueError("'as' applies only to the computed Segments source")
        elif self.segments is not None:
            raise ValueError("'segments' applies only to the computed Segments source")
        if isinstance(self.source, ConstantSource):
            try:
                convert(self.source.value, self.format, self.destination)
            except InvalidRecord as exc:
                raise ValueError(str(exc)) from None
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON kept in ``syncs.mappings``."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def is_segments(self) -> bool:
        return isinstance(self.source, ComputedSource) and self.source.name == SEGMENTS


def parse_mappings(stored: Sequence[dict[str, Any]]) -> list[Mapping]:
    return [Mapping.model_validate(item) for item in stored]


class InvalidRecord(Exception):
    """The subject cannot be sent (no identity value, a value its format refuses): counted as invalid."""


@dataclass(frozen=True)
class Payload:
    identity: str
    properties: dict[str, Any]
    hash: str


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# Values orjson writes byte for byte as ``_CANONICAL`` does (it writes some floats otherwise: 1e-7 for 1e-07).
_EXACT_TYPES = (str, bool, type(None))
_INT64 = range(-(2**63), 2**64)


def payload_hash(identity: str, properties: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of identity and properties: equal payloads, equal hashes, on any machine.

    Payloads of strings, booleans, nulls, 64-bit integers and lists of strings (nearly all) are written by orjson,
    several times faster and to the same bytes; any other value by ``json``, so every hash stays what it was."""
    for value in properties.values():
        kind = type(value)
        if kind in _EXACT_TYPES or (kind is int and value in _INT64):
            continue
        if kind is list and all(type(item) is str for item in value):
            continue
        return hashlib.sha256(_CANONICAL.encode([identity, properties]).encode()).hexdigest()
    return hashlib.sha256(orjson.dumps([identity, properties], option=orjson.OPT_SORT_KEYS)).hexdigest()


def normal_identity(value: str) -> str:
    """The form identities are compared in when looking for one identity used twice (case and spaces ignored)."""
    return value.strip().lower()


class Renderer:
    """Renders subject rows into payloads for one sync (built once per run).

    A row has ``id``, the field columns the mappings name, ``attributes`` (when an attribute is mapped) and one
    column per mapped computed property (``computed_columns``: ``segments`` for ``Segments``), its value as JSON
    text or decoded, None for a subject without one.
    """

    def __init__(
        self,
        mappings: Sequence[Mapping],
        identity_field: str,
        destination: Destination,
        filter_segments: Sequence[str] = (),
    ) -> None:
        self.mappings = list(mappings)
        self.identity_field = identity_field
        names = dict.fromkeys(m.source.name for m in self.mappings if isinstance(m.source, ComputedSource))
        labels = {name: "segments" if name == SEGMENTS else f"computed_{i}" for i, name in enumerate(names)}
        # (row column, computed property) for each mapped property: what the planner joins to the subject rows.
        self.computed_columns: list[tuple[str, str]] = list((label, name) for name, label in labels.items())
        # Per Segments mapping limited to some segments: the names it may send ("filter": the sync's filter).
        self._allowed = {
            m.destination: frozenset(filter_segments if m.segments == "filter" else m.segments)
            for m in self.mappings
            if m.is_segments and m.segments is not None and (m.segments != "filter" or filter_segments)
        }
        self._steps: list[tuple[str, Callable[[Any], Any]]] = [
            (m.destination, self._step(m, destination, labels, self._allowed.get(m.destination))) for m in self.mappings
        ]
        self.segment_fields = [m.destination for m in self.mappings if m.is_segments]

    @property
    def fields(self) -> list[str]:
        """The subject columns the rows must carry."""
        return list(dict.fromkeys(m.source.name for m in self.mappings if isinstance(m.source, FieldSource)))

    @property
    def needs_attributes(self) -> bool:
        return any(isinstance(m.source, AttributeSource) for m in self.mappings)

    def render(self, row: Any) -> Payload:
        """The payload of one subject; raises ``InvalidRecord`` when it cannot be sent."""
        properties = {name: step(row) for name, step in self._steps}
        raw = properties.get(self.identity_field)
        identity = "" if raw is None else (raw if isinstance(raw, str) else json.dumps(raw)).strip()
        if not identity:
            raise InvalidRecord(f"no value for the identity field {self.identity_field}")
        return Payload(identity, properties, payload_hash(identity, properties))

    def cleared(self) -> dict[str, Any]:
        """The properties that empty the Segments fields (mirror mode, a subject that left the filter)."""
        return dict.fromkeys(self.segment_fields, "")

    def field_specs(self, segment_names: Sequence[str]) -> list[FieldSpec]:
        """What ``prepare`` must make sure the destination has: every mapped field, and for a Segments
        multi-select every segment name as an option."""
        specs = []
        for m in self.mappings:
            if m.is_segments:
                if m.as_ == "multi_select":
                    allowed = self._allowed.get(m.destination)
                    names = tuple(n for n in segment_names if allowed is None or n in allowed)
                    specs.append(FieldSpec(name=m.destination, kind="multi_select", options=names))
                else:
                    specs.append(FieldSpec(name=m.destination, kind="multiline"))
            else:
                specs.append(FieldSpec(name=m.destination, kind=FORMAT_KINDS[m.format]))
        return specs

    # -- building the steps ----------------------------------------------------------------------------------

    @staticmethod
    def _step(
        mapping: Mapping, destination: Destination, labels: dict[str, str], allowed: frozenset[str] | None = None
    ) -> Callable[[Any], Any]:
        source = mapping.source
        if mapping.is_segments:
            return _segments_step(mapping, destination, allowed)
        if isinstance(source, ComputedSource):
            return _computed_step(mapping, labels[source.name])
        if isinstance(source, ConstantSource):
            value = convert(source.value, mapping.format, mapping.destination)
            return lambda row: value
        format_, field = mapping.format, mapping.destination
        name = source.name
        if isinstance(source, FieldSource):

            def field_value(row: Any) -> Any:
                value = getattr(row, name)
                return value if type(value) in _SIMPLE and format_ is None else convert(value, format_, field)

            return field_value

        def attribute_value(row: Any) -> Any:
            value = (row.attributes or _EMPTY).get(name)
            return value if type(value) in _SIMPLE and format_ is None else convert(value, format_, field)

        return attribute_value


_SIMPLE = frozenset({str, int, bool, type(None)})
_EMPTY: dict[str, Any] = {}


def _computed_step(mapping: Mapping, label: str) -> Callable[[Any], Any]:
    """A computed value (raw JSON text or decoded; None: the property's default), converted like an attribute."""
    format_, field = mapping.format, mapping.destination
    default = computed_property(mapping.source.name).default

    def computed_value(row: Any) -> Any:
        raw = getattr(row, label)
        value = default if raw is None else (json.loads(raw) if isinstance(raw, str) else raw)
        return value if type(value) in _SIMPLE and format_ is None else convert(value, format_, field)

    return computed_value


def _segments_step(
    mapping: Mapping, destination: Destination, allowed: frozenset[str] | None = None
) -> Callable[[Any], Any]:
    """The Segments value from its raw JSON text (or a list), rendered once per distinct value; only the names in
    ``allowed`` when given."""
    encode = destination.render_multiline if mapping.as_ == "multiline" else destination.render_multi_select
    cache: dict[Any, Any] = {}

    def segments_value(row: Any) -> Any:
        raw = row.segments
        key = raw if raw is None or isinstance(raw, str) else tuple(raw)
        rendered = cache.get(key)
        if rendered is None:
            names = json.loads(raw) if isinstance(raw, str) else raw
            names = names if isinstance(names, list) else []
            names = (str(n) for n in names)
            rendered = encode(sorted(n for n in names if allowed is None or n in allowed))
            if len(cache) < 10_000:
                cache[key] = rendered
        return rendered

    return segments_value


def convert(value: Any, format_: str | None, field: str) -> Any:
    """A source value as a JSON value in the mapping's format; ``InvalidRecord`` when the format refuses it."""
    if value is None:
        return None
    if format_ is None:
        return _plain(value)
    try:
        return _FORMATS[format_](value)
    except (TypeError, ValueError, OverflowError):
        shown = json.dumps(_plain(value), ensure_ascii=False)
        if len(shown) > 100:
            shown = shown[:97] + "..."
        raise InvalidRecord(f"{field}: {shown} is not a valid {format_}") from None


def _plain(value: Any) -> Any:
    """JSON values as they are; timestamps in ISO 8601; containers as canonical JSON text."""
    if isinstance(value, datetime):
        return _iso_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return value


def _text(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return _number(float(text))
    raise TypeError(type(value).__name__)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError("not a boolean")


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return parsed
    raise TypeError(type(value).__name__)


def _date(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    moment = _parse_datetime(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date().isoformat()


def _iso_datetime(value: datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _datetime(value: Any) -> str:
    return _iso_datetime(_parse_datetime(value))


_FORMATS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "number": _number,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
}
