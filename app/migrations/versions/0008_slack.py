"""slack: cards and other kept messages, staff role mapping

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:10:00
"""
from alembic import op
import sqlalchemy as sa
import app.store
from sqlalchemy.dialects import postgresql


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'slack_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.String(length=32), nullable=True),
        sa.Column('post_attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_until', app.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_event_id', sa.Integer(), nullable=True),
        sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('created_at', app.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', app.store.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key', name='uq_slack_messages_key'),
    )
    with op.batch_alter_table('slack_messages', schema=None) as batch_op:
        batch_op.create_index('ix_slack_messages_channel_ts', ['channel', 'ts'], unique=False)
        batch_op.create_index('ix_slack_messages_kind_created', ['kind', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_slack_messages_order_id'), ['order_id'], unique=False)
    op.create_table(
        'slack_staff',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('slack_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('members', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('created_at', app.store.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('slack_id', name='uq_slack_staff_slack_id'),
    )


def downgrade() -> None:
    op.drop_table('slack_staff')
    with op.batch_alter_table('slack_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_messages_order_id'))
        batch_op.drop_index('ix_slack_messages_kind_created')
        batch_op.drop_index('ix_slack_messages_channel_ts')
    op.drop_table('slack_messages')
