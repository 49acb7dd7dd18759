"""Operator commands (``python -m workbench admin …``): accounts managed from the machine's shell.

Whoever runs these commands has the data dir or ``DATABASE_URL`` in hand, so they are not checked against a
login: they act as the *operator*, an admin of the workspace concerned with no account of its own (the activity
it leaves has no author). Each command reuses the panel's services (``workspaces``), so the same rules hold — the
last active admin cannot be deactivated, a reset ends the person's open logins, e-mails are unique.

Passwords are never taken as arguments (they would stay in the shell's history): a new one is generated and
returned to be printed once, or read from standard input by the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.services import workspaces
from workbench.services.auth import Actor
from workbench.services.workspaces import Credentials
from workbench.store.db import session_scope
from workbench.store.models import User, Workspace, WorkspaceMember
from workbench.store.text import clean_text

MAX_WORKSPACE_NAME = 120


@dataclass(frozen=True)
class Account:
    """One membership as ``admin list`` shows it."""

    workspace_id: int
    workspace: str
    user_id: int
    email: str
    name: str
    role: str
    active: bool


def operator(workspace_id: int) -> Actor:
    """The operator acting as an admin of ``workspace_id`` (no account: its activity rows have no author)."""
    with session_scope() as session:
        if session.get(Workspace, workspace_id) is None:
            raise NotFound("workspace", key="error.workspace_not_found")
    return Actor(None, workspace_id, "admin", "operator", "")  # type: ignore[arg-type]  # no user: NULL author


def create_workspace(name: str, admin_email: str, admin_name: str, password: str | None = None
                     ) -> tuple[int, Credentials]:
    """Create a workspace with its first admin; returns its id and the admin's credentials (generated password
    unless ``password`` is given)."""
    name = clean_text(name or "")[0].strip()
    if not name or len(name) > MAX_WORKSPACE_NAME:
        raise InvalidInput("bad workspace name", key="error.workspace_name", max=MAX_WORKSPACE_NAME)
    email = clean_text(admin_email or "")[0].strip().lower()
    with session_scope() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise Conflict("e-mail already registered", key="error.email_taken")
        workspace, creds = workspaces.create_workspace(session, name, email, clean_text(admin_name or "")[0],
                                                       password)
        return workspace.id, creds


def create_user(workspace_id: int, email: str, name: str, role: str, password: str | None = None) -> Credentials:
    """Create an account in ``workspace_id`` with ``role``; returns its credentials."""
    return workspaces.add_member(operator(workspace_id), email, name, role, password)


def _membership(email: str, workspace_id: int | None) -> tuple[int, int]:
    """(workspace id, user id) of the account ``email`` (its first workspace unless ``workspace_id``)."""
    query = (select(WorkspaceMember.workspace_id, User.id).join(User, User.id == WorkspaceMember.user_id)
             .where(User.email == (email or "").strip().lower()))
    if workspace_id is not None:
        query = query.where(WorkspaceMember.workspace_id == workspace_id)
    with session_scope() as session:
        row = session.execute(query.order_by(WorkspaceMember.created_at)).first()
    if row is None:
        raise NotFound("account", key="error.agent_not_found")
    return row[0], row[1]


def reset_password(email: str, password: str | None = None, workspace_id: int | None = None) -> Credentials:
    """Give the account ``email`` a new password (random unless given) and end its open logins."""
    ws, user_id = _membership(email, workspace_id)
    actor = operator(ws)
    if password is None:
        return workspaces.reset_password(actor, user_id)
    return workspaces.set_password(actor, user_id, password)


def deactivate(email: str, workspace_id: int | None = None) -> int:
    """Deactivate the account ``email``; returns how many conversations went back to a queue."""
    ws, user_id = _membership(email, workspace_id)
    return workspaces.set_active(operator(ws), user_id, False)


def accounts() -> list[Account]:
    """Every workspace's members with their roles (workspaces without members appear with none)."""
    with session_scope() as session:
        rows = session.execute(
            select(Workspace.id, Workspace.name, User.id, User.email, User.name, WorkspaceMember.role, User.is_active)
            .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
            .join(User, User.id == WorkspaceMember.user_id).order_by(Workspace.id, User.email)).all()
    return [Account(*row) for row in rows]


def workspace_names() -> list[tuple[int, str]]:
    """Every workspace's id and name."""
    with session_scope() as session:
        return [tuple(r) for r in session.execute(select(Workspace.id, Workspace.name).order_by(Workspace.id))]
