"""computed values index ends with the subject

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000

``ix_computed_values_workspace_id`` gains ``subject_id`` as its last column. Reading or deleting the values of a few
subjects within a workspace (``workspace_id``, ``subject_type``, ``name`` and ``subject_id IN (...)``) can then be
served precisely by either index. With the index on the first three columns only, PostgreSQL, with statistics taken
when the workspace had few values of a property, chose it and filtered on the subject: every value of the property in
the workspace was read to find one.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_computed_values_workspace_id"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="computed_values")
    op.create_index(INDEX, "computed_values", ["workspace_id", "subject_type", "name", "subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="computed_values")
    op.create_index(INDEX, "computed_values", ["workspace_id", "subject_type", "name"], unique=False)
