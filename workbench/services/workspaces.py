"""Workspaces, members and teams, and the demo workspace created on first start."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import available_timezones

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.base.errors import Conflict, InvalidInput
from workbench.base.i18n import t
from workbench.services.auth import Actor, create_user, generate_password
from workbench.services.funnels import install_examples
from workbench.services.workspace_settings import DefaultReply
from workbench.store.db import session_scope
from workbench.store.models import Setting, Team, TeamMember, User, Workspace, WorkspaceMember
from workbench.store.text import clean_text

DEMO_ADMIN_EMAIL = "admin@demo.local"
DEMO_TEAMS = ("Vendas", "Suporte")


@dataclass(frozen=True)
class Credentials:
    """Credentials of an account created by the system, shown once."""

    email: str
    password: str


def create_workspace(session: Session, name: str, admin_email: str, admin_name: str,
                     admin_password: str | None = None) -> tuple[Workspace, Credentials]:
    """Create a workspace with its first admin; returns the admin's credentials (password generated if None)."""
    workspace = Workspace(name=name)
    session.add(workspace)
    session.flush()
    password = admin_password or generate_password()
    create_user(session, admin_email, admin_name, password, workspace.id, "admin")
    for team in DEMO_TEAMS:
        session.add(Team(workspace_id=workspace.id, name=team))
    session.flush()
    return workspace, Credentials(admin_email, password)


def ensure_demo_workspace() -> Credentials | None:
    """On first start, create the demo workspace and its admin. Returns credentials only when created."""
    with session_scope() as session:
        # serialise concurrent first starts on two machines
        session.execute(select(func.pg_advisory_xact_lock(727002)))
        if session.scalar(select(func.count()).select_from(Workspace)):
            return None
        workspace, creds = create_workspace(session, t("demo.workspace_name"), DEMO_ADMIN_EMAIL, t("demo.admin_name"))
        install_examples(session, workspace.id)
        session.add(Setting(workspace_id=workspace.id, key="default_reply",
                            value=DefaultReply().model_dump()))
    return creds


def list_teams(actor: Actor) -> list[dict]:
    """Teams of the actor's workspace with their member counts."""
    with session_scope() as session:
        rows = session.execute(
            select(Team.id, Team.name, func.count(TeamMember.user_id))
            .outerjoin(TeamMember, TeamMember.team_id == Team.id)
            .where(Team.workspace_id == actor.workspace_id).group_by(Team.id).order_by(Team.name)
        ).all()
    return [{"id": r[0], "name": r[1], "members": r[2]} for r in rows]


def list_members(actor: Actor) -> list[dict]:
    """Members of the actor's workspace (any role may see who is on the team)."""
    with session_scope() as session:
        rows = session.execute(
            select(User.id, User.name, User.email, WorkspaceMember.role)
            .join(WorkspaceMember, WorkspaceMember.user_id == User.id)
            .where(WorkspaceMember.workspace_id == actor.workspace_id).order_by(User.name)
        ).all()
    return [{"id": r[0], "name": r[1], "email": r[2], "role": r[3]} for r in rows]


def add_member(actor: Actor, email: str, name: str, role: str, password: str | None = None) -> Credentials:
    """Admin only: create an account in the actor's workspace; returns its credentials.

    E-mails are unique across the server (they are the login), so one already in use is a ``Conflict``.
    """
    actor.require("admin")
    password = password or generate_password()
    email, name = clean_text(email)[0], clean_text(name)[0]
    normalized = email.strip().lower()
    try:
        with session_scope() as session:
            if session.scalar(select(User.id).where(User.email == normalized)) is not None:
                raise Conflict("e-mail already registered", key="error.email_taken")
            create_user(session, email, name, password, actor.workspace_id, role)
    except IntegrityError as exc:
        # Two admins adding the same e-mail at once: the unique index decides, with the same message.
        raise Conflict("e-mail already registered", key="error.email_taken") from exc
    return Credentials(normalized, password)


# Brazil's zones first (the product's people), then every other zone the system knows.
BRAZIL_ZONES = ("America/Sao_Paulo", "America/Bahia", "America/Fortaleza", "America/Recife", "America/Belem",
                "America/Maceio", "America/Araguaina", "America/Manaus", "America/Cuiaba", "America/Campo_Grande",
                "America/Porto_Velho", "America/Boa_Vista", "America/Rio_Branco", "America/Noronha")


def timezone_choices() -> list[str]:
    """Zones offered in Configurações: Brazil's first, then the rest alphabetically."""
    others = sorted(zone for zone in available_timezones() if "/" in zone and zone not in BRAZIL_ZONES
                    and not zone.startswith(("Etc/", "SystemV/", "posix/", "right/")))
    return [*BRAZIL_ZONES, *others]


def get_timezone(actor: Actor) -> str:
    """The workspace's time zone: times in the panel and funnels' business hours use it."""
    with session_scope() as session:
        return session.scalar(select(Workspace.timezone).where(Workspace.id == actor.workspace_id))


def set_timezone(actor: Actor, zone: str) -> str:
    """Admins and supervisors set the workspace's time zone (an IANA name such as "America/Manaus")."""
    actor.require("admin", "supervisor")
    if zone not in available_timezones():
        raise InvalidInput("unknown time zone", key="error.timezone")
    with session_scope() as session:
        session.execute(update(Workspace).where(Workspace.id == actor.workspace_id).values(timezone=zone))
    return zone
