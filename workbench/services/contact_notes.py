"""Internal notes on a contact: what the team wants to remember. Notes never go to WhatsApp.

Who may do what (on a contact the actor may open, ``contact_card.load_contact``):

- anyone who opens the contact reads its notes and adds one;
- only the author edits a note: a note says who wrote it, so nobody puts words under someone else's name;
- the author deletes their note, and so may admins and supervisors (to take down what should not be kept, e.g. a
  card number pasted by mistake); an agent cannot delete a colleague's note (``PermissionDenied``).

A note of a contact the actor may not open, or of another workspace, is ``NotFound``. Every change is recorded
as an ``ActivityEvent`` on the contact (``note_added`` / ``note_edited`` / ``note_deleted``, with the note's id and
never its text, so a deleted note's words are really gone).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.services.auth import Actor
from workbench.services.contact_card import load_contact
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Note, User, is_row_id
from workbench.store.outages import after_commit
from workbench.store.text import clean_text

MAX_NOTE_CHARS = 4_000
"""Longest note: a few paragraphs."""
LIST_LIMIT = 100
"""Notes listed beside the contact, newest first (older ones stay in the activity feed)."""


def note_body(body: Any) -> str:
    text = clean_text(body if isinstance(body, str) else "", limit=None)[0].strip()
    if not text:
        raise InvalidInput("empty note", key="error.note_empty")
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInput("note too long", key="error.note_long", max=MAX_NOTE_CHARS)
    return text


def _record(session: Session, actor: Actor, contact_id: int, kind: str, data: dict[str, Any]) -> None:
    session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind=kind,
                              subject_type="contact", subject_id=contact_id, data={"source": "agent", **data}))


def _load_note(session: Session, actor: Actor, note_id: Any) -> Note:
    """The note, locked, if the actor may open its contact."""
    note = session.scalars(select(Note).where(Note.id == note_id, Note.workspace_id == actor.workspace_id)
                           .with_for_update()).first() if is_row_id(note_id) else None
    if note is None:
        raise NotFound("note", key="error.note_not_found")
    try:
        load_contact(session, actor, note.contact_id)
    except NotFound:
        raise NotFound("note", key="error.note_not_found") from None
    return note


def _touch(actor: Actor) -> None:
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])


def add_note(actor: Actor, contact_id: int, body: str) -> int:
    """Add a note to the contact (any role that opens it); returns the note's id.

    Raises:
        InvalidInput: the note is empty, or longer than ``MAX_NOTE_CHARS``.
        NotFound: not a contact the actor may open.
    """
    text = note_body(body)
    with session_scope() as session:
        contact, conv = load_contact(session, actor, contact_id)
        note = Note(workspace_id=actor.workspace_id, contact_id=contact.id, conversation_id=conv.id if conv else None,
                    author_id=actor.user_id, body=text)
        session.add(note)
        session.flush()
        _record(session, actor, contact.id, "note_added", {"note_id": note.id})
        note_id = note.id
    _touch(actor)
    return note_id


def edit_note(actor: Actor, note_id: int, body: str) -> None:
    """Change the text of one's own note (its time of editing is kept and shown).

    Raises:
        InvalidInput: the new text is empty or too long.
        PermissionDenied: someone else wrote the note.
        NotFound: no such note on a contact the actor may open.
    """
    text = note_body(body)
    with session_scope() as session:
        note = _load_note(session, actor, note_id)
        if note.author_id != actor.user_id:
            raise PermissionDenied("not the author", key="error.note_edit_not_yours")
        if note.body == text:
            return
        note.body, note.updated_at = text, now()
        _record(session, actor, note.contact_id, "note_edited", {"note_id": note.id})
    _touch(actor)


def delete_note(actor: Actor, note_id: int) -> None:
    """Delete a note: one's own, or anyone's for admins and supervisors.

    Raises:
        PermissionDenied: an agent deleting someone else's note.
        NotFound: no such note on a contact the actor may open.
    """
    with session_scope() as session:
        note = _load_note(session, actor, note_id)
        if note.author_id != actor.user_id and not actor.is_manager:
            raise PermissionDenied("not the author", key="error.note_delete_not_yours")
        _record(session, actor, note.contact_id, "note_deleted", {"note_id": note.id, "author_id": note.author_id})
        session.delete(note)
    _touch(actor)


def list_notes(actor: Actor, contact_id: int, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The contact's notes, newest first.

    Returns:
        ``id``, ``body``, ``author`` (name, None when the account is gone), ``created_at``, ``updated_at`` (None
        when never edited), ``can_edit`` and ``can_delete`` (for this actor).

    Raises:
        NotFound: not a contact the actor may open.
    """
    with session_scope() as session:
        contact, _ = load_contact(session, actor, contact_id)
        rows = session.execute(
            select(Note.id, Note.body, Note.author_id, User.name.label("author"), Note.created_at, Note.updated_at)
            .outerjoin(User, User.id == Note.author_id)
            .where(Note.contact_id == contact.id, Note.workspace_id == actor.workspace_id)
            .order_by(Note.created_at.desc(), Note.id.desc()).limit(max(1, min(limit, LIST_LIMIT)))).mappings().all()
    mine = actor.user_id
    return [{"id": row["id"], "body": row["body"], "author": row["author"], "created_at": row["created_at"],
             "updated_at": row["updated_at"], "can_edit": row["author_id"] == mine,
             "can_delete": row["author_id"] == mine or actor.is_manager} for row in rows]

