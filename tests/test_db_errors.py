"""Database errors quote no data: what was being written (message text, phones) stays out of logs."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.factories import make_instance, make_workspace
from workbench.store.db import safe_error_text, session_scope
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
