"""Who handles a conversation: availability, automatic distribution and every assignment's record.

Availability. Each person picks *Disponível* (``available``), *Ausente* (``away``) or *Offline* (``offline``) in the
sidebar. The panel reports every interaction (``heartbeat``, written at most once every ``SEEN_EVERY``); someone it
has not seen for ``IDLE_OFFLINE`` (15 minutes: the panel closed, the laptop asleep) counts as offline whatever they
picked, and is available again at their next interaction.

Distribution. A team with *Distribuir automaticamente* (``teams.auto_assign``) gives each conversation routed to it
(by a funnel's route step, by hand, or coming back from a deactivated person) to an available, active member with
the fewest unresolved conversations (open or pending); ties go to who was given one longest ago (or never). With
nobody available the conversation waits in the team's queue (the team, no agent) and is given out, oldest first,
when a member becomes available (``set_availability``, ``heartbeat``) or the switch is turned on. Routings of one
team take the team's row lock, so two conversations arriving together do not both go to the same "least loaded"
person unseen.

Records. Every assignment sets ``assigned_at`` (cleared when a conversation goes back to a queue) and clears
``first_reply_at``, so the first human reply measured is the first after the latest assignment (``outbox``), and
adds an ``assigned`` activity event on the conversation with who, which team and how (``manual``, ``transfer``,
``auto``, ``funnel``, ``released``, ``team_deleted``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import InvalidInput
from workbench.services.auth import Actor
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import (
    AVAILABILITIES,
    ActivityEvent,
    Conversation,
    Team,
    TeamMember,
    User,
    WorkspaceMember,
)
from workbench.store.outages import after_commit

IDLE_OFFLINE = timedelta(minutes=15)
"""Someone the panel has not seen for this long counts as *Offline* (documented in the README)."""
SEEN_EVERY = timedelta(minutes=1)
"""``heartbeat`` writes ``last_seen_at`` at most this often."""
DRAIN_LIMIT = 500
"""Most conversations one call hands out of a team's queue (the rest wait for the next occasion)."""
UNRESOLVED = ("open", "pending")


def effective_availability(chosen: str, last_seen_at: datetime | None, at: datetime | None = None) -> str:
    """What routing sees: the chosen availability, or ``offline`` when the panel has not seen the person lately."""
    at = at or now()
    if last_seen_at is None or last_seen_at < at - IDLE_OFFLINE:
        return "offline"
    return chosen


def get_availability(actor: Actor) -> str:
    """The actor's chosen availability (the sidebar's selector)."""
    with session_scope() as session:
        return session.scalar(select(WorkspaceMember.availability).where(
            WorkspaceMember.workspace_id == actor.workspace_id, WorkspaceMember.user_id == actor.user_id)) \
            or "offline"


def set_availability(actor: Actor, availability: str) -> int:
    """Set the actor's availability; becoming available hands them what waits in their teams' queues.

    Returns how many conversations were assigned on the way.

    Raises:
        InvalidInput: not one of ``AVAILABILITIES``.
    """
    if availability not in AVAILABILITIES:
        raise InvalidInput("unknown availability", key="error.availability")
    at = now()
    with session_scope() as session:
        session.execute(update(WorkspaceMember).where(
            WorkspaceMember.workspace_id == actor.workspace_id, WorkspaceMember.user_id == actor.user_id,
        ).values(availability=availability, last_seen_at=at))
        session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind="availability",
                                  subject_type="user", subject_id=actor.user_id, data={"availability": availability}))
        assigned = drain_member_teams(session, actor.workspace_id, actor.user_id) if availability == "available" else 0
    _touch(actor.workspace_id)
    return assigned


def heartbeat(actor: Actor) -> int:
    """The panel saw the actor (called on every interaction). Writes at most once every ``SEEN_EVERY``; someone
    coming back from idle while *Disponível* is handed what waits in their teams' queues. Returns how many
    conversations were assigned."""
    at = now()
    with session_scope() as session:
        member = session.execute(select(WorkspaceMember.availability, WorkspaceMember.last_seen_at).where(
            WorkspaceMember.workspace_id == actor.workspace_id, WorkspaceMember.user_id == actor.user_id)).first()
        if member is None or (member.last_seen_at is not None and member.last_seen_at > at - SEEN_EVERY):
            return 0
        was = effective_availability(member.availability, member.last_seen_at, at)
        session.execute(update(WorkspaceMember).where(
            WorkspaceMember.workspace_id == actor.workspace_id, WorkspaceMember.user_id == actor.user_id,
        ).values(last_seen_at=at))
        if was != "offline" or member.availability != "available":
            return 0
        assigned = drain_member_teams(session, actor.workspace_id, actor.user_id)
    if assigned:
        _touch(actor.workspace_id)
    return assigned


def _touch(workspace_id: int) -> None:
    with after_commit():
        live.touch(get_redis(), [workspace_id])


def is_active(session: Session, user_id: int) -> bool:
    """Whether the account may be given conversations (not deactivated)."""
    return bool(session.scalar(select(User.is_active).where(User.id == user_id)))


def record(session: Session, workspace_id: int, conversation_id: int, actor_user_id: int | None,
           data: dict[str, Any]) -> None:
    """The ``assigned`` activity event of one conversation (the agent's name is kept: history outlives accounts)."""
    agent_id = data.get("agent_id")
    if agent_id is not None and "agent_name" not in data:
        data = {**data, "agent_name": session.scalar(select(User.name).where(User.id == agent_id))}
    session.add(ActivityEvent(workspace_id=workspace_id, actor_user_id=actor_user_id, kind="assigned",
                              subject_type="conversation", subject_id=conversation_id, data=data))


def assign_agent(session: Session, workspace_id: int, conversation_id: int, agent_id: int, team_id: int | None,
                 actor_user_id: int | None, how: str, extra: dict[str, Any] | None = None,
                 also: dict[str, Any] | None = None) -> None:
    """Give the conversation to ``agent_id`` (and ``team_id`` when not None; else its team stays), recorded.

    The caller has checked that the agent and the team are the workspace's. ``also``: more conversation columns to
    set in the same statement (a funnel's route step pauses the bot with it).
    """
    at = now()
    values: dict[str, Any] = {**(also or {}), "agent_id": agent_id, "assigned_at": at, "first_reply_at": None}
    if team_id is not None:
        values["team_id"] = team_id
    session.execute(update(Conversation).where(Conversation.id == conversation_id).values(**values))
    session.execute(update(WorkspaceMember).where(WorkspaceMember.workspace_id == workspace_id,
                                                  WorkspaceMember.user_id == agent_id).values(last_assigned_at=at))
    record(session, workspace_id, conversation_id, actor_user_id,
           {"agent_id": agent_id, "team_id": team_id, "how": how, **(extra or {})})


def pick_agent(session: Session, workspace_id: int, team_id: int, at: datetime | None = None) -> int | None:
    """The team's available, active member with the fewest unresolved conversations (ties: longest without one)."""
    at = at or now()
    load = select(func.count(Conversation.id)).where(
        Conversation.workspace_id == workspace_id, Conversation.agent_id == TeamMember.user_id,
        Conversation.status.in_(UNRESOLVED)).scalar_subquery()
    return session.scalar(
        select(TeamMember.user_id)
        .join(WorkspaceMember, (WorkspaceMember.user_id == TeamMember.user_id)
              & (WorkspaceMember.workspace_id == workspace_id))
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id, User.is_active.is_(True), WorkspaceMember.availability == "available",
               WorkspaceMember.last_seen_at >= at - IDLE_OFFLINE)
        .order_by(load, WorkspaceMember.last_assigned_at.asc().nulls_first(), TeamMember.user_id)
        .limit(1))


def _lock_team(session: Session, workspace_id: int, team_id: int) -> Team | None:
    return session.scalars(select(Team).where(Team.id == team_id, Team.workspace_id == workspace_id)
                           .with_for_update()).first()


def route_to_team(session: Session, workspace_id: int, conversation_id: int, team_id: int,
                  actor_user_id: int | None, how: str, extra: dict[str, Any] | None = None,
                  also: dict[str, Any] | None = None) -> int | None:
    """Route the conversation to a team of the workspace: to an available member when the team distributes
    automatically, else (or with nobody available) to the team's queue. Returns the agent given it, if any."""
    team = _lock_team(session, workspace_id, team_id)
    if team is None:
        return None
    agent_id = pick_agent(session, workspace_id, team_id) if team.auto_assign else None
    if agent_id is not None:
        assign_agent(session, workspace_id, conversation_id, agent_id, team_id, actor_user_id,
                     "auto" if how == "manual" else how, extra, also)
        return agent_id
    to_queue(session, workspace_id, conversation_id, team_id, actor_user_id, how, extra, also)
    return None


def to_queue(session: Session, workspace_id: int, conversation_id: int, team_id: int | None,
             actor_user_id: int | None, how: str, extra: dict[str, Any] | None = None,
             also: dict[str, Any] | None = None) -> None:
    """Put the conversation in a team's queue (``team_id``) or the workspace's (None): no agent, recorded."""
    session.execute(update(Conversation).where(Conversation.id == conversation_id)
                    .values(**(also or {}), agent_id=None, team_id=team_id, assigned_at=None))
    record(session, workspace_id, conversation_id, actor_user_id,
           {"agent_id": None, "team_id": team_id, "how": how, **(extra or {})})


def drain_team(session: Session, workspace_id: int, team_id: int, limit: int = DRAIN_LIMIT) -> int:
    """Hand the team's waiting conversations (oldest first) to available members; returns how many."""
    team = _lock_team(session, workspace_id, team_id)
    if team is None or not team.auto_assign:
        return 0
    waiting = session.scalars(
        select(Conversation.id).where(Conversation.workspace_id == workspace_id, Conversation.team_id == team_id,
                                      Conversation.agent_id.is_(None), Conversation.status == "open")
        .order_by(Conversation.last_inbound_at.asc().nulls_last(), Conversation.id)
        .limit(limit).with_for_update(skip_locked=True)).all()
    given = 0
    for conversation_id in waiting:
        agent_id = pick_agent(session, workspace_id, team_id)
        if agent_id is None:
            break
        assign_agent(session, workspace_id, conversation_id, agent_id, team_id, None, "auto")
        given += 1
    return given


def drain_member_teams(session: Session, workspace_id: int, user_id: int) -> int:
    """Drain the queues of every distributing team the person belongs to; returns how many were assigned."""
    team_ids = session.scalars(select(TeamMember.team_id).join(Team, Team.id == TeamMember.team_id).where(
        TeamMember.user_id == user_id, Team.workspace_id == workspace_id, Team.auto_assign.is_(True))
        .order_by(TeamMember.team_id)).all()
    return sum(drain_team(session, workspace_id, team_id) for team_id in team_ids)


def release_agent(session: Session, workspace_id: int, user_id: int, actor_user_id: int | None) -> int:
    """Take a person's unresolved conversations back: each returns to its team (given to another member when the
    team distributes) or to the workspace's queue. Returns how many were released."""
    rows = session.execute(select(Conversation.id, Conversation.team_id).where(
        Conversation.workspace_id == workspace_id, Conversation.agent_id == user_id,
        Conversation.status.in_(UNRESOLVED)).order_by(Conversation.id).with_for_update()).all()
    for conversation_id, team_id in rows:
        if team_id is None:
            to_queue(session, workspace_id, conversation_id, None, actor_user_id, "released")
        else:
            route_to_team(session, workspace_id, conversation_id, team_id, actor_user_id, "released")
    return len(rows)
