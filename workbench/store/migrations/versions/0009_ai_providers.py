"""ai providers: named OpenAI-compatible providers, per-call usage, conversation summaries

``ai_providers`` holds a workspace's providers (Configurações › IA): base URL, model, the Fernet-encrypted key
and its last 4 characters, the tool-calling capability found by *Testar conexão*; a partial unique index keeps one
default per workspace. ``ai_usage`` has one row per model call (tokens, latency, outcome, cost estimate), which the
monthly token budget sums; ``ai_usage_months`` keeps those sums per workspace, month (in the workspace's zone) and
purpose, updated with every row, so the check before each call reads a few rows. ``ai_summaries`` keeps the
*Resumo da IA* of a contact with the last message it covers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:01:35.816630
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ai_providers',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('preset', sa.String(length=16), nullable=False),
    sa.Column('base_url', sa.String(length=500), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('api_key', sa.LargeBinary(), nullable=True),
    sa.Column('key_last4', sa.String(length=4), nullable=True),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('is_default', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('temperature', sa.Float(), server_default='0.3', nullable=False),
    sa.Column('timeout_s', sa.Float(), server_default='30', nullable=False),
    sa.Column('tool_mode', sa.String(length=8), server_default='auto', nullable=False),
    sa.Column('supports_tools', sa.Boolean(), nullable=True),
    sa.Column('tested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('test_latency_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("preset IN ('openai', 'gemini', 'cloudflare', 'custom')", name=op.f('ck_ai_providers_preset')),
    sa.CheckConstraint("tool_mode IN ('auto', 'tools', 'json')", name=op.f('ck_ai_providers_tool_mode')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_ai_providers_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_providers')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_ai_providers_workspace_id'))
    )
    op.create_index(op.f('ix_ai_providers_workspace_id'), 'ai_providers', ['workspace_id'], unique=False)
    op.create_index('uq_ai_providers_default', 'ai_providers', ['workspace_id'], unique=True, postgresql_where=sa.text('is_default'))
    op.create_table('ai_usage',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('provider_id', sa.BigInteger(), nullable=True),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('completion_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('latency_ms', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cost_estimate', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['ai_providers.id'], name=op.f('fk_ai_usage_provider_id_ai_providers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_ai_usage_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_usage'))
    )
    op.create_index('ix_ai_usage_workspace_time', 'ai_usage', ['workspace_id', 'created_at'], unique=False)
    op.create_table('ai_usage_months',
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('calls', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost_estimate', sa.Float(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_ai_usage_months_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'month', 'purpose', name=op.f('pk_ai_usage_months'))
    )
    op.create_table('ai_summaries',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=False),
    sa.Column('contact_id', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('up_to_message_id', sa.BigInteger(), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_ai_summaries_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_ai_summaries_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_ai_summaries_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_summaries')),
    sa.UniqueConstraint('contact_id', name=op.f('uq_ai_summaries_contact_id'))
    )
    op.create_index(op.f('ix_ai_summaries_workspace_id'), 'ai_summaries', ['workspace_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_ai_summaries_workspace_id'), table_name='ai_summaries')
    op.drop_table('ai_summaries')
    op.drop_table('ai_usage_months')
    op.drop_index('ix_ai_usage_workspace_time', table_name='ai_usage')
    op.drop_table('ai_usage')
    op.drop_index('uq_ai_providers_default', table_name='ai_providers', postgresql_where=sa.text('is_default'))
    op.drop_index(op.f('ix_ai_providers_workspace_id'), table_name='ai_providers')
    op.drop_table('ai_providers')
