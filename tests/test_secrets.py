"""Workspace secrets: stored encrypted (not in a dump of the database), shown again only as their last 4
characters, admins only, isolated between workspaces."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text

from tests.factories import make_actor, make_workspace
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services import secrets
from workbench.store.db import session_scope


def database_dump() -> str:
    """Every row of every table as text: what a dump of the database would hold."""
    with session_scope() as s:
        tables = [r[0] for r in s.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
        rows = []
        for table in tables:
            rows += [r[0] for r in s.execute(text(f'SELECT t::text FROM "{table}" t'))]
    return "\n".join(rows)


def test_a_secret_is_encrypted_at_rest_and_shown_only_by_its_last_4_characters(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    info = secrets.set_secret(admin, "crm_token", "  sk-live-abcdefghijklmnop  ")
    assert (info.name, info.hint) == ("crm_token", "mnop")
    dump = database_dump()
    assert "sk-live-abcdefghijklmnop" not in dump and "abcdefgh" not in dump
    assert "sk-live" not in base64.b64encode(dump.encode()).decode()
    assert [(s.name, s.hint) for s in secrets.list_secrets(admin)] == [("crm_token", "mnop")]
    with session_scope() as s:
        assert secrets.secret_value(s, ws, "crm_token") == "sk-live-abcdefghijklmnop"
        assert secrets.secret_value(s, ws, "other") is None
    # replaced in place, same name
    secrets.set_secret(admin, "crm_token", "short")
    assert [(s.name, s.hint) for s in secrets.list_secrets(admin)] == [("crm_token", "")]  # too short to hint at


def test_signing_secret_is_generated_once_and_is_a_valid_standard_webhooks_key(engine, r):
    admin = make_actor(make_workspace())
    value = secrets.generate_signing_secret(admin, "assinatura")
    assert value.startswith("whsec_") and len(secrets.signing_key(value)) == 32
    assert value not in database_dump()
    with pytest.raises(InvalidInput) as err:
        secrets.set_secret(admin, "ruim", "whsec_não-é-base64")
    assert err.value.key == "error.secret_signing"


@pytest.mark.parametrize(("name", "value", "key"), [
    ("", "x", "error.secret_name"), ("com espaço", "x", "error.secret_name"), ("1abc", "x", "error.secret_name"),
    ("ok", "   ", "error.secret_empty"), ("ok", "x" * 5000, "error.secret_long")])
def test_bad_input_gets_a_clear_error(engine, r, name, value, key):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as err:
        secrets.set_secret(admin, name, value)
    assert err.value.key == key
    assert secrets.list_secrets(admin) == []


def test_only_admins_manage_secrets_and_workspaces_do_not_see_each_others(engine, r):
    ws, other = make_workspace(), make_workspace("Outra")
    admin, supervisor, agent = make_actor(ws), make_actor(ws, "supervisor"), make_actor(ws, "agent")
    info = secrets.set_secret(admin, "token", "valor-secreto-123")
    for actor in (supervisor, agent):
        with pytest.raises(PermissionDenied):
            secrets.set_secret(actor, "token2", "x")
        with pytest.raises(PermissionDenied):
            secrets.list_secrets(actor)
    assert secrets.secret_names(supervisor) == ["token"]
    with pytest.raises(PermissionDenied):
        secrets.secret_names(agent)
    stranger = make_actor(other)
    assert secrets.list_secrets(stranger) == []
    with pytest.raises(NotFound):
        secrets.delete_secret(stranger, info.id)
    with session_scope() as s:
        assert secrets.secret_value(s, other, "token") is None
    secrets.delete_secret(admin, info.id)
    assert secrets.list_secrets(admin) == []
