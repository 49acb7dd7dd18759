"""tags unique ignoring case

A workspace's tags are matched ignoring case ("vip" reuses "VIP"), so the database keeps them unique that
way too: two people creating "VIP" and "vip" at the same moment get one tag. Tags that already differ only
in case are merged first into the oldest one (its contacts keep the tag).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_KEEP = """
    SELECT id, first_value(id) OVER (PARTITION BY workspace_id, lower(name) ORDER BY id) AS keep FROM tags
"""


def upgrade() -> None:
    op.execute(f"""
        INSERT INTO contact_tags (contact_id, tag_id, created_at)
        SELECT ct.contact_id, dup.keep, ct.created_at
        FROM contact_tags ct JOIN ({_KEEP}) dup ON dup.id = ct.tag_id
        WHERE dup.id <> dup.keep
        ON CONFLICT DO NOTHING
    """)
    op.execute(f"DELETE FROM tags WHERE id IN (SELECT id FROM ({_KEEP}) dup WHERE dup.id <> dup.keep)")
    op.drop_constraint('uq_tags_workspace_id', 'tags', type_='unique')
    op.create_index('uq_tags_workspace_lower_name', 'tags', ['workspace_id', sa.text('lower(name)')], unique=True)


def downgrade() -> None:
    op.drop_index('uq_tags_workspace_lower_name', table_name='tags')
    op.create_unique_constraint('uq_tags_workspace_id', 'tags', ['workspace_id', 'name'])
