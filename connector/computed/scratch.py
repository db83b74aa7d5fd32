"""The scratch-table helpers under their former name; they live in ``connector.scratch`` (new code imports that)."""

from connector.scratch import (
    affected_rows,
    computed_scratch,
    evaluate_into,
    evaluated_subjects,
    evaluated_subjects_pg,
    evaluation_scope,
    filled,
    id_set,
    insert_rows,
    membership_changes,
    scratch,
    subject_ids,
)

__all__ = [
    "affected_rows",
    "computed_scratch",
    "evaluate_into",
    "evaluated_subjects",
    "evaluated_subjects_pg",
    "evaluation_scope",
    "filled",
    "id_set",
    "insert_rows",
    "membership_changes",
    "scratch",
    "subject_ids",
]
