"""entry links and funnel goals: wa.me links whose pre-filled message carries a code, and the contacts they brought

``entry_links`` are Links de entrada (``workbench/services/entry_links.py``): a name, a number, a source, UTM
fields and the pre-filled message holding ``code`` (unique in the workspace). ``entry_link_contacts`` holds each
contact's attribution, at most one per contact (the first message that carried a code), and ``contacts_count``
the link's counter. ``funnels.goal`` is a funnel's goal (a step reached or a tag added within N days of entering).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 17:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('funnels', sa.Column('goal', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        'entry_links',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('instance_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('source', sa.String(length=80), nullable=False),
        sa.Column('utm', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('contacts_count', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_by', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name='fk_entry_links_workspace_id_workspaces',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name='fk_entry_links_instance_id_instances',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_entry_links_created_by_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_entry_links'),
        sa.UniqueConstraint('workspace_id', 'code', name='uq_entry_links_workspace_id'),
    )
    op.create_index('ix_entry_links_workspace_id', 'entry_links', ['workspace_id'], unique=False)
    op.create_table(
        'entry_link_contacts',
        sa.Column('contact_id', sa.BigInteger(), nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('link_id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name='fk_entry_link_contacts_contact_id_contacts',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name='fk_entry_link_contacts_workspace_id_workspaces', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['link_id'], ['entry_links.id'], name='fk_entry_link_contacts_link_id_entry_links',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('contact_id', name='pk_entry_link_contacts'),
    )
    op.create_index('ix_entry_link_contacts_workspace_id', 'entry_link_contacts', ['workspace_id'], unique=False)
    op.create_index('ix_entry_link_contacts_link_id', 'entry_link_contacts', ['link_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_entry_link_contacts_link_id', table_name='entry_link_contacts')
    op.drop_index('ix_entry_link_contacts_workspace_id', table_name='entry_link_contacts')
    op.drop_table('entry_link_contacts')
    op.drop_index('ix_entry_links_workspace_id', table_name='entry_links')
    op.drop_table('entry_links')
    op.drop_column('funnels', 'goal')
