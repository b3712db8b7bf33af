"""Virtual hold (SPEC section 9): kept places in a queue's line, one callback per caller
at a time, and call details linked to the call they call back.

- callbacks.queue, callbacks.joined_at: a job that keeps its caller's place in a queue;
- callbacks.call_id: the call a job calls back (calls.callback_of of its callback);
- callbacks.active_key + unique index: one pending callback made by calls per caller;
- calls.callback_of.

Revision ID: 0007_virtual_hold
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_virtual_hold"
# The lead re-chains revisions at merge; on this branch the newest is 0005_console_users.py,
# whose revision id is "0003_console_users".
down_revision = "0006_install"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("queue", sa.String(), nullable=True))
        batch.add_column(sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("call_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("active_key", sa.String(), nullable=True))
    op.create_index("ux_callbacks_active_key", "callbacks", ["active_key"], unique=True)
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("callback_of", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("callback_of")
    op.drop_index("ux_callbacks_active_key", table_name="callbacks")
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("active_key")
        batch.drop_column("call_id")
        batch.drop_column("joined_at")
        batch.drop_column("queue")
