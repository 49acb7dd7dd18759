"""contacts crm: typed fields, segments, jobs, e-mail and company

The Contatos module: typed field definitions per workspace (values stay in ``contacts.custom_data``), saved
filters (segments), long operations run by workers with their progress and failed rows (bulk actions, imports),
e-mail and company as columns (searched and imported), and edited notes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:53:58.702049
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_fields',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('position', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("type IN ('text', 'number', 'date', 'choice', 'boolean', 'email', 'phone', 'url')", name=op.f('ck_contact_fields_type')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_contact_fields_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_fields')),
    sa.UniqueConstraint('workspace_id', 'key', name=op.f('uq_contact_fields_workspace_id'))
    )
    op.create_index(op.f('ix_contact_fields_workspace_id'), 'contact_fields', ['workspace_id'], unique=False)
    op.create_table('contact_jobs',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('bulk', 'import')", name=op.f('ck_contact_jobs_kind')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_contact_jobs_status')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_contact_jobs_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_contact_jobs_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_jobs'))
    )
    op.create_index('ix_contact_jobs_workspace', 'contact_jobs', ['workspace_id', sa.literal_column('created_at DESC')], unique=False)
    op.create_index(op.f('ix_contact_jobs_workspace_id'), 'contact_jobs', ['workspace_id'], unique=False)
    op.create_table('segments',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('filter', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_segments_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_segments_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments'))
    )
    op.create_index(op.f('ix_segments_workspace_id'), 'segments', ['workspace_id'], unique=False)
    op.create_index('uq_segments_workspace_lower_name', 'segments', ['workspace_id', sa.literal_column('lower(name)')], unique=True)
    op.create_table('contact_job_errors',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('column', sa.String(length=120), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('row', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['contact_jobs.id'], name=op.f('fk_contact_job_errors_job_id_contact_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_job_errors'))
    )
    op.create_index('ix_contact_job_errors_job_line', 'contact_job_errors', ['job_id', 'line'], unique=False)
    op.add_column('contacts', sa.Column('email', sa.String(length=254), nullable=True))
    op.add_column('contacts', sa.Column('company', sa.String(length=255), nullable=True))
    op.add_column('notes', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('notes', 'updated_at')
    op.drop_column('contacts', 'company')
    op.drop_column('contacts', 'email')
    op.drop_index('ix_contact_job_errors_job_line', table_name='contact_job_errors')
    op.drop_table('contact_job_errors')
    op.drop_index('uq_segments_workspace_lower_name', table_name='segments')
    op.drop_index(op.f('ix_segments_workspace_id'), table_name='segments')
    op.drop_table('segments')
    op.drop_index(op.f('ix_contact_jobs_workspace_id'), table_name='contact_jobs')
    op.drop_index('ix_contact_jobs_workspace', table_name='contact_jobs')
    op.drop_table('contact_jobs')
    op.drop_index(op.f('ix_contact_fields_workspace_id'), table_name='contact_fields')
    op.drop_table('contact_fields')
