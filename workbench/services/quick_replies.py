"""Respostas rápidas: the workspace's saved replies, typed as ``/shortcut`` in the inbox or picked from a list.

Everyone in the workspace uses them; admins and supervisors create, change and delete them. A reply's text is a
template rendered in the funnels' sandbox (``engine.core.templates``: no attribute escapes, bounded work and
output), with ``contact`` (``name``, ``phone``, ``email``, ``company``, ``custom_data``, ``tags``) and ``agent``
(``name``) of the conversation it is used in, so ``Olá {{contact.name}}, aqui é {{agent.name}}`` greets each contact
by name. Its syntax is checked when saved; a value missing at use renders empty, and a render that fails at use
(``{{ 1/0 }}``) is refused with the sandbox's reason instead of sending half a text.

A shortcut is 1 to ``MAX_SHORTCUT`` letters, digits, ``-`` or ``_``, unique in the workspace ignoring case.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.core.templates import check_syntax, render
from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.services.conversations import load_visible, send_text
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, ContactTag, QuickReply, Tag, is_row_id
from workbench.store.text import clean_text

MAX_SHORTCUT = 40
MAX_BODY = 4_096
"""Longest reply text (a few paragraphs; the rendered text is also capped by the sandbox)."""
MAX_REPLIES = 500
"""Most quick replies a workspace keeps (the picker lists them all)."""
_SHORTCUT = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SHORTCUT}}}")
_TYPED = re.compile(r"\s*/([^\s/]+)\s*")


def _shortcut(value: Any) -> str:
    text = value.strip().lstrip("/") if isinstance(value, str) else ""
    if not _SHORTCUT.fullmatch(text):
        raise InvalidInput("bad shortcut", key="error.quick_reply_shortcut", max=MAX_SHORTCUT)
    return text


def _text(value: Any) -> str:
    text = clean_text(value if isinstance(value, str) else "", limit=None)[0].strip()
    if not text or len(text) > MAX_BODY:
        raise InvalidInput("bad body", key="error.quick_reply_body", max=MAX_BODY)
    problem = check_syntax(text)
    if problem:
        raise InvalidInput("bad template", key="error.quick_reply_template", reason=problem)
    return text


def list_replies(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's quick replies by shortcut (any role)."""
    with session_scope() as session:
        rows = session.execute(select(QuickReply.id, QuickReply.shortcut, QuickReply.body)
                               .where(QuickReply.workspace_id == actor.workspace_id)
                               .order_by(func.lower(QuickReply.shortcut)).limit(MAX_REPLIES)).mappings().all()
    return [dict(row) for row in rows]


def _audit(session: Session, actor: Actor, kind: str, reply_id: int, shortcut: str) -> None:
    session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind=kind,
                              subject_type="quick_reply", subject_id=reply_id, data={"shortcut": shortcut}))


def _own(session: Session, actor: Actor, reply_id: Any) -> QuickReply:
    reply = session.scalars(select(QuickReply).where(QuickReply.id == reply_id,
                                                     QuickReply.workspace_id == actor.workspace_id)
                            .with_for_update()).first() if is_row_id(reply_id) else None
    if reply is None:
        raise NotFound("quick reply", key="error.quick_reply_not_found")
    return reply


def _taken(session: Session, actor: Actor, shortcut: str, other_than: int | None = None) -> None:
    query = select(QuickReply.id).where(QuickReply.workspace_id == actor.workspace_id,
                                        func.lower(QuickReply.shortcut) == shortcut.lower())
    if other_than is not None:
        query = query.where(QuickReply.id != other_than)
    if session.scalar(query) is not None:
        raise Conflict("shortcut taken", key="error.quick_reply_taken")


def save_reply(actor: Actor, shortcut: str, body: str, reply_id: int | None = None) -> int:
    """Admins and supervisors create (``reply_id`` None) or change a quick reply; returns its id.

    Raises:
        InvalidInput: a bad shortcut, an empty or too long text, or a template that does not compile.
        Conflict: another reply has that shortcut. NotFound: ``reply_id`` is not the workspace's.
    """
    actor.require("admin", "supervisor")
    shortcut, text = _shortcut(shortcut), _text(body)
    try:
        with session_scope() as session:
            _taken(session, actor, shortcut, other_than=reply_id)
            if reply_id is None:
                count = session.scalar(select(func.count(QuickReply.id))
                                       .where(QuickReply.workspace_id == actor.workspace_id))
                if count >= MAX_REPLIES:
                    raise Conflict("too many quick replies", key="error.quick_reply_count", max=MAX_REPLIES)
                reply = QuickReply(workspace_id=actor.workspace_id, shortcut=shortcut, body=text,
                                   created_by=actor.user_id)
                session.add(reply)
                session.flush()
                _audit(session, actor, "quick_reply_created", reply.id, shortcut)
            else:
                reply = _own(session, actor, reply_id)
                reply.shortcut, reply.body = shortcut, text
                _audit(session, actor, "quick_reply_changed", reply.id, shortcut)
            return reply.id
    except IntegrityError as exc:  # two people saving the same shortcut at once: the unique index decides
        raise Conflict("shortcut taken", key="error.quick_reply_taken") from exc


def delete_reply(actor: Actor, reply_id: int) -> None:
    """Admins and supervisors delete a quick reply."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        reply = _own(session, actor, reply_id)
        _audit(session, actor, "quick_reply_deleted", reply.id, reply.shortcut)
        session.delete(reply)


def render_reply(actor: Actor, conversation_id: int, reply_id: int | None = None,
                 shortcut: str | None = None) -> str:
    """A quick reply's text for one conversation (by id or shortcut), rendered in the sandbox.

    Raises:
        NotFound: the reply, or a conversation the actor may not see.
        InvalidInput: the template failed at render (its pt-BR reason), or rendered empty.
    """
    with session_scope() as session:
        conv, contact = load_visible(session, actor, conversation_id)
        query = select(QuickReply.body).where(QuickReply.workspace_id == actor.workspace_id)
        if reply_id is not None:
            query = query.where(QuickReply.id == reply_id) if is_row_id(reply_id) else None
        else:
            query = query.where(func.lower(QuickReply.shortcut) == (shortcut or "").lower())
        body = session.scalar(query) if query is not None else None
        if body is None:
            raise NotFound("quick reply", key="error.quick_reply_not_found")
        tags = session.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                               .where(ContactTag.contact_id == contact.id).order_by(Tag.name)).all()
        namespace = {
            "contact": {"name": contact.name or contact.push_name or "", "phone": contact.phone,
                        "email": contact.email, "company": contact.company,
                        "custom_data": dict(contact.custom_data or {}), "tags": list(tags)},
            "agent": {"name": actor.name},
        }
    result = render(body, namespace)
    if not result.ok:
        raise InvalidInput("template failed", key="error.quick_reply_template", reason=result.error)
    if not result.text.strip():
        raise InvalidInput("empty", key="error.empty_message")
    return result.text


def typed_shortcut(text: str | None) -> str | None:
    """The shortcut when a reply box holds only ``/shortcut`` (else None: the text is sent as typed)."""
    match = _TYPED.fullmatch(text or "")
    return match.group(1) if match else None


def send_typed(actor: Actor, conversation_id: int, typed: str) -> int:
    """The inbox's reply box: ``/shortcut`` alone sends that quick reply rendered for the conversation, anything
    else is sent as typed (``conversations.send_text``). Returns the message id.

    Raises:
        NotFound: ``/shortcut`` names no quick reply (nothing is sent: a mistyped shortcut never reaches the
            contact).
    """
    shortcut = typed_shortcut(typed)
    text = render_reply(actor, conversation_id, shortcut=shortcut) if shortcut else typed
    return send_text(actor, conversation_id, text)
