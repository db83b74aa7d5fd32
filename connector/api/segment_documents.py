"""Segments, segment groups, evaluations and member changes as the API shows them (JSON shaping only)."""

from __future__ import annotations

from typing import Any

from connector.models import Segment, SegmentGroup
from connector.segments import manual
from connector.segments.evaluated import Evaluation
from connector.segments.evaluation import DONE, FAILED, PROGRESS


def segment_json(segment: Segment, member_count: int) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "description": segment.description,
        "subject_type": segment.subject_type,
        "kind": segment.kind,
        "group_id": segment.group_id,
        "conditions": segment.conditions,
        "is_time_relative": segment.is_time_relative,
        "member_count": member_count,
        "created_by": segment.created_by_id,
        "updated_by": segment.updated_by_id,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
        "last_evaluated_at": segment.last_evaluated_at,
        "hq_origin": hq_origin(segment),
        "edited_in_child": segment.edited_in_child,
        "evaluation": evaluation_status_json(segment),
    }


def hq_origin(item: Segment | SegmentGroup) -> dict[str, int] | None:
    """The HQ badge: the HQ workspace and item a synced copy comes from."""
    if item.hq_item_id is None:
        return None
    return {"workspace_id": item.hq_workspace_id, "item_id": item.hq_item_id}


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        **evaluation.summary(),
        "at": evaluation.at,
        "by_segment": [{"segment_id": i, "entered": e, "exited": x} for i, (e, x) in sorted(evaluation.counts.items())],
    }


def members_result_json(result: manual.MembersResult, location: str) -> dict[str, Any]:
    answer = result.as_dict()
    answer["unknown"] = [{**u, "field": f"{location}.{u['field']}"} if "field" in u else u for u in result.unknown]
    return answer


def group_json(group: SegmentGroup, segment_count: int) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "segment_count": segment_count,
        "created_at": group.created_at,
        "hq_origin": hq_origin(group),
        "edited_in_child": group.edited_in_child,
    }


def evaluation_status_json(segment: Segment) -> dict[str, Any]:
    """The evaluation as the API shows it: status, progress (0 to 1) and, when it failed, why."""
    status = segment.evaluation or DONE
    document: dict[str, Any] = {"status": status, "progress": PROGRESS.get(status, 1.0)}
    if status == FAILED:
        document["error"] = segment.evaluation_error
    return document
