"""instance drain epoch

The fencing token of inbound drains: a drain job that takes a number adds one to ``instances.drain_epoch``,
and every transaction that stores the number's events locks the row and checks the value it took, so a drain
that lost the number (its lock expired) can never commit over the drain that took it next.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('instances', sa.Column('drain_epoch', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('instances', 'drain_epoch')
