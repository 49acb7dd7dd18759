"""inbound drain lanes

A number's inbound events are split over lanes by contact (``connector/contracts.py``, ``lane_of``), each drained
by its own job; ``drain_lanes`` holds each lane's fencing token, which replaces ``instances.drain_epoch``: a
drain locks its lane's row, not the number's, so two lanes of one number commit in parallel. Lane -1 is the
number's stream of before lanes (``wb:in:{id}``), still drained after an upgrade.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'drain_lanes',
        sa.Column('instance_id', sa.BigInteger(), nullable=False),
        sa.Column('lane', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('epoch', sa.BigInteger(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_drain_lanes_instance_id_instances'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('instance_id', 'lane', name=op.f('pk_drain_lanes')),
    )
    # the drain of the old single stream goes on from the epoch it had reached
    op.execute("INSERT INTO drain_lanes (instance_id, lane, epoch) SELECT id, -1, drain_epoch FROM instances")
    op.drop_column('instances', 'drain_epoch')


def downgrade() -> None:
    op.add_column('instances', sa.Column('drain_epoch', sa.BigInteger(), server_default='0', nullable=False))
    op.execute("UPDATE instances SET drain_epoch = l.epoch FROM drain_lanes AS l"
                " WHERE l.instance_id = instances.id AND l.lane = -1")
    op.drop_table('drain_lanes')
