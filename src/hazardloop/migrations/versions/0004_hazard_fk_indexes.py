"""Index the hazard register's links to other hazards.

Without them every delete of a hazard scans the whole table to apply ON DELETE SET NULL
(a 10,000-hazard wipe took 94 s on SQLite), and "duplicates of X" lookups do the same.

Revision ID: 0004_hazard_fk_indexes
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_hazard_fk_indexes"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("duplicate_of_id", "possible_duplicate_of_id", "repeat_of_id")


def upgrade() -> None:
    with op.batch_alter_table("hazards") as batch_op:
        for column in COLUMNS:
            batch_op.create_index(f"ix_hazards_{column}", [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hazards") as batch_op:
        for column in COLUMNS:
            batch_op.drop_index(f"ix_hazards_{column}")
