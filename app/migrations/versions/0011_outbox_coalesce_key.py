"""outbox coalesce key: one waiting job per key (an order's Slack card, an alert's message)

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('coalesce_key', sa.String(length=128), nullable=True))
        batch_op.create_index('ix_outbox_events_coalesce_key', ['coalesce_key', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_events_coalesce_key')
        batch_op.drop_column('coalesce_key')
