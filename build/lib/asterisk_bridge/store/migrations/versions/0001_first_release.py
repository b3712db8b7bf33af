"""The schema of numcfg's first release (before any migration existed).

Stores made by that release have these tables and no alembic_version: they are stamped
with this revision, then upgraded (see store/migrate.py).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
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
        "callbacks",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempts_made", sa.Integer(), server_default="0", nullable=False),
        sa.Column("delay", sa.Float(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_at", _when(), nullable=False),
        sa.Column("node", sa.String(), nullable=True),
        sa.Column("claimed_at", _when(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_callbacks_status_due", "callbacks", ["status", "due_at"], unique=False)
    op.create_table(
        "calls",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("number", sa.String(), nullable=True),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("caller", sa.String(), nullable=True),
        sa.Column("callee", sa.String(), nullable=True),
        sa.Column("employee", sa.String(), nullable=True),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("answered_at", _when(), nullable=True),
        sa.Column("ended_at", _when(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("disposition", sa.String(), nullable=True),
        sa.Column("route", _json(), nullable=False),
        sa.Column("recording", _json(), nullable=True),
        sa.Column("recording_skipped", sa.String(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("crm", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_calls_number_started", "calls", ["number", "started_at"], unique=False)
    op.create_index("ix_calls_started", "calls", ["started_at"], unique=False)
    op.create_table(
        "config_versions",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "contacts",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("responsible", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("phone"),
    )
    op.create_table(
        "crm_pending",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("due_at", _when(), nullable=False),
        sa.Column("claimed_at", _when(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_crm_pending_status_due", "crm_pending", ["status", "due_at"], unique=False)
    op.create_table(
        "employee_claims",
        sa.Column("employee", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("claimed_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("employee"),
    )
    op.create_index("ix_employee_claims_node", "employee_claims", ["node"], unique=False)
    op.create_table(
        "hold_music",
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("changed_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "leads",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("responsible", sa.String(), nullable=True),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("phone"),
    )
    op.create_table(
        "number_states",
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("changed_at", _when(), nullable=True),
        sa.Column("undo_token", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "queue_cursors",
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("queue"),
    )
    op.create_table(
        "recording_quota",
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("used", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("period"),
    )
    op.create_table(
        "workdays",
        sa.Column("employee", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("changed_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("employee"),
    )


def downgrade() -> None:
    raise NotImplementedError("numcfg's first schema has nothing to go back to")
