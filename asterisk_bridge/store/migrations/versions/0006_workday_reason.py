"""workdays.reason: why numcfg paused an employee ("auto", SPEC section 9).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003_console_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workdays") as batch:
        batch.add_column(sa.Column("reason", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workdays") as batch:
        batch.drop_column("reason")
