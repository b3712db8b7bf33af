"""console_users: the people who log in to the web console (SPEC section 11).

Revision ID: 0003_console_users
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_console_users"
# The lead re-chains revisions at merge; 0002's id is "0002" on this branch.
down_revision = "0004_transcripts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("employee", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("console_users")
