"""outside calls: a funnel step's call to a model, an HTTP endpoint or Odoo, run away from the drain

One row per call (``workbench/services/outside_calls.py``), written with the run's wait in one transaction: the
calls pool runs it with retries, stores the answer first, then applies it to the run under the run's lock with
the wait-token check (``applied_at``), so a retried try never sends a reply twice and the sweep finds lost tries
and unapplied results.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outside_calls',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.Column('wait_token', sa.String(length=64), nullable=False),
        sa.Column('node_id', sa.String(length=64), nullable=False),
        sa.Column('service', sa.String(length=16), nullable=False),
        sa.Column('request', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed', 'stale')",
                           name=op.f('ck_outside_calls_status')),
        sa.ForeignKeyConstraint(['run_id'], ['funnel_runs.id'], name=op.f('fk_outside_calls_run_id_funnel_runs'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name=op.f('fk_outside_calls_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outside_calls')),
    )
    op.create_index(op.f('ix_outside_calls_run_id'), 'outside_calls', ['run_id'], unique=False)
    op.create_index(op.f('ix_outside_calls_workspace_id'), 'outside_calls', ['workspace_id'], unique=False)
    op.create_index('ix_outside_calls_open', 'outside_calls', ['status', 'due_at'], unique=False,
                    postgresql_where=sa.text("status IN ('pending','running')"))
    op.create_index('ix_outside_calls_unapplied', 'outside_calls', ['finished_at'], unique=False,
                    postgresql_where=sa.text("status IN ('done','failed') AND applied_at IS NULL"))


def downgrade() -> None:
    op.drop_index('ix_outside_calls_unapplied', table_name='outside_calls')
    op.drop_index('ix_outside_calls_open', table_name='outside_calls')
    op.drop_index(op.f('ix_outside_calls_workspace_id'), table_name='outside_calls')
    op.drop_index(op.f('ix_outside_calls_run_id'), table_name='outside_calls')
    op.drop_table('outside_calls')
