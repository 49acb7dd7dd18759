"""integrations: named workspace secrets and the contact's Odoo lead

``workspace_secrets`` holds the secrets funnel steps pick by name (webhook tokens, Standard Webhooks signing
keys), Fernet-encrypted (``workbench/store/crypto.py``) with only their last 4 characters in clear. Odoo's and
the SMTP server's settings live in the existing ``integrations`` table. ``contacts.odoo_lead_id`` is the lead
the step "Enviar para Odoo" created or updated for the contact, so the next push updates it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'workspace_secrets',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.LargeBinary(), nullable=False),
        sa.Column('hint', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_workspace_secrets_workspace_id_workspaces'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace_secrets')),
        sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_workspace_secrets_workspace_id')),
    )
    op.create_index(op.f('ix_workspace_secrets_workspace_id'), 'workspace_secrets', ['workspace_id'], unique=False)
    op.add_column('contacts', sa.Column('odoo_lead_id', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column('contacts', 'odoo_lead_id')
    op.drop_index(op.f('ix_workspace_secrets_workspace_id'), table_name='workspace_secrets')
    op.drop_table('workspace_secrets')
