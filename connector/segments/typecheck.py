"""When an attribute's stored type is not the one a condition compares: a number stored as the string "30000"
never matches ``gt 25000``. Explain names it for one subject (``mismatch``); previews warn when most subjects that
have the attribute hold it as another type (``attribute_type_warnings``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.models import SubjectType
from connector.segments.conditions import AttributeCondition, Group, Node, UsersCondition
from connector.segments.scope import ACCOUNTS, USERS

PRESENCE = frozenset({"exists", "not_exists"})
# Subjects looked at per attribute (those that have it): enough to say "mostly", bounded in a large workspace.
SAMPLE = 10_000
# JSON type names of each dialect -> ours.
_TYPES = {
    "string": "string", "text": "string", "number": "number", "integer": "number", "real": "number",
    "boolean": "boolean", "true": "boolean", "false": "boolean", "object": "object", "array": "array",
}  # fmt: skip


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _compared(node: AttributeCondition) -> str | None:
    """The type a custom attribute condition compares (number or boolean), or None when any stored type is fine
    (strings, dates stored as ISO text, presence tests, fields with a fixed type)."""
    if node.field or node.operator in PRESENCE or node.value_type not in ("number", "boolean"):
        return None
    return node.value_type


def mismatch(node: AttributeCondition, value: Any) -> str | None:
    """Why a stored value cannot match the condition's comparison, or None."""
    compared = _compared(node)
    if compared is None or value is None:
        return None
    stored = _json_type(value)
    if stored == compared:
        return None
    if stored in ("array", "object"):
        return f"value is an {stored}; the condition compares {compared}s"
    return f"value is the {stored} {json.dumps(value, ensure_ascii=False)}; the condition compares {compared}s"


def _leaves(node: Node, path: str, of_users: bool = False) -> Iterator[tuple[str, AttributeCondition, bool]]:
    if isinstance(node, Group):
        for i, child in enumerate(node.children):
            yield from _leaves(child, f"{path}.children[{i}]", of_users)
    elif isinstance(node, UsersCondition):
        yield from _leaves(node.condition, f"{path}.condition", True)
    elif isinstance(node, AttributeCondition):
        yield path, node, of_users


def _type_counts(session: Session, table, workspace_id: int, name: str) -> dict[str, int]:
    if session.get_bind().dialect.name == "postgresql":
        kind = func.jsonb_typeof(table.c.attributes[name])
    else:
        kind = func.json_type(table.c.attributes, '$."' + name.replace('"', '""') + '"')
    sample = (
        select(kind.label("kind"))
        .where(table.c.workspace_id == workspace_id, kind.is_not(None), kind != "null")
        .limit(SAMPLE)
        .subquery()
    )
    rows = session.execute(select(sample.c.kind, func.count()).group_by(sample.c.kind))
    counts: dict[str, int] = {}
    for found, n in rows:
        ours = _TYPES.get(str(found), str(found))
        counts[ours] = counts.get(ours, 0) + n
    return counts


def attribute_type_warnings(
    session: Session, workspace_id: int, subject_type: SubjectType, node: Node, path: str = "conditions"
) -> list[dict[str, Any]]:
    """A warning per attribute leaf whose compared type most subjects holding the attribute do not have."""
    warnings = []
    for where, leaf, of_users in _leaves(node, path):
        compared = _compared(leaf)
        if compared is None or leaf.name is None:
            continue
        on_accounts = leaf.of == "account" or (subject_type == SubjectType.ACCOUNT and not of_users)
        table, noun = (ACCOUNTS, "accounts") if on_accounts else (USERS, "users")
        counts = _type_counts(session, table, workspace_id, leaf.name)
        total = sum(counts.values())
        other = total - counts.get(compared, 0)
        if total and other * 2 > total:
            held = max((k for k in counts if k != compared), key=lambda k: counts[k])
            warnings.append(
                {
                    "field": where,
                    "attribute": leaf.name,
                    "reason": f"{leaf.name!r} is a {held} in {counts[held]} of the {total} {noun} that have it; the "
                    f"condition compares {compared}s, so those never match (import it typed, or send {compared}s)",
                }
            )
    return warnings
