"""sms: messages, consent ledger, order phone index

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 09:10:00
"""
from alembic import op
import sqlalchemy as sa
import app.store


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sms_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('shop_id', sa.Integer(), nullable=True),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('dedupe_key', sa.String(length=200), nullable=True),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column('sender', sa.String(length=64), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('segments', sa.Integer(), nullable=True),
        sa.Column('encoding', sa.String(length=8), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('time_critical', sa.Boolean(), nullable=False),
        sa.Column('provider_sid', sa.String(length=64), nullable=True),
        sa.Column('error_code', sa.String(length=16), nullable=True),
        sa.Column('error_message', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('send_after', app.store.UTCDateTime(), nullable=True),
        sa.Column('claimed_at', app.store.UTCDateTime(), nullable=True),
        sa.Column('sent_at', app.store.UTCDateTime(), nullable=True),
        sa.Column('body_erased_at', app.store.UTCDateTime(), nullable=True),
        sa.Column('created_at', app.store.UTCDateTime(), nullable=False),
        sa.Column('updated_at', app.store.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key', name='uq_sms_messages_dedupe_key'),
        sa.UniqueConstraint('provider_sid', name='uq_sms_messages_provider_sid'),
    )
    op.create_index('ix_sms_messages_order', 'sms_messages', ['order_id', 'id'], unique=False)
    op.create_index('ix_sms_messages_phone', 'sms_messages', ['phone', 'id'], unique=False)
    op.create_table(
        'sms_consents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('phone_key', sa.String(length=64), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.String(length=255), nullable=True),
        sa.Column('created_at', app.store.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sms_consents_phone_key', 'sms_consents', ['phone_key', 'id'], unique=False)
    op.create_table(
        'sms_order_phones',
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column('source', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('order_id'),
    )
    op.create_index('ix_sms_order_phones_phone', 'sms_order_phones', ['phone'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sms_order_phones_phone', table_name='sms_order_phones')
    op.drop_table('sms_order_phones')
    op.drop_index('ix_sms_consents_phone_key', table_name='sms_consents')
    op.drop_table('sms_consents')
    op.drop_index('ix_sms_messages_phone', table_name='sms_messages')
    op.drop_index('ix_sms_messages_order', table_name='sms_messages')
    op.drop_table('sms_messages')
