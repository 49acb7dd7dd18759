"""contact list: indexes behind the Contatos list's sorts

Each sort of the list (``workbench/services/contact_list.py``) walks an index in order from the page's cursor, so a
page deep in a large list costs what the first one does: name (name, else WhatsApp name, else phone, ignoring
case), phone and creation date, each within the workspace and with the id as tie-breaker; the last message
lives on the conversation, so its index is there (no message yet counts as 1970). The search reads one
generated column, ``contacts.search_text`` (names, e-mail, company and field values, lower case, without accents),
instead of five columns and the fields' JSON per row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


ACCENTED = "áàâãäéèêẽëíìîĩïóòôõöúùûũüçñ"  # as workbench/store/models.py composes them
UNACCENTED = "aaaaaeeeeeiiiiiooooouuuuucn"
SEARCH_TEXT = (
    "translate(lower(coalesce(name, '') || ' ' || coalesce(push_name, '') || ' ' || coalesce(email, '') || ' ' || "
    f"coalesce(company, '') || ' ' || jsonb_path_query_array(custom_data, '$.*')::text), '{ACCENTED}', '{UNACCENTED}')"
)


def upgrade() -> None:
    op.add_column('contacts', sa.Column('search_text', sa.Text(), sa.Computed(SEARCH_TEXT, persisted=True),
                                        nullable=False))
    op.create_index('ix_contacts_list_name', 'contacts',
                    ['workspace_id', sa.literal_column('lower(COALESCE(name, push_name, phone))'), 'id'], unique=False)
    op.create_index('ix_contacts_list_phone', 'contacts', ['workspace_id', 'phone', 'id'], unique=False)
    op.create_index('ix_contacts_list_created', 'contacts', ['workspace_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_conversations_list_last_message', 'conversations',
                    ['workspace_id', sa.literal_column("COALESCE(last_message_at, '1970-01-01 00:00:00+00'::timestamptz)"),
                     'contact_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_conversations_list_last_message', table_name='conversations')
    op.drop_index('ix_contacts_list_created', table_name='contacts')
    op.drop_index('ix_contacts_list_phone', table_name='contacts')
    op.drop_index('ix_contacts_list_name', table_name='contacts')
    op.drop_column('contacts', 'search_text')
