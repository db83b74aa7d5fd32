"""Every condition type is in every table that gives it meaning: the compiler's ``LEAVES``, explain's ``OBSERVERS``,
``NODE_TYPES``, the change kinds it depends on, and the reference evaluator (the checklist in ``conditions.py``)."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from connector.models import SubjectType
from connector.segments import conditions
from connector.segments.compiler import LEAVES
from connector.segments.explain import OBSERVERS
from connector.segments.trees import dependencies
from connector.segments.validation import parse_conditions
from tests.segments.reference import Evaluator


def _leaf_models() -> list[type[BaseModel]]:
    union = typing.get_args(conditions.Node)[0]
    return [model for model in typing.get_args(union) if model is not conditions.Group]


def _type_of(model: type[BaseModel]) -> str:
    (value,) = typing.get_args(model.model_fields["type"].annotation)
    return value


LEAF_MODELS = _leaf_models()


def test_the_condition_language_has_leaves():
    assert len(LEAF_MODELS) >= 9


@pytest.mark.parametrize("model", LEAF_MODELS, ids=_type_of)
def test_every_leaf_is_compiled_observed_named_and_evaluated_by_the_reference(model):
    assert model in LEAVES, "missing from compiler.LEAVES"
    assert model in OBSERVERS, "missing from explain.OBSERVERS"
    assert _type_of(model) in conditions.NODE_TYPES, "missing from conditions.NODE_TYPES"
    assert callable(getattr(Evaluator, f"_{_type_of(model)}", None)), "missing from the reference evaluator"


def test_the_tables_name_no_leaf_the_language_lacks():
    assert set(LEAVES) == set(LEAF_MODELS) | set(conditions.INTERNAL_LEAVES)
    assert set(OBSERVERS) - set(conditions.INTERNAL_LEAVES) == set(LEAF_MODELS)
    assert set(conditions.NODE_TYPES) == {"all", "any", "none"} | {_type_of(m) for m in LEAF_MODELS}


# One small valid example per leaf type: a new leaf must add its own, and say what changes can alter it.
EXAMPLES = {
    "attribute": ({"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}, "user"),
    "tag": ({"type": "tag", "operator": "has", "value": "vip"}, "user"),
    "event": ({"type": "event", "name": "purchase", "operator": "performed"}, "user"),
    "page_view": ({"type": "page_view", "operator": "viewed"}, "user"),
    "device": ({"type": "device", "operator": "has"}, "user"),
    "object": ({"type": "object", "object_type": "orders", "operator": "has"}, "user"),
    "users": ({"type": "users", "quantifier": "any", "condition": {"type": "all", "children": []}}, "account"),
    "message": ({"type": "message", "operator": "did", "event": "opened"}, "user"),
    "segment": ({"type": "segment", "segment_id": 1}, "user"),
    "account_segment": ({"type": "account_segment", "segment_id": 1}, "user"),
}


@pytest.mark.parametrize("model", LEAF_MODELS, ids=_type_of)
def test_every_leaf_says_which_changes_can_alter_it(model):
    assert _type_of(model) in EXAMPLES, "add an example of the new leaf to EXAMPLES"
    document, subject_type = EXAMPLES[_type_of(model)]
    node = parse_conditions(document, SubjectType(subject_type))
    assert isinstance(node, model)
    assert dependencies(node), "missing from trees._collect"
