"""contact 360: messages by conversation and time

The Visão 360's activity feed reads a contact's messages newest first by ``(created_at, id)`` in cursor pages
(``workbench/services/contact_feed.py``); this index lets each page read only its own rows, however long the
conversation (``bench/contact_feed.py``).

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


def downgrade() -> None:
    op.drop_index('ix_messages_conversation_time', table_name='messages')
