"""The condition builder: a condition tree as flat form fields and back, and the edits its buttons make.

Every node has a path: ``n`` is the root group, ``n.0`` its first child, ``n.0.2`` the third child of that, and
``n.1.c`` the condition of a ``users`` node. A node's fields are named ``<path>.<field>`` (``n.0.type``,
``n.0.operator``...). The form round-trips through the server: "add", "remove" and "preview" post the whole form,
the server parses it into a tree, changes it and renders the builder again — with htmx only the builder (or the
preview) is swapped; without JavaScript the page is. The tree is validated by the segment service, never here;
its errors (``conditions.children[0].value``) are shown next to the node whose path they name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from connector.models import SubjectType

GROUPS = ("all", "any", "none")
USER_LEAVES = ("attribute", "tag", "event", "page_view", "device", "object", "message", "segment", "account_segment")
ACCOUNT_LEAVES = ("attribute", "tag", "object", "users", "segment")
LEAF_LABELS = {
    "attribute": "Attribute or field",
    "tag": "Tag",
    "event": "Event",
    "page_view": "Page view",
    "device": "Device",
    "object": "Object",
    "message": "Message",
    "users": "Users of the account",
    "segment": "In segment",
    "account_segment": "Account in segment",
}
MESSAGE_EVENTS = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")
ATTRIBUTE_OPERATORS = (
    "eq", "ne", "contains", "not_contains", "starts_with", "ends_with", "in", "not_in", "gt", "gte", "lt", "lte",
    "between", "before", "after", "within_last", "more_than_ago", "exists", "not_exists",
)  # fmt: skip
VALUE_TYPES = ("", "string", "number", "date", "boolean")
FIELDS = {
    SubjectType.USER: ("email", "external_id", "created_at"),
    SubjectType.ACCOUNT: ("domain", "name", "external_id", "created_at"),
}
COUNT_OPERATORS = ("at_least", "at_most", "exactly")
UNITS = ("minutes", "hours", "days")
_DURATION = re.compile(r"^\s*(\d+)\s*(minutes?|hours?|days?)\s*$")
_LIST_OPERATORS = {"in", "not_in", "between"}


def leaf_kinds(subject_type: SubjectType) -> tuple[str, ...]:
    return USER_LEAVES if subject_type == SubjectType.USER else ACCOUNT_LEAVES


def new_node(kind: str) -> dict[str, Any]:
    """A fresh node of ``kind`` with the defaults the builder shows."""
    if kind in GROUPS:
        return {"type": kind, "children": []}
    defaults: dict[str, dict[str, Any]] = {
        "attribute": {"name": "", "operator": "eq", "value": ""},
        "tag": {"operator": "has", "value": ""},
        "event": {"name": "", "operator": "performed", "count": {"operator": "at_least", "value": 1}},
        "page_view": {"operator": "viewed", "url": {"operator": "contains", "value": ""}},
        "device": {"operator": "has", "platform": None},
        "object": {"object_type": "", "operator": "has", "count": {"operator": "at_least", "value": 1}},
        "message": {"operator": "did", "event": "opened", "count": {"operator": "at_least", "value": 1}},
        "users": {"quantifier": "any", "condition": {"type": "all", "children": []}},
        "segment": {"operator": "in"},
        "account_segment": {"operator": "in"},
    }
    return {"type": kind, **defaults.get(kind, {})}


def error_path(path: str) -> str:
    """The service's name for a node path: ``n.0.c.1`` -> ``conditions.children[0].condition.children[1]``."""
    out = "conditions"
    for part in path.split(".")[1:]:
        out += ".condition" if part == "c" else f".children[{part}]"
    return out


# -- form -> tree ----------------------------------------------------------------------------------------------------


def tree_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The tree the builder's fields describe (as given: the service validates it)."""
    if "n.type" not in form:
        return {"type": "all", "children": []}
    return _node(form, "n")


def _node(form: Mapping[str, str], path: str) -> dict[str, Any]:
    kind = form.get(f"{path}.type", "all")

    def get(name: str, default: str = "") -> str:
        return form.get(f"{path}.{name}", default).strip()

    if kind in GROUPS:
        indices = sorted(
            {int(m.group(1)) for key in form if (m := re.fullmatch(re.escape(path) + r"\.(\d+)\.type", key))}
        )
        return {"type": kind, "children": [_node(form, f"{path}.{i}") for i in indices]}
    node: dict[str, Any] = {"type": kind}
    if kind == "attribute":
        if get("field"):
            node["field"] = get("field")
        else:
            node["name"] = get("name")
        if get("of"):
            node["of"] = get("of")
        node["operator"] = get("operator", "eq")
        if get("value_type"):
            node["value_type"] = get("value_type")
        if node["operator"] not in ("exists", "not_exists"):
            node["value"] = _value(get("value"), node["operator"], get("value_type"))
    elif kind == "tag":
        node.update(operator=get("operator", "has"), value=get("value"))
    elif kind in ("event", "page_view", "object"):
        node["operator"] = get("operator")
        if kind == "event":
            node["name"] = get("name")
        if kind == "object":
            node["object_type"] = get("object_type")
        if kind == "page_view" and get("url"):
            node["url"] = {"operator": get("url_operator", "contains"), "value": get("url")}
        node["count"] = {"operator": get("count_operator", "at_least"), "value": _number(get("count", "1"))}
        if kind != "object" and get("window"):
            node["window"] = _window(get("window"))
        if kind != "page_view" and get("filters"):
            node["filters"] = _json(get("filters"))
    elif kind == "message":
        node.update(operator=get("operator", "did"), event=get("event", "opened"))
        for name in ("sequence_id", "step"):
            if get(name):
                node[name] = _number(get(name))
        node["count"] = {"operator": get("count_operator", "at_least"), "value": _number(get("count", "1"))}
        if get("window"):
            node["window"] = _window(get("window"))
    elif kind == "device":
        node.update(operator=get("operator", "has"), platform=get("platform") or None)
        if get("window"):
            node["last_seen"] = _window(get("window"))
    elif kind == "users":
        node["quantifier"] = get("quantifier", "any")
        if node["quantifier"] in ("at_least", "at_most"):
            node["count"] = _number(get("count", "1"))
        node["condition"] = _node(form, f"{path}.c") if f"{path}.c.type" in form else new_node("all")
    elif kind in ("segment", "account_segment"):
        node.update(operator=get("operator", "in"), segment_id=_number(get("segment_id")))
    return node


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _scalar(text: str, value_type: str) -> Any:
    if value_type in ("string", "date"):
        return text
    if value_type == "boolean" or (not value_type and text.lower() in ("true", "false")):
        return {"true": True, "false": False}.get(text.lower(), text)
    if value_type == "number" or not value_type:
        number = _number(text)
        if isinstance(number, int | float) or value_type == "number":
            return number
    return text


def _value(text: str, operator: str, value_type: str) -> Any:
    if operator in _LIST_OPERATORS:
        return [_scalar(item.strip(), value_type) for item in text.split(",") if item.strip()]
    if operator in ("within_last", "more_than_ago"):
        found = _DURATION.match(text)
        if found:
            unit = found.group(2) if found.group(2).endswith("s") else found.group(2) + "s"
            return {"amount": int(found.group(1)), "unit": unit}
        return text
    return _scalar(text, value_type)


def _window(text: str) -> Any:
    found = _DURATION.match(text)
    if not found:
        return {"within_last": text}
    unit = found.group(2) if found.group(2).endswith("s") else found.group(2) + "s"
    return {"within_last": {"amount": int(found.group(1)), "unit": unit}}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- tree -> what the template shows ---------------------------------------------------------------------------------


def display(node: dict[str, Any]) -> dict[str, str]:
    """A leaf's values as the builder's text fields show them (lists joined, durations spelled out)."""
    shown: dict[str, str] = {}
    value = node.get("value")
    if isinstance(value, list):
        shown["value"] = ", ".join(_text(v) for v in value)
    elif isinstance(value, dict) and "amount" in value:
        shown["value"] = f"{value.get('amount')} {value.get('unit')}"
    else:
        shown["value"] = _text(value)
    window = node.get("window") or node.get("last_seen")
    if isinstance(window, dict) and isinstance(window.get("within_last"), dict):
        shown["window"] = f"{window['within_last'].get('amount')} {window['within_last'].get('unit')}"
    elif isinstance(window, dict) and window.get("between"):
        shown["window"] = json.dumps(window)
    else:
        shown["window"] = ""
    shown["filters"] = json.dumps(node["filters"]) if node.get("filters") else ""
    return shown


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- edits -----------------------------------------------------------------------------------------------------------


def apply(tree: dict[str, Any], op: str) -> dict[str, Any]:
    """Apply a builder button: ``add:<group path>:<kind>`` or ``remove:<node path>``; anything else: no change."""
    parts = op.split(":")
    if parts[0] == "add" and len(parts) == 3:
        group = _find(tree, parts[1])
        if group is not None and group.get("type") in GROUPS:
            group.setdefault("children", []).append(new_node(parts[2]))
    elif parts[0] == "remove" and len(parts) == 2 and "." in parts[1]:
        parent_path, _, last = parts[1].rpartition(".")
        parent = _find(tree, parent_path)
        if parent is not None and last.isdigit() and int(last) < len(parent.get("children", [])):
            del parent["children"][int(last)]
    return tree


def _find(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: Any = tree
    for part in path.split(".")[1:]:
        if part == "c":
            node = node.get("condition")
        elif part.isdigit() and int(part) < len(node.get("children", [])):
            node = node["children"][int(part)]
        else:
            return None
        if not isinstance(node, dict):
            return None
    return node
