"""Schema migrations on real PostgreSQL: each revision upgrades data written under the one before."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from tests.factories import fresh_database, make_workspace
from workbench.store import db
from workbench.store.db import session_scope
from workbench.store.migrations import upgrade_database
from workbench.store.models import Tag


def test_tags_that_differ_only_in_case_are_merged_keeping_their_contacts(servers):
    url, drop = fresh_database(servers["DATABASE_URL"])
    try:
        upgrade_database(url, "0001")
        engine = create_engine(db.normalize_url(url))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workspaces (id, name) VALUES (1, 'Loja'), (2, 'Outra')"))
            conn.execute(text("INSERT INTO instances (id, workspace_id, name, transport) VALUES "
                              "(1, 1, 'Comercial', 'sandbox')"))
            conn.execute(text("INSERT INTO contacts (id, workspace_id, instance_id, phone) VALUES "
                              "(1, 1, 1, '5511900000001'), (2, 1, 1, '5511900000002')"))
            conn.execute(text("INSERT INTO tags (id, workspace_id, name) VALUES "
                              "(1, 1, 'VIP'), (2, 1, 'vip'), (3, 1, 'Vip'), (4, 2, 'vip'), (5, 1, 'novo')"))
            # contact 1 carries two spellings, contact 2 only a later one
            conn.execute(text("INSERT INTO contact_tags (contact_id, tag_id) VALUES (1, 1), (1, 2), (2, 3), (2, 5)"))
        upgrade_database(url)
        with engine.begin() as conn:
            tags = conn.execute(text("SELECT id, workspace_id, name FROM tags ORDER BY id")).all()
            carried = conn.execute(text("SELECT contact_id, tag_id FROM contact_tags ORDER BY 1, 2")).all()
            assert [tuple(t) for t in tags] == [(1, 1, "VIP"), (4, 2, "vip"), (5, 1, "novo")]
            assert [tuple(c) for c in carried] == [(1, 1), (2, 1), (2, 5)]
            with pytest.raises(IntegrityError):
                conn.execute(text("INSERT INTO tags (workspace_id, name) VALUES (1, 'vIp')"))
        engine.dispose()
    finally:
        drop()


def test_the_database_refuses_a_second_spelling_of_a_tag(engine, r):
    ws, other = make_workspace(), make_workspace("Outra")
    with session_scope() as s:
        s.add_all([Tag(workspace_id=ws, name="VIP"), Tag(workspace_id=other, name="vip")])
    with pytest.raises(IntegrityError), session_scope() as s:
        s.add(Tag(workspace_id=ws, name="vip"))


def test_ai_tables_come_with_0009_and_go_with_its_downgrade(servers):
    from alembic import command

    from workbench.store.migrations import alembic_config

    url, drop = fresh_database(servers["DATABASE_URL"])
    try:
        upgrade_database(url, "0007")
        engine = create_engine(db.normalize_url(url))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workspaces (id, name) VALUES (1, 'Loja')"))
        upgrade_database(url, "0009")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO ai_providers (workspace_id, name, preset, base_url, model, is_default) "
                              "VALUES (1, 'A', 'custom', 'http://localhost:11434/v1', 'm', true)"))
            with pytest.raises(IntegrityError), conn.begin_nested():  # one default per workspace
                conn.execute(text("INSERT INTO ai_providers (workspace_id, name, preset, base_url, model, is_default)"
                                  " VALUES (1, 'B', 'custom', 'http://localhost:11434/v1', 'm', true)"))
            row = conn.execute(text("SELECT temperature, timeout_s, tool_mode FROM ai_providers")).one()
            assert tuple(row) == (0.3, 30.0, "auto")
        command.downgrade(alembic_config(db.normalize_url(url)), "0008")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT to_regclass('ai_providers')")).scalar() is None
        engine.dispose()
    finally:
        drop()
