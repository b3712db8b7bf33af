"""open_calls: the journal of calls in progress (a node killed with calls up closes
their details at its next start).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "open_calls",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("record", _json(), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index("ix_open_calls_node", "open_calls", ["node"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_open_calls_node", table_name="open_calls")
    op.drop_table("open_calls")
