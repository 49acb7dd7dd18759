"""Workspaces, members and teams, and the demo workspace created on first start."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import available_timezones

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.base.i18n import t
from workbench.services import routing
from workbench.services.auth import Actor, create_user, generate_password, hash_password, revoke_logins
from workbench.services.funnels import install_examples
from workbench.services.workspace_settings import DefaultReply
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import (
    ROLES,
    ActivityEvent,
    Conversation,
    Setting,
    Team,
    TeamMember,
    User,
    Workspace,
    WorkspaceMember,
    is_row_id,
)
from workbench.store.outages import after_commit
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


# -- Equipes and Pessoas (admins) -------------------------------------------------------------------------------
# Teams and people are managed by admins only. Every change is checked here against the actor's workspace: a team
# or person of another workspace is "not found". The last active admin of a workspace can be neither demoted nor
# deactivated (checked under a lock on the workspace's admin memberships, so two admins demoting each other at once
# cannot both succeed).

MAX_TEAM_NAME = 120


def _team_name(name: object) -> str:
    text = clean_text(name if isinstance(name, str) else "")[0].strip()
    if not text or len(text) > MAX_TEAM_NAME:
        raise InvalidInput("bad team name", key="error.team_name", max=MAX_TEAM_NAME)
    return text


def _team(session: Session, actor: Actor, team_id: object) -> Team:
    team = session.scalars(select(Team).where(Team.id == team_id, Team.workspace_id == actor.workspace_id)
                           .with_for_update()).first() if is_row_id(team_id) else None
    if team is None:
        raise NotFound("team", key="error.team_not_found")
    return team


def _member(session: Session, actor: Actor, user_id: object) -> WorkspaceMember:
    member = session.get(WorkspaceMember, (actor.workspace_id, user_id)) if is_row_id(user_id) else None
    if member is None:
        raise NotFound("agent", key="error.agent_not_found")
    return member


def _name_taken(session: Session, actor: Actor, name: str, other_than: int | None = None) -> None:
    query = select(Team.id).where(Team.workspace_id == actor.workspace_id, func.lower(Team.name) == name.lower())
    if other_than is not None:
        query = query.where(Team.id != other_than)
    if session.scalar(query) is not None:
        raise Conflict("team name taken", key="error.team_taken")


def _touch(actor: Actor) -> None:
    if not get_settings().redis_url:
        # Operator commands (``python -m workbench admin``) may run with no Redis at hand: the panel sees their
        # change at its next action anyway (``auth.resume`` reads the account on every interaction).
        return
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])


def _audit(session: Session, actor: Actor, kind: str, subject_type: str, subject_id: int, **data: object) -> None:
    session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind=kind,
                              subject_type=subject_type, subject_id=subject_id, data=data))


def create_team(actor: Actor, name: str) -> int:
    """Admin only: create a team; returns its id.

    Raises:
        InvalidInput: empty or longer than ``MAX_TEAM_NAME``. Conflict: another team has that name (ignoring case).
    """
    actor.require("admin")
    name = _team_name(name)
    try:
        with session_scope() as session:
            _name_taken(session, actor, name)
            team = Team(workspace_id=actor.workspace_id, name=name)
            session.add(team)
            session.flush()
            _audit(session, actor, "team_created", "team", team.id, name=name)
            team_id = team.id
    except IntegrityError as exc:  # two admins creating the same name at once: the unique constraint decides
        raise Conflict("team name taken", key="error.team_taken") from exc
    _touch(actor)
    return team_id


def rename_team(actor: Actor, team_id: int, name: str) -> None:
    """Admin only: rename a team (its conversations, members and funnel steps naming its id follow)."""
    actor.require("admin")
    name = _team_name(name)
    try:
        with session_scope() as session:
            team = _team(session, actor, team_id)
            _name_taken(session, actor, name, other_than=team.id)
            _audit(session, actor, "team_renamed", "team", team.id, old=team.name, new=name)
            team.name = name
    except IntegrityError as exc:
        raise Conflict("team name taken", key="error.team_taken") from exc
    _touch(actor)


def delete_team(actor: Actor, team_id: int) -> int:
    """Admin only: delete a team. Its conversations return to the workspace's queue (those with a person keep
    them); returns how many unresolved conversations it had."""
    actor.require("admin")
    with session_scope() as session:
        team = _team(session, actor, team_id)
        rows = session.execute(select(Conversation.id, Conversation.agent_id).where(
            Conversation.workspace_id == actor.workspace_id, Conversation.team_id == team.id,
            Conversation.status.in_(routing.UNRESOLVED)).with_for_update()).all()
        for conversation_id, agent_id in rows:
            if agent_id is None:
                routing.to_queue(session, actor.workspace_id, conversation_id, None, actor.user_id, "team_deleted")
        session.execute(update(Conversation).where(Conversation.team_id == team.id).values(team_id=None))
        _audit(session, actor, "team_deleted", "team", team.id, name=team.name)
        session.delete(team)
    _touch(actor)
    return len(rows)


def set_team_auto_assign(actor: Actor, team_id: int, on: bool) -> int:
    """Admin only: switch a team's *Distribuir automaticamente*. Switching it on hands out what waits in the
    team's queue at once; returns how many conversations were assigned."""
    actor.require("admin")
    with session_scope() as session:
        team = _team(session, actor, team_id)
        team.auto_assign = bool(on)
        _audit(session, actor, "team_auto_assign", "team", team.id, on=bool(on))
        session.flush()
        given = routing.drain_team(session, actor.workspace_id, team.id) if on else 0
    _touch(actor)
    return given


def add_team_member(actor: Actor, team_id: int, user_id: int) -> None:
    """Admin only: put a person of the workspace in a team (a person may be in several; adding twice is a no-op).
    An available newcomer to a distributing team is handed what waits in its queue."""
    actor.require("admin")
    with session_scope() as session:
        team = _team(session, actor, team_id)
        _member(session, actor, user_id)
        session.execute(pg_insert(TeamMember).values(team_id=team.id, user_id=user_id).on_conflict_do_nothing())
        _audit(session, actor, "team_member_added", "team", team.id, user_id=user_id)
        routing.drain_team(session, actor.workspace_id, team.id)
    _touch(actor)


def remove_team_member(actor: Actor, team_id: int, user_id: int) -> None:
    """Admin only: take a person out of a team (the conversations they hold stay with them)."""
    actor.require("admin")
    with session_scope() as session:
        team = _team(session, actor, team_id)
        _member(session, actor, user_id)
        session.execute(delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id))
        _audit(session, actor, "team_member_removed", "team", team.id, user_id=user_id)
    _touch(actor)


def team_details(actor: Actor) -> list[dict]:
    """Teams of the workspace with their switch and members (ids and names), for Configurações › Equipes."""
    with session_scope() as session:
        teams = session.execute(select(Team.id, Team.name, Team.auto_assign)
                                .where(Team.workspace_id == actor.workspace_id).order_by(Team.name)).all()
        members = session.execute(select(TeamMember.team_id, User.id, User.name)
                                  .join(User, User.id == TeamMember.user_id).join(Team, Team.id == TeamMember.team_id)
                                  .where(Team.workspace_id == actor.workspace_id).order_by(User.name)).all()
    return [{"id": team.id, "name": team.name, "auto_assign": team.auto_assign,
             "members": [{"id": m[1], "name": m[2]} for m in members if m[0] == team.id]} for team in teams]


def people(actor: Actor) -> list[dict]:
    """Members with their role, whether active, their availability as routing sees it and their teams."""
    at = now()
    with session_scope() as session:
        rows = session.execute(
            select(User.id, User.name, User.email, User.is_active, WorkspaceMember.role, WorkspaceMember.availability,
                   WorkspaceMember.last_seen_at)
            .join(WorkspaceMember, WorkspaceMember.user_id == User.id)
            .where(WorkspaceMember.workspace_id == actor.workspace_id).order_by(User.name)).all()
        teams = session.execute(select(TeamMember.user_id, Team.name).join(Team, Team.id == TeamMember.team_id)
                                .where(Team.workspace_id == actor.workspace_id).order_by(Team.name)).all()
    return [{"id": r.id, "name": r.name, "email": r.email, "role": r.role, "active": r.is_active,
             "availability": routing.effective_availability(r.availability, r.last_seen_at, at)
             if r.is_active else "offline",
             "teams": [name for uid, name in teams if uid == r.id]} for r in rows]


def _keep_an_admin(session: Session, actor: Actor, user_id: int) -> None:
    """Refuse when ``user_id`` is the workspace's last active admin (admins' memberships locked meanwhile)."""
    admins = session.scalars(select(WorkspaceMember.user_id).where(
        WorkspaceMember.workspace_id == actor.workspace_id, WorkspaceMember.role == "admin")
        .order_by(WorkspaceMember.user_id).with_for_update()).all()
    active = session.scalars(select(User.id).where(User.id.in_(admins), User.is_active.is_(True))).all()
    if set(active) <= {user_id}:
        raise Conflict("last admin", key="error.last_admin")


def change_role(actor: Actor, user_id: int, role: str) -> None:
    """Admin only: change a person's role (the change shows at their next action; ``auth.resume``).

    Raises:
        InvalidInput: unknown role. Conflict: it would leave the workspace without an active admin.
    """
    actor.require("admin")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role}", key="error.role")
    with session_scope() as session:
        member = _member(session, actor, user_id)
        if member.role == role:
            return
        if member.role == "admin":
            _keep_an_admin(session, actor, member.user_id)
        _audit(session, actor, "role_changed", "user", member.user_id, old=member.role, new=role)
        member.role = role
    _touch(actor)


def set_active(actor: Actor, user_id: int, active: bool) -> int:
    """Admin only: deactivate or reactivate a person. A deactivated person cannot log in, each of their open
    logins ends at its next action, and their unresolved conversations go back to their team (given to another
    member when it distributes) or to the workspace's queue; what they wrote keeps their name. Returns how many
    conversations were given back.

    Raises:
        Conflict: deactivating oneself, or the last active admin.
    """
    actor.require("admin")
    with session_scope() as session:
        member = _member(session, actor, user_id)
        user = session.get(User, member.user_id, with_for_update=True)
        if user.is_active == bool(active):
            return 0
        released = 0
        if not active:
            if user.id == actor.user_id:
                raise Conflict("cannot deactivate oneself", key="error.deactivate_self")
            if member.role == "admin":
                _keep_an_admin(session, actor, user.id)
            user.is_active = False
            revoke_logins(session, user.id)
            session.flush()
            released = routing.release_agent(session, actor.workspace_id, user.id, actor.user_id)
        else:
            user.is_active = True
        _audit(session, actor, "user_activated" if active else "user_deactivated", "user", user.id)
    _touch(actor)
    return released


def reset_password(actor: Actor, user_id: int) -> Credentials:
    """Admin only: give a person a new random password (shown once) and end their open logins."""
    return set_password(actor, user_id, generate_password())


def set_password(actor: Actor, user_id: int, password: str) -> Credentials:
    """Admin only: give a person ``password`` (operators type it on standard input) and end their open logins.

    Raises:
        InvalidInput: shorter than ``auth.MIN_PASSWORD``.
    """
    actor.require("admin")
    password_hash = hash_password(password)  # hashed before the row is locked: it takes a while
    with session_scope() as session:
        member = _member(session, actor, user_id)
        user = session.get(User, member.user_id, with_for_update=True)
        user.password_hash = password_hash
        revoke_logins(session, user.id)
        _audit(session, actor, "password_reset", "user", user.id)
        email = user.email
    return Credentials(email, password)


def rename_self(actor: Actor, name: str) -> str:
    """*Minha conta*: anyone changes their own name (shown at their next action); returns the stored name."""
    text = clean_text(name if isinstance(name, str) else "")[0].strip()
    if not text or len(text) > 120:
        raise InvalidInput("bad name", key="error.person_name", max=120)
    with session_scope() as session:
        session.execute(update(User).where(User.id == actor.user_id).values(name=text))
    return text
