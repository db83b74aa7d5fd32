"""automation: sequences, enrolments, message events, segment actions, views, playbooks and firings

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-04 21:00:00.000000

Also ``users.default_channel`` (email, sms, push, whatsapp, in_app), set through identify. One active enrolment per
person and sequence is a partial unique index (``state = 'active'``) on both SQLite and PostgreSQL. A segment
action's run is unique per local date, a playbook firing per (playbook, trigger reference, subject): these keys, not
the scheduler, make a day's run and a firing happen once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.models.base
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sequences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "channels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "steps", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("secrets_encrypted", sa.Text(), nullable=True),
        sa.Column("created_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_sequences_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_sequences_workspace_id_name")),
    )
    op.create_index(op.f("ix_sequences_workspace_id"), "sequences", ["workspace_id"], unique=False)
    op.create_table(
        "views",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "subject_type", sa.Enum("user", "account", name="subjecttype", native_enum=False, length=10), nullable=False
        ),
        sa.Column(
            "conditions", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "segment_ids", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "columns", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "sort", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_views_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_views")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_views_workspace_id_name")),
    )
    op.create_index(op.f("ix_views_workspace_id"), "views", ["workspace_id"], unique=False)
    op.create_table(
        "enrolments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column(
            "state",
            sa.Enum("active", "finished", "exited", name="enrolmentstate", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("next_step", sa.Integer(), nullable=False),
        sa.Column("next_step_at", connector.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", connector.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"], name=op.f("fk_enrolments_sequence_id_sequences"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_enrolments_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_enrolments_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
    )
    op.create_index(op.f("ix_enrolments_state"), "enrolments", ["state", "next_step_at"], unique=False)
    op.create_index("ix_enrolments_user", "enrolments", ["user_id"], unique=False)
    op.create_index(op.f("ix_enrolments_workspace_id"), "enrolments", ["workspace_id"], unique=False)
    op.create_index(
        "uq_enrolments_active",
        "enrolments",
        ["sequence_id", "user_id"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_table(
        "message_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "sent",
                "delivered",
                "opened",
                "clicked",
                "bounced",
                "unsubscribed",
                name="messageeventkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("occurred_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"], name=op.f("fk_message_events_sequence_id_sequences"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_message_events_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_message_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_events")),
        sa.UniqueConstraint("workspace_id", "message_id", name=op.f("uq_message_events_workspace_id_message_id")),
    )
    op.create_index(op.f("ix_message_events_sequence_id"), "message_events", ["sequence_id"], unique=False)
    op.create_index(
        "ix_message_events_user_kind_time", "message_events", ["user_id", "kind", "occurred_at"], unique=False
    )
    op.create_index(op.f("ix_message_events_workspace_id"), "message_events", ["workspace_id"], unique=False)
    op.create_table(
        "playbooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "subject_type", sa.Enum("user", "account", name="subjecttype", native_enum=False, length=10), nullable=False
        ),
        sa.Column(
            "trigger", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("trigger_segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "conditions", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "segment_ids", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "actions", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("secrets_encrypted", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("read_from", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_segment_id"],
            ["segments.id"],
            name=op.f("fk_playbooks_trigger_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_playbooks_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbooks")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_playbooks_workspace_id_name")),
    )
    op.create_index(op.f("ix_playbooks_trigger_segment_id"), "playbooks", ["trigger_segment_id"], unique=False)
    op.create_index(op.f("ix_playbooks_workspace_id"), "playbooks", ["workspace_id"], unique=False)
    op.create_table(
        "segment_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", sa.String(length=5), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("fallback_channel", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_run_at", connector.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_segment_actions_segment_id_segments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"], name=op.f("fk_segment_actions_sequence_id_sequences"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_actions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_actions")),
        sa.UniqueConstraint("segment_id", name=op.f("uq_segment_actions_segment_id")),
    )
    op.create_index(op.f("ix_segment_actions_sequence_id"), "segment_actions", ["sequence_id"], unique=False)
    op.create_index(op.f("ix_segment_actions_workspace_id"), "segment_actions", ["workspace_id"], unique=False)
    op.create_table(
        "playbook_firings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("playbook_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("trigger_ref", sa.String(length=64), nullable=False),
        sa.Column("triggered_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                "skipped",
                "suppressed",
                name="firingstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "results", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", connector.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["playbook_id"],
            ["playbooks.id"],
            name=op.f("fk_playbook_firings_playbook_id_playbooks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_playbook_firings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_firings")),
        sa.UniqueConstraint(
            "playbook_id",
            "trigger_ref",
            "subject_id",
            name=op.f("uq_playbook_firings_playbook_id_trigger_ref_subject_id"),
        ),
    )
    op.create_index(
        op.f("ix_playbook_firings_playbook_id"),
        "playbook_firings",
        ["playbook_id", "subject_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_playbook_firings_status"), "playbook_firings", ["status", "id"], unique=False)
    op.create_index(op.f("ix_playbook_firings_workspace_id"), "playbook_firings", ["workspace_id"], unique=False)
    op.create_table(
        "segment_action_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_date", sa.String(length=10), nullable=False),
        sa.Column("started_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("already_enrolled", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["segment_actions.id"],
            name=op.f("fk_segment_action_runs_action_id_segment_actions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_action_runs")),
        sa.UniqueConstraint("action_id", "run_date", name=op.f("uq_segment_action_runs_action_id_run_date")),
    )
    op.add_column("users", sa.Column("default_channel", sa.String(length=20), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "default_channel")
    op.drop_table("segment_action_runs")
    op.drop_index(op.f("ix_playbook_firings_workspace_id"), table_name="playbook_firings")
    op.drop_index(op.f("ix_playbook_firings_status"), table_name="playbook_firings")
    op.drop_index(op.f("ix_playbook_firings_playbook_id"), table_name="playbook_firings")
    op.drop_table("playbook_firings")
    op.drop_index(op.f("ix_segment_actions_workspace_id"), table_name="segment_actions")
    op.drop_index(op.f("ix_segment_actions_sequence_id"), table_name="segment_actions")
    op.drop_table("segment_actions")
    op.drop_index(op.f("ix_playbooks_workspace_id"), table_name="playbooks")
    op.drop_index(op.f("ix_playbooks_trigger_segment_id"), table_name="playbooks")
    op.drop_table("playbooks")
    op.drop_index(op.f("ix_message_events_workspace_id"), table_name="message_events")
    op.drop_index("ix_message_events_user_kind_time", table_name="message_events")
    op.drop_index(op.f("ix_message_events_sequence_id"), table_name="message_events")
    op.drop_table("message_events")
    op.drop_index(
        "uq_enrolments_active",
        table_name="enrolments",
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.drop_index(op.f("ix_enrolments_workspace_id"), table_name="enrolments")
    op.drop_index("ix_enrolments_user", table_name="enrolments")
    op.drop_index(op.f("ix_enrolments_state"), table_name="enrolments")
    op.drop_table("enrolments")
    op.drop_index(op.f("ix_views_workspace_id"), table_name="views")
    op.drop_table("views")
    op.drop_index(op.f("ix_sequences_workspace_id"), table_name="sequences")
    op.drop_table("sequences")
