"""Named workspace secrets (Configurações › Integrações › Segredos): tokens and signing keys that funnel steps
pick by name, e.g. the bearer token of a "Chamada HTTP" or its Standard Webhooks signing key.

A secret is stored Fernet-encrypted (``workbench/store/crypto.py``) and never shown again: pages list names and
the last 4 characters only. A generated signing key (``whsec_...``) is returned once, by the call that creates
it, so it can be copied to the receiving system. Steps store the *name*; executors read the value with
``secret_value`` in the worker, so no secret is ever in a funnel definition, a request row, a log or an event.
"""

from __future__ import annotations

import base64
import re
import secrets as std_secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.store.crypto import decrypt_secret, encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import Integration, WorkspaceSecret, is_row_id

SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_SECRET_CHARS = 4096
SIGNING_PREFIX = "whsec_"
"""Standard Webhooks' prefix of a signing secret; the key is the base64 text after it."""
MIN_HINT_LENGTH = 12
"""A secret shorter than this shows no characters at all: 4 of 8 would give half of it away."""


@dataclass(frozen=True)
class SecretInfo:
    """What pages may show about a secret: never its value."""

    id: int
    name: str
    hint: str
    updated_at: datetime


def hint(value: str) -> str:
    """What may be shown of a stored secret: its last 4 characters, or nothing for a short one."""
    return value[-4:] if len(value) >= MIN_HINT_LENGTH else ""


def integration_row(session: Session, workspace_id: int, kind: str) -> Integration | None:
    """The workspace's connection of ``kind`` (``odoo``, ``smtp``): its settings and encrypted secret."""
    return session.scalars(select(Integration).where(Integration.workspace_id == workspace_id,
                                                     Integration.kind == kind)).first()


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not SECRET_NAME.match(name):
        raise InvalidInput("secret name", key="error.secret_name")
    return name


def list_secrets(actor: Actor) -> list[SecretInfo]:
    """The workspace's secrets by name, with their last 4 characters (admins)."""
    actor.require("admin")
    with session_scope() as session:
        rows = session.scalars(select(WorkspaceSecret).where(WorkspaceSecret.workspace_id == actor.workspace_id)
                               .order_by(WorkspaceSecret.name))
        return [SecretInfo(row.id, row.name, row.hint, row.updated_at) for row in rows]


def secret_names(actor: Actor) -> list[str]:
    """Names only, for the funnel editor's pickers (admins and supervisors build funnels)."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        return list(session.scalars(select(WorkspaceSecret.name)
                                    .where(WorkspaceSecret.workspace_id == actor.workspace_id)
                                    .order_by(WorkspaceSecret.name)))


def set_secret(actor: Actor, name: str, value: str) -> SecretInfo:
    """Create the secret ``name`` or replace its value (admins). Surrounding blanks are dropped."""
    actor.require("admin")
    name = _check_name(name)
    value = (value or "").strip()
    if not value:
        raise InvalidInput("empty secret", key="error.secret_empty")
    if len(value) > MAX_SECRET_CHARS or "\x00" in value:
        raise InvalidInput("secret too long", key="error.secret_long", max=MAX_SECRET_CHARS)
    if value.startswith(SIGNING_PREFIX):
        signing_key(value)  # refuse a malformed signing secret now, not at the first call
    with session_scope() as session:
        stmt = pg_insert(WorkspaceSecret).values(workspace_id=actor.workspace_id, name=name,
                                                 value=encrypt_secret(value), hint=hint(value))
        row = session.execute(stmt.on_conflict_do_update(
            index_elements=[WorkspaceSecret.workspace_id, WorkspaceSecret.name],
            set_={"value": stmt.excluded.value, "hint": stmt.excluded.hint, "updated_at": stmt.excluded.updated_at})
            .returning(WorkspaceSecret.id, WorkspaceSecret.updated_at)).one()
    return SecretInfo(row.id, name, hint(value), row.updated_at)


def generate_signing_secret(actor: Actor, name: str) -> str:
    """Create (or replace) ``name`` with a new Standard Webhooks signing secret and return it: the only time it
    is shown, so the receiving system can be configured with it."""
    value = SIGNING_PREFIX + base64.b64encode(std_secrets.token_bytes(32)).decode()
    set_secret(actor, name, value)
    return value


def delete_secret(actor: Actor, secret_id: int) -> None:
    """Remove a secret (admins). Steps that name it then fail with "segredo não encontrado"."""
    actor.require("admin")
    if not is_row_id(secret_id):
        raise NotFound("secret", key="error.secret_not_found")
    with session_scope() as session:
        gone = session.execute(delete(WorkspaceSecret).where(WorkspaceSecret.id == secret_id,
                                                             WorkspaceSecret.workspace_id == actor.workspace_id))
        if not gone.rowcount:
            raise NotFound("secret", key="error.secret_not_found")


def secret_value(session: Session, workspace_id: int, name: str) -> str | None:
    """The decrypted value of the workspace's secret ``name`` (executors, in the worker); None when missing."""
    token = session.scalar(select(WorkspaceSecret.value).where(WorkspaceSecret.workspace_id == workspace_id,
                                                               WorkspaceSecret.name == name))
    return None if token is None else decrypt_secret(token)


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_`` (a secret without the prefix is
    used as raw text, as some receivers expect)."""
    if not secret.startswith(SIGNING_PREFIX):
        return secret.encode()
    try:
        key = base64.b64decode(secret[len(SIGNING_PREFIX):], validate=True)
    except ValueError as exc:
        raise InvalidInput("signing secret", key="error.secret_signing") from exc
    if len(key) < 16:
        raise InvalidInput("signing secret", key="error.secret_signing")
    return key
