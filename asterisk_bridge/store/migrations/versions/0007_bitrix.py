"""crm_calls: calls registered in Bitrix24 (their CALL_ID) and not finished there yet, so
a restart between register and finish still finishes them; crm_tokens: the OAuth tokens
of the Bitrix24 local application (crm.auth: app).

Revision ID: 0005_bitrix
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_bitrix"
down_revision = "0006"
branch_labels = None
depends_on = None


def _when() -> sa.DateTime:
    # Stored as tables.UTCDateTime stores it; a migration freezes the DDL, not the decorator.
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "crm_calls",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("remote_id", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("info", _json(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index("ix_crm_calls_node", "crm_calls", ["node"], unique=False)
    op.create_table(
        "crm_tokens",
        sa.Column("portal", sa.String(), nullable=False),
        sa.Column("access_token", sa.String(), nullable=False),
        sa.Column("refresh_token", sa.String(), nullable=False),
        sa.Column("expires_at", _when(), nullable=False),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("application_token", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("portal"),
    )


def downgrade() -> None:
    op.drop_table("crm_tokens")
    op.drop_index("ix_crm_calls_node", table_name="crm_calls")
    op.drop_table("crm_calls")
