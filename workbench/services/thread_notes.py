"""Notas privadas: notes an agent writes in a conversation's thread. They are never sent to WhatsApp.

A private note is a ``Note`` of kind ``thread`` on the conversation (and its contact, so the contact's card and
activity feed list it too). It is written only to ``notes``: never to ``messages`` nor ``outbox``, so no
connector can ever see it. Whoever may see the conversation (``conversations.visible``) reads its notes and adds
one. ``@name`` in a note (a member's name as shown in the panel, or the part of their e-mail before the ``@``,
ignoring case) sends that person a notification through the bell; the author is not notified of themself.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.base.i18n import t
from workbench.services.auth import Actor
from workbench.services.contact_notes import note_body
from workbench.services.conversations import load_visible
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Note, Notification, User, WorkspaceMember
from workbench.store.outages import after_commit

LIST_LIMIT = 200
"""Notes shown with the thread (the newest)."""


def mentioned(session: Session, workspace_id: int, text: str) -> list[int]:
    """Ids of the workspace's active members named ``@name`` (or ``@e-mail-user``) in ``text``, ignoring case."""
    lowered = text.lower()
    if "@" not in lowered:
        return []
    found = []
    for user_id, name, email in session.execute(
            select(User.id, User.name, User.email).join(WorkspaceMember, WorkspaceMember.user_id == User.id)
            .where(WorkspaceMember.workspace_id == workspace_id, User.is_active.is_(True))):
        handles = {name.strip().lower(), email.split("@")[0].lower()} - {""}
        # the handle must end there: "@ana" is not a mention of "Anabela"
        if any(re.search("@" + re.escape(handle) + r"(?![\w])", lowered) for handle in handles):
            found.append(user_id)
    return found


def write_note(session: Session, actor: Actor, conversation_id: int, contact_id: int, body: str,
               purpose: str = "note") -> int:
    """Store a private note (``body`` already checked) and notify the people it mentions; returns its id."""
    note = Note(workspace_id=actor.workspace_id, contact_id=contact_id, conversation_id=conversation_id,
                author_id=actor.user_id, body=body, kind="thread")
    session.add(note)
    session.flush()
    session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind="note_added",
                              subject_type="contact", subject_id=contact_id,
                              data={"source": "agent", "note_id": note.id, "thread": True, "purpose": purpose}))
    for user_id in mentioned(session, actor.workspace_id, body):
        if user_id != actor.user_id:
            session.add(Notification(workspace_id=actor.workspace_id, user_id=user_id,
                                     conversation_id=conversation_id, body=t("notes.mentioned", name=actor.name)))
    return note.id


def add_note(actor: Actor, conversation_id: int, body: str) -> int:
    """Write a private note in the conversation's thread (any role that sees it); returns the note's id.

    Raises:
        InvalidInput: empty, or longer than ``contact_notes.MAX_NOTE_CHARS``.
        NotFound: not a conversation the actor may see.
    """
    text = note_body(body)
    with session_scope() as session:
        conv, contact = load_visible(session, actor, conversation_id)
        note_id = write_note(session, actor, conv.id, contact.id, text)
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])
    return note_id


def list_notes(actor: Actor, conversation_id: int, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The conversation's private notes, oldest first (the newest ``limit``), with their author's name."""
    with session_scope() as session:
        conv, _ = load_visible(session, actor, conversation_id)
        rows = session.execute(
            select(Note.id, Note.body, Note.created_at, Note.author_id, User.name.label("author"))
            .outerjoin(User, User.id == Note.author_id)
            .where(Note.conversation_id == conv.id, Note.kind == "thread")
            .order_by(Note.created_at.desc(), Note.id.desc()).limit(max(1, min(int(limit), LIST_LIMIT)))
        ).mappings().all()
    return [dict(row) for row in reversed(rows)]
