"""Transcription (SPEC section 10): calls.transcript_status, the transcription jobs and the
seconds transcribed per month.

Revision ID: 0004_transcripts
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_transcripts"
# The revision before this one (the lead re-chains the second round's revisions at merge).
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("transcript_status", sa.String(), nullable=True))
    op.create_table(
        "transcription_jobs",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("number", sa.String(), nullable=True),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts_made", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node", sa.String(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("charged_period", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index(
        "ix_transcription_jobs_status_due",
        "transcription_jobs",
        ["status", "due_at"],
        unique=False,
    )
    op.create_table(
        "transcription_usage",
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("seconds", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("period"),
    )


def downgrade() -> None:
    op.drop_table("transcription_usage")
    op.drop_index("ix_transcription_jobs_status_due", table_name="transcription_jobs")
    op.drop_table("transcription_jobs")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("transcript_status")
