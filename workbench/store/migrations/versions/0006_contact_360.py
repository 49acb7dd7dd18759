"""contact 360: messages and activity by subject and time

The Visão 360's activity feed reads a contact's messages and activity events newest first by ``(created_at, id)``
in cursor pages (``workbench/services/contact_feed.py``); these indexes let each page read only its own rows, however
long the history (``bench/contact_feed.py``). The activity index replaces ``ix_activity_subject``, its prefix.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:20:00
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_conversation_time', 'messages', ['conversation_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_activity_subject_time', 'activity_events',
                    ['workspace_id', 'subject_type', 'subject_id', 'created_at', 'id'], unique=False)
    op.drop_index('ix_activity_subject', table_name='activity_events')


def downgrade() -> None:
    op.create_index('ix_activity_subject', 'activity_events', ['workspace_id', 'subject_type', 'subject_id'],
                    unique=False)
    op.drop_index('ix_activity_subject_time', table_name='activity_events')
    op.drop_index('ix_messages_conversation_time', table_name='messages')
