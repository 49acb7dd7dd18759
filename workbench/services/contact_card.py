"""One contact as the Visão 360 page shows it, and who may open it.

Admins and supervisors open every contact of their workspace, including one without a conversation (an imported
contact that never wrote); agents open only the contacts of conversations they see in the inbox
(``conversations.visible``). Any other id — another workspace's, a hidden one, one that does not exist — is
``NotFound``, so ids reveal nothing. The notes (``contact_notes``), the activity feed (``contact_feed``) and the
merge (``contact_merge``) load their contact through ``load_contact``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workbench.base.errors import NotFound
from workbench.base.i18n import format_moment, format_when, t
from workbench.services import conversations
from workbench.services.auth import Actor
from workbench.services.odoo_client import lead_url
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactField,
    ContactTag,
    Conversation,
    Instance,
    Integration,
    Tag,
    User,
    is_row_id,
)

PROVENANCE_EVENTS = 500
"""Newest field changes of a contact looked at for the values' provenance (each field's latest change counts)."""


def load_contact(session: Session, actor: Actor, contact_id: Any) -> tuple[Contact, Conversation | None]:
    """The contact and its conversation (None when it has none), if the actor may open it.

    Raises:
        NotFound: not a contact the actor may open (module docstring).
    """
    if not is_row_id(contact_id):
        raise NotFound("contact", key="error.contact_not_found")
    query = select(Contact, Conversation).where(Contact.id == contact_id, Contact.workspace_id == actor.workspace_id)
    if actor.is_manager:
        query = query.outerjoin(Conversation, Conversation.contact_id == Contact.id)
    else:
        query = conversations.visible(actor, query.join(Conversation, Conversation.contact_id == Contact.id))
    row = session.execute(query).first()
    if row is None:
        raise NotFound("contact", key="error.contact_not_found")
    return row[0], row[1]


def display_name(contact: Contact) -> str:
    """The name people know the contact by: the one typed, else its WhatsApp name, else its phone."""
    return contact.name or contact.push_name or contact.phone


def tag_names(session: Session, contact_id: int) -> list[str]:
    """The contact's tags, alphabetical (case ignored)."""
    return list(session.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                                .where(ContactTag.contact_id == contact_id).order_by(func.lower(Tag.name))))


def odoo_lead(session: Session, workspace_id: int, lead_id: int | None) -> dict[str, Any] | None:
    """``{"id", "url"}`` of a contact's lead in the workspace's Odoo (step "Enviar para Odoo"); None without one.
    ``url`` is "" when the Odoo connection was removed since."""
    if lead_id is None:
        return None
    config = session.scalar(select(Integration.config).where(Integration.workspace_id == workspace_id,
                                                             Integration.kind == "odoo"))
    base = str((config or {}).get("url") or "")
    return {"id": lead_id, "url": lead_url(base, lead_id) if base else ""}


def contact_card(actor: Actor, contact_id: Any) -> dict[str, Any]:
    """Everything column 1 of the Visão 360 shows about a contact.

    Returns:
        ``id``, ``display_name``, ``name``, ``push_name``, ``phone``, ``email``, ``company``, ``custom_data``,
        ``tags``, ``created_at``, ``instance`` (the number's name), ``conversation_id`` (None without one),
        ``agent`` (assigned person's name or None), ``fields``: the workspace's field definitions in their
        order (``key``, ``label``, ``type``) so values can be shown under their labels, ``odoo_lead``
        (``odoo_lead``'s answer) and ``provenance``: field key (``name`` for the name) -> "preenchido pela IA a
        partir da mensagem de 14:32" for values an AI step wrote and nobody changed since.

    Raises:
        NotFound: not a contact the actor may open.
    """
    with session_scope() as session:
        contact, conv = load_contact(session, actor, contact_id)
        agent = session.scalar(select(User.name).where(User.id == conv.agent_id)) if conv and conv.agent_id else None
        definitions = session.execute(
            select(ContactField.key, ContactField.label, ContactField.type)
            .where(ContactField.workspace_id == actor.workspace_id)
            .order_by(ContactField.position, ContactField.id)).mappings().all()
        return {
            "id": contact.id, "display_name": display_name(contact), "name": contact.name,
            "push_name": contact.push_name, "phone": contact.phone, "email": contact.email,
            "company": contact.company, "custom_data": dict(contact.custom_data or {}),
            "tags": tag_names(session, contact.id), "created_at": contact.created_at,
            "instance": session.scalar(select(Instance.name).where(Instance.id == contact.instance_id)),
            "conversation_id": conv.id if conv else None, "agent": agent,
            "fields": [dict(row) for row in definitions],
            "odoo_lead": odoo_lead(session, actor.workspace_id, contact.odoo_lead_id),
            "provenance": ai_provenance(session, contact.id),
        }


def ai_provenance(session: Session, contact_id: int) -> dict[str, str]:
    """Field key -> where its current value came from, for values an AI step wrote (their latest change)."""
    rows = session.scalars(select(ActivityEvent.data).where(
        ActivityEvent.subject_type == "contact", ActivityEvent.subject_id == contact_id,
        ActivityEvent.kind == "field_changed").order_by(ActivityEvent.id.desc()).limit(PROVENANCE_EVENTS)).all()
    found: dict[str, str] = {}
    seen: set[str] = set()
    for data in rows:
        key = data.get("key") if isinstance(data, Mapping) else None
        if not isinstance(key, str) or key in seen:
            continue
        seen.add(key)
        text = provenance_text(data.get("provenance"))
        if text:
            found[key] = text
    return found


def provenance_text(provenance: Any) -> str | None:
    """"preenchido pela IA a partir da mensagem de 14:32" (a date too when not today); None when not the AI's."""
    if not isinstance(provenance, Mapping) or provenance.get("by") != "ai":
        return None
    try:
        at = datetime.fromisoformat(str(provenance.get("message_at")))
    except ValueError:
        return t("ai.provenance_unknown")
    when = format_when(at)
    return t("ai.provenance", time=when if ":" in when else format_moment(at))
