"""Job leases (issue 16): a callback or transcription job is held by its node until
`lease_until`, which the node renews while it works; past it, another node takes it over.

- callbacks.lease_until, transcription_jobs.lease_until.

Jobs claimed before this migration have no lease: they keep the old rule (stale once
claimed longer ago than the job's longest try), so none is retaken early.

Revision ID: 0010_job_leases
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_job_leases"
down_revision = "0007_virtual_hold"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("callbacks", "transcription_jobs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ("transcription_jobs", "callbacks"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_until")
