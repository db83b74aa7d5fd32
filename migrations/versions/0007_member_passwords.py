"""members may sign in to the web UI with a password

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:00:00.000000

``members.password_hash`` holds an Argon2id hash (NULL: the member has no password and cannot sign in to the web
UI; API tokens are unaffected).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("members", sa.Column("password_hash", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("password_hash")
