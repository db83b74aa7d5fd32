"""automation cascades by trigger: enrolments and firings go with their sequence and playbook by trigger

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 15:30:00.000000

When many people enter a segment at once, a playbook writes an enrolment and a firing per person (100,000 in a few
seconds). Each row paid a referential check of its sequence (enrolments) or playbook (firings): one more query and
one more lock of the same parent row per written row. As for the derived tables (migration 0005), those two foreign
keys go and their ``ON DELETE CASCADE`` stays as a trigger on the parent, which fires on its delete (rare) and never
on a child's insert:

- deleting a sequence deletes its enrolments (``trg_sequences_delete_enrolments``);
- deleting a playbook deletes its firings (``trg_playbooks_delete_firings``).

What the check guarded, the writers now do once per statement: ``sequences.enrol`` and the firing of a playbook lock
the parent row ``FOR KEY SHARE`` (PostgreSQL) before writing, so a concurrent delete of the parent waits for them and
its trigger then deletes what they wrote, and a write after the delete finds no parent and writes nothing. An
enrolment's user keeps its foreign key: its rows are many, and the check is what keeps a person erased meanwhile from
being enrolled.

SQLite, for later migrations: as in 0005, a batch operation that recreates ``sequences`` or ``playbooks`` drops these
triggers (create them again); one that recreates ``enrolments`` or ``playbook_firings`` must drop them first.
"""

from collections.abc import Sequence

from connector.migrate import cascade_by_trigger, foreign_key_for_trigger

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (child table, its foreign key, parent table, column, trigger) — as migration 0008 created the foreign keys.
CASCADES = [
    (
        "enrolments",
        "fk_enrolments_sequence_id_sequences",
        "sequences",
        "sequence_id",
        "trg_sequences_delete_enrolments",
    ),
    (
        "playbook_firings",
        "fk_playbook_firings_playbook_id_playbooks",
        "playbooks",
        "playbook_id",
        "trg_playbooks_delete_firings",
    ),
]


def upgrade() -> None:
    for cascade in CASCADES:
        cascade_by_trigger(*cascade)


def downgrade() -> None:
    for cascade in CASCADES:
        foreign_key_for_trigger(*cascade)
