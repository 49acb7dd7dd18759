"""Database errors quote no data: what was being written (message text, phones) stays out of logs."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tests.factories import make_instance, make_workspace
from workbench.store.db import HotStatement, get_engine, safe_error_text, session_scope
from workbench.store.models import Contact

PHONE = "5511912345678"
SECRET = "senha-do-cliente-123"


def _failure(statement) -> DBAPIError:
    with pytest.raises(DBAPIError) as info, session_scope() as s:
        statement(s)
    return info.value


def test_error_texts_hide_the_bound_parameters(engine):
    error = _failure(lambda s: s.execute(text("SELECT CAST(:v AS integer)"), {"v": SECRET}))
    assert "parameters hidden" in str(error)
    assert "'v': " not in str(error)


def test_safe_error_text_names_the_constraint_but_quotes_no_value(engine):
    ws = make_workspace()
    inst = make_instance(ws)
    with session_scope() as s:
        s.add(Contact(workspace_id=ws, instance_id=inst, phone=PHONE))
    duplicate = _failure(lambda s: s.add(Contact(workspace_id=ws, instance_id=inst, phone=PHONE)))
    assert PHONE in str(duplicate.orig), "PostgreSQL's DETAIL quotes the value: never log it"
    described = safe_error_text(duplicate)
    assert described == "IntegrityError/UniqueViolation sqlstate=23505 constraint=uq_contacts_instance_id " \
                        "table=contacts"
    cast = _failure(lambda s: s.execute(text("SELECT CAST(:v AS integer)"), {"v": SECRET}))
    assert SECRET in str(cast.orig)
    assert SECRET not in safe_error_text(cast) and "InvalidTextRepresentation" in safe_error_text(cast)
    assert safe_error_text(ValueError(f"bad text {SECRET}")) == "ValueError"


def test_a_hot_statement_fails_as_sqlalchemy_does_and_quotes_no_value(engine):
    """The message path's statements bypass SQLAlchemy's execution: their errors must still be SQLAlchemy's (the
    drain tells "PostgreSQL away" by OperationalError), with the parameters hidden and a dict sent as jsonb."""
    ws = make_workspace()
    inst = make_instance(ws)
    insert = HotStatement(text("INSERT INTO contacts (workspace_id, instance_id, phone, custom_data) "
                               "VALUES (:ws, :inst, :phone, :fields) RETURNING id, custom_data"))
    with session_scope() as s:
        [(contact_id, fields)] = insert.execute(s, {"ws": ws, "inst": inst, "phone": PHONE, "fields": {"nota": SECRET}})
    assert fields == {"nota": SECRET}
    duplicate = _failure(lambda s: insert.execute(s, {"ws": ws, "inst": inst, "phone": PHONE, "fields": {}}))
    assert isinstance(duplicate, IntegrityError)
    assert "parameters hidden" in str(duplicate) and PHONE not in str(duplicate).split("DETAIL")[0]
    assert safe_error_text(duplicate).startswith("IntegrityError/UniqueViolation sqlstate=23505")
    by_id = HotStatement(text("SELECT id FROM contacts WHERE id = :id"))
    with session_scope() as s:
        assert by_id.first(s, {"id": contact_id}) == (contact_id,)
        assert by_id.first(s, {"id": -1}) is None


def test_a_hot_statement_goes_on_after_the_pool_replaced_its_connection(engine):
    """HotStatements keep a cursor with the pool's record of a connection; a record that got a new connection (the
    old one broke and was invalidated) must not be handed the old cursor."""
    plain = HotStatement(text("SELECT :n"))
    write = HotStatement(text("SET LOCAL statement_timeout = 0"))  # returns no rows
    with get_engine().connect() as connection, Session(bind=connection) as session:
        assert plain.first(session, {"n": 1}) == (1,)
        assert write.execute(session, {}) == []
        before = connection.connection.driver_connection
        connection.invalidate()
        session.rollback()
        assert plain.first(session, {"n": 2}) == (2,)
        assert connection.connection.driver_connection is not before
