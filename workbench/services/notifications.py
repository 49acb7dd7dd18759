"""In-app notifications: what a funnel's "notify human" step (and later other parts) asks people to look at.

A notification goes to a user or to a team. Who sees it is the inbox's rule (``conversations.visible``), its
user playing the conversation's agent: the user it is addressed to; the members of its team when it names no
user; everyone when it names neither (a team name that matched no team); admins and supervisors see every
notification of the workspace (they oversee the teams). A team notification is shared like a conversation in
the inbox: when one member opens or dismisses it, it is read for the whole team. A notification whose
conversation the user may not open (it went to someone outside the team) names neither the contact nor the
conversation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update

from workbench.base.clock import now
from workbench.base.errors import NotFound
from workbench.services.auth import Actor
from workbench.services.conversations import can_see, visible
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation, Notification, Team
from workbench.store.outages import after_commit

LIST_LIMIT = 30


def unread_count(actor: Actor) -> int:
    """How many notifications the actor can see are still unread (the menu badge)."""
    with session_scope() as session:
        unread = select(func.count(Notification.id)).where(Notification.read_at.is_(None))
        return int(session.scalar(visible(actor, unread, Notification)) or 0)


def _openable(actor: Actor) -> ColumnElement[bool]:
    """Join condition: the notification's conversation, when the actor may open it (see ``can_see``)."""
    return and_(Conversation.id == Notification.conversation_id, can_see(actor))


def list_notifications(actor: Actor, *, unread_only: bool = False, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The actor's notifications, newest first, with the team and the contact they concern.

    ``conversation_id``, ``contact`` (its name) and ``contact_id`` are None when the actor may not open the
    conversation.
    """
    query = select(
        Notification.id, Notification.body, Conversation.id.label("conversation_id"), Notification.read_at,
        Notification.created_at, Notification.user_id, Team.name.label("team"),
        func.coalesce(Contact.name, Contact.push_name, Contact.phone).label("contact"),
        Contact.id.label("contact_id"),
    ).outerjoin(Team, Team.id == Notification.team_id) \
        .outerjoin(Conversation, _openable(actor)) \
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
    query = visible(actor, query, Notification)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    with session_scope() as session:
        return [dict(row) for row in session.execute(query).mappings()]


def mark_read(actor: Actor, notification_id: int) -> int | None:
    """Mark one notification read; returns the conversation it points to (to open it), if the actor may."""
    with session_scope() as session:
        query = select(Notification.id, Conversation.id.label("conversation_id")) \
            .outerjoin(Conversation, _openable(actor)).where(Notification.id == notification_id)
        row = session.execute(visible(actor, query, Notification)).first()
        if row is None:
            raise NotFound("notification", key="error.notification_not_found")
        session.execute(update(Notification).where(Notification.id == notification_id,
                                                   Notification.read_at.is_(None)).values(read_at=now()))
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])
    return row.conversation_id


def mark_all_read(actor: Actor) -> int:
    """Mark every notification the actor can see as read; returns how many changed."""
    with session_scope() as session:
        ids = visible(actor, select(Notification.id).where(Notification.read_at.is_(None)), Notification)
        changed = session.execute(update(Notification).where(Notification.id.in_(ids))
                                  .values(read_at=now())).rowcount
    if changed:
        with after_commit():
            live.touch(get_redis(), [actor.workspace_id])
    return changed
