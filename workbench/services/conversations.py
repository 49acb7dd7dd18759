"""The shared inbox: conversation lists, chat history, agent replies and bot control.

Visibility (``visible``, the one rule for conversations and notifications): admins and supervisors see
everything of their workspace; agents see what is unassigned, their own, and what is their teams' (assigned
to a team of theirs and to no agent). A conversation outside that set is reported as not found, so ids of
other workspaces reveal nothing.

Every change commits first, then publishes (the reply to its number's stream, the live revision) inside
``workbench.store.outages.after_commit``: Redis out of reach at that point raises ``AfterCommit`` — the change
is saved and what it publishes follows when Redis answers, so the page must not invite a second try.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import InvalidInput, NotFound
from workbench.services import outbox, routing
from workbench.services.auth import Actor
from workbench.services.conversation_ref import ConversationRef
from workbench.services.workspace_settings import load_setting
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    Conversation,
    Instance,
    Message,
    Notification,
    Team,
    TeamMember,
    User,
    WorkspaceMember,
    is_row_id,
)
from workbench.store.outages import after_commit
from workbench.store.text import MAX_SEARCH_CHARS, clean_text, like_pattern

LIST_LIMIT = 200


def can_see(actor: Actor, of: type[Conversation] | type[Notification] = Conversation) -> ColumnElement[bool]:
    """The condition that a conversation, or a notification, is one the actor may see.

    One rule for both (module docstring: visibility); a notification's user plays the conversation's agent.
    A condition rather than a filter where a query must keep rows it may not open (a join's ``ON``).
    """
    owner = of.agent_id if of is Conversation else of.user_id
    same_workspace = of.workspace_id == actor.workspace_id
    if actor.is_manager:
        return same_workspace
    my_teams = select(TeamMember.team_id).where(TeamMember.user_id == actor.user_id)
    return and_(same_workspace, or_(
        owner == actor.user_id,
        and_(owner.is_(None), or_(of.team_id.is_(None), of.team_id.in_(my_teams))),
    ))


def visible(actor: Actor, query: Select, of: type[Conversation] | type[Notification] = Conversation) -> Select:
    """Restrict a query over conversations, or over notifications, to what the actor may see (``can_see``).

    Args:
        actor: who is looking.
        query: a select over ``of`` (joins to other tables are fine).
        of: ``Conversation`` or ``Notification``.
    """
    return query.where(can_see(actor, of))


def _load(session: Session, actor: Actor, conversation_id: int) -> tuple[Conversation, Contact]:
    row = session.execute(visible(actor, select(Conversation, Contact)
                                   .join(Contact, Contact.id == Conversation.contact_id)
                                   .where(Conversation.id == conversation_id))).first()
    if row is None:
        raise NotFound("conversation", key="error.conversation_not_found")
    return row[0], row[1]


def load_visible(session: Session, actor: Actor, conversation_id: int) -> tuple[Conversation, Contact]:
    """The conversation and its contact when the actor may see it (``NotFound`` otherwise), for other services."""
    if not is_row_id(conversation_id):
        raise NotFound("conversation", key="error.conversation_not_found")
    return _load(session, actor, conversation_id)


def list_conversations(actor: Actor, status: str | None = "open", mine: bool = False, search: str | None = None,
                       limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """Conversations for the inbox list, newest activity first, with contact and last message."""
    query = visible(actor, select(
        Conversation.id, Conversation.status, Conversation.unread_count, Conversation.last_message_at,
        Conversation.last_message_preview, Conversation.last_message_direction, Conversation.last_message_type,
        Conversation.bot_paused, Conversation.agent_id, Conversation.team_id, Conversation.instance_id,
        Contact.id.label("contact_id"), Contact.name, Contact.push_name, Contact.phone, Instance.name.label("instance"),
    ).join(Contact, Contact.id == Conversation.contact_id).join(Instance, Instance.id == Conversation.instance_id))
    if status:
        query = query.where(Conversation.status == status)
    if mine:
        query = query.where(Conversation.agent_id == actor.user_id)
    if search and (words := clean_text(search, limit=MAX_SEARCH_CHARS)[0].strip()):
        like = like_pattern(words)  # a typed % or _ is looked for, not a wildcard
        query = query.where(or_(Contact.name.ilike(like), Contact.push_name.ilike(like), Contact.phone.like(like)))
    query = query.order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc()).limit(limit)
    with session_scope() as session:
        rows = session.execute(query).mappings().all()
    return [{**row, "display_name": row["name"] or row["push_name"] or row["phone"]} for row in rows]


def get_conversation(actor: Actor, conversation_id: int) -> dict[str, Any]:
    """One conversation with its contact, for the chat header and the contact panel."""
    with session_scope() as session:
        conv, contact = _load(session, actor, conversation_id)
        agent = session.get(User, conv.agent_id) if conv.agent_id else None
        return {
            "id": conv.id, "status": conv.status, "bot_paused": conv.bot_paused,
            "bot_paused_reason": conv.bot_paused_reason, "bot_paused_until": conv.bot_paused_until,
            "agent_id": conv.agent_id, "agent_name": agent.name if agent else None, "team_id": conv.team_id,
            "unread_count": conv.unread_count, "instance_id": conv.instance_id,
            "contact": {"id": contact.id, "name": contact.name, "push_name": contact.push_name,
                        "phone": contact.phone, "custom_data": contact.custom_data,
                        "display_name": contact.name or contact.push_name or contact.phone},
        }


MAX_THREAD = 5_000
"""Most messages one read of a thread returns (the inbox shows older ones on demand, in steps)."""


def list_messages(actor: Actor, conversation_id: int, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """Messages of a conversation in order (the newest ``limit`` when ``after_id`` is 0); ``limit`` is kept within
    1..``MAX_THREAD``."""
    limit = max(1, min(int(limit), MAX_THREAD))
    with session_scope() as session:
        _load(session, actor, conversation_id)
        query = select(Message.id, Message.direction, Message.type, Message.text, Message.data, Message.status,
                       Message.error, Message.created_at, Message.wa_timestamp, Message.quoted_wa_id,
                       Message.wa_id, Message.sent_by_user_id, Message.sent_by_funnel_id) \
            .where(Message.conversation_id == conversation_id)
        if after_id:
            query = query.where(Message.id > after_id).order_by(Message.id).limit(limit)
            rows = session.execute(query).mappings().all()
        else:
            rows = list(reversed(session.execute(query.order_by(Message.id.desc()).limit(limit)).mappings().all()))
    return [dict(row) for row in rows]


def mark_read(actor: Actor, conversation_id: int) -> None:
    """The agent opened the conversation: clear its unread badge."""
    with session_scope() as session:
        conv, _ = _load(session, actor, conversation_id)
        if conv.unread_count:
            conv.unread_count = 0
            workspace_id = conv.workspace_id
        else:
            return
    with after_commit():
        live.touch(get_redis(), [workspace_id])


def send_text(actor: Actor, conversation_id: int, text: str, pause_bot: bool = True) -> int:
    """An agent's reply: message + outbox in one transaction, published after commit. Returns the message id.

    Replying pauses the bot for this conversation (so a funnel does not talk over the agent) unless
    ``pause_bot`` is False.

    Raises:
        AfterCommit: the reply is stored and queued, but Redis did not take it; the sweep re-publishes it.
    """
    if not text or not text.strip():
        raise InvalidInput("empty message", key="error.empty_message")
    return send_queued(actor, conversation_id, lambda session, conv: {"text": text}, pause_bot)


def send_queued(actor: Actor, conversation_id: int,
                message: Callable[[Session, Conversation], dict[str, Any]], pause_bot: bool = True) -> int:
    """Send what ``message(session, conversation)`` describes (``outbox.queue_message``'s keywords) as the actor:
    the one path of an agent's outbound message (text, media), with its bot pause and reopening. Returns the
    message id."""
    with session_scope() as session:
        conv, contact = _load(session, actor, conversation_id)
        message_id, command = outbox.queue_message(session, ConversationRef.of(conv, contact),
                                                   user_id=actor.user_id, **message(session, conv))
        if pause_bot and not conv.bot_paused:
            minutes = load_setting(session, conv.workspace_id, "bot").auto_resume_minutes
            # the sweep hands the conversation back to the bot once this time has passed
            _pause(session, actor, conv, "agent_reply", now() + timedelta(minutes=minutes) if minutes else None)
        if conv.status == "closed":
            conv.status, conv.closed_at = "open", None
        workspace_id = conv.workspace_id
    with after_commit():
        outbox.publish([command])
        live.touch(get_redis(), [workspace_id])
    return message_id


def _pause(session: Session, actor: Actor | None, conv: Conversation, reason: str, until: datetime | None) -> None:
    conv.bot_paused = True
    conv.bot_paused_by = actor.user_id if actor else None
    conv.bot_paused_reason = reason
    conv.bot_paused_until = until
    _record(session, actor, conv, "bot_paused", {"reason": reason})


def _record(session: Session, actor: Actor | None, conv: Conversation, kind: str, data: dict[str, Any]) -> None:
    session.add(ActivityEvent(workspace_id=conv.workspace_id, actor_user_id=actor.user_id if actor else None,
                              kind=kind, subject_type="conversation", subject_id=conv.id, data=data))


def pause_bot(actor: Actor, conversation_id: int, until: datetime | None = None) -> None:
    """Stop the bot for this conversation (optionally until a time) so a human can talk."""
    with session_scope() as session:
        conv, _ = _load(session, actor, conversation_id)
        _pause(session, actor, conv, "agent", until)
        workspace_id = conv.workspace_id
    with after_commit():
        live.touch(get_redis(), [workspace_id])


def resume_bot(actor: Actor, conversation_id: int) -> None:
    """Give the conversation back to the bot."""
    with session_scope() as session:
        conv, _ = _load(session, actor, conversation_id)
        conv.bot_paused, conv.bot_paused_by, conv.bot_paused_reason, conv.bot_paused_until = False, None, None, None
        _record(session, actor, conv, "bot_resumed", {})
        workspace_id = conv.workspace_id
    with after_commit():
        live.touch(get_redis(), [workspace_id])


def assign(actor: Actor, conversation_id: int, agent_id: int | None = None, team_id: int | None = None) -> None:
    """Assign to an agent and/or team (``workbench.services.routing``). Agents may only take a conversation for
    themselves. A team alone routes to it: to an available member when it distributes automatically, else to its
    queue; neither returns the conversation to its team's queue (or the workspace's).

    Raises:
        NotFound: the conversation, the agent (not an active member of the workspace) or the team is not the
            workspace's.
    """
    if not actor.is_manager and agent_id not in (None, actor.user_id):
        actor.require("admin", "supervisor")
    with session_scope() as session:
        conv, _ = _load(session, actor, conversation_id)
        if agent_id is not None:
            check_member(session, actor, agent_id)
        if team_id is not None:
            check_team(session, actor, team_id)
        if agent_id is not None:
            routing.assign_agent(session, conv.workspace_id, conv.id, agent_id, team_id, actor.user_id, "manual")
        elif team_id is not None:
            routing.route_to_team(session, conv.workspace_id, conv.id, team_id, actor.user_id, "manual")
        else:
            routing.to_queue(session, conv.workspace_id, conv.id, conv.team_id, actor.user_id, "manual")
        workspace_id = conv.workspace_id
    with after_commit():
        live.touch(get_redis(), [workspace_id])


def check_member(session: Session, actor: Actor, user_id: int) -> None:
    """Raise ``NotFound`` unless ``user_id`` is an active member of the actor's workspace (a deactivated person
    is given nothing)."""
    if not is_row_id(user_id) or session.get(WorkspaceMember, (actor.workspace_id, user_id)) is None \
            or not session.scalar(select(User.is_active).where(User.id == user_id)):
        raise NotFound("agent", key="error.agent_not_found")


def check_team(session: Session, actor: Actor, team_id: int) -> None:
    """Raise ``NotFound`` unless ``team_id`` is a team of the actor's workspace."""
    team = session.get(Team, team_id) if is_row_id(team_id) else None
    if team is None or team.workspace_id != actor.workspace_id:
        raise NotFound("team", key="error.team_not_found")


def set_status(actor: Actor, conversation_id: int, status: str) -> None:
    """Open, mark pending or close (resolve) a conversation."""
    if status not in ("open", "pending", "closed"):
        raise InvalidInput(status, key="error.invalid")
    with session_scope() as session:
        conv, _ = _load(session, actor, conversation_id)
        conv.status = status
        conv.closed_at = now() if status == "closed" else None
        _record(session, actor, conv, f"status_{status}", {})
        workspace_id = conv.workspace_id
    with after_commit():
        live.touch(get_redis(), [workspace_id])


def revision(actor: Actor) -> int:
    """The workspace's change counter: live views re-read only when it moved."""
    return live.revision(get_redis(), actor.workspace_id)
