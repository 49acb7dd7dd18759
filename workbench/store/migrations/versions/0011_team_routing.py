"""team at work: automatic distribution, availability, quick replies, notes in the thread

``teams.auto_assign`` is a team's *Distribuir automaticamente*. Each membership keeps the person's chosen availability
(``available`` / ``away`` / ``offline``), when the panel last saw them (``last_seen_at``: an idle person counts as
offline, ``workbench/services/routing.py``) and when they were last given a conversation (``last_assigned_at``: ties
in load go to who waited longest). ``quick_replies`` are the workspace's saved replies, one shortcut each ignoring case.
``notes.kind`` tells a private note written in the conversation's thread (``thread``) from a note on the contact.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('teams', sa.Column('auto_assign', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('workspace_members', sa.Column('availability', sa.String(length=16), server_default='available',
                                                 nullable=False))
    op.add_column('workspace_members', sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('workspace_members', sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint('ck_workspace_members_availability', 'workspace_members',
                               "availability IN ('available', 'away', 'offline')")
    op.add_column('notes', sa.Column('kind', sa.String(length=16), server_default='contact', nullable=False))
    op.create_index('ix_notes_conversation', 'notes', ['conversation_id', 'created_at'], unique=False)
    op.create_table(
        'quick_replies',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('workspace_id', sa.BigInteger(), nullable=False),
        sa.Column('shortcut', sa.String(length=40), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_by', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name='fk_quick_replies_workspace_id_workspaces',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_quick_replies_created_by_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_quick_replies'),
    )
    op.create_index('uq_quick_replies_workspace_lower_shortcut', 'quick_replies',
                    ['workspace_id', sa.literal_column('lower(shortcut)')], unique=True)


def downgrade() -> None:
    op.drop_index('uq_quick_replies_workspace_lower_shortcut', table_name='quick_replies')
    op.drop_table('quick_replies')
    op.drop_index('ix_notes_conversation', table_name='notes')
    op.drop_column('notes', 'kind')
    op.drop_constraint('ck_workspace_members_availability', 'workspace_members', type_='check')
    op.drop_column('workspace_members', 'last_assigned_at')
    op.drop_column('workspace_members', 'last_seen_at')
    op.drop_column('workspace_members', 'availability')
    op.drop_column('teams', 'auto_assign')
