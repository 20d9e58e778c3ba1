"""inbox rows without a foreign key to their shop

Every webhook inserts an inbox row for its shop. A foreign key makes each insert lock that one shop row
(FOR KEY SHARE) while it commits, so concurrent webhooks of a busy shop queue on one row lock and share
multixacts: the receiver checks the shop before it stores, and shops are never deleted (a shop's erasure
scrubs its rows), so the key only cost throughput.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# SQLite reports its foreign keys without names; batch mode finds this one by the name this convention gives.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table('inbound_events', naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('fk_inbound_events_shop_id_shops', type_='foreignkey')
    else:
        op.drop_constraint('inbound_events_shop_id_fkey', 'inbound_events', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.create_foreign_key('inbound_events_shop_id_fkey', 'shops', ['shop_id'], ['id'], ondelete='SET NULL')
