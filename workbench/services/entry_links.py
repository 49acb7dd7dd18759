"""Links de entrada: ``wa.me`` links (and their QR codes) that tell where a lead came from.

A link belongs to one of the workspace's numbers and has a name, a source (Instagram, site, anúncio, QR no
balcão …), optional UTM fields and the message the lead's WhatsApp starts with. That message ends with a short
code (``ref K7MP3Q``: six letters and digits that cannot be misread, ``engine.core.matching.CODE_ALPHABET``),
unique in the workspace. When a contact's **first** message carries a code of the workspace (whatever the case,
the accents or the text around it), ``attribute`` records the contact's entry link once and for all
(``entry_link_contacts``, one row per contact), raises the link's counter, fills the contact's source and UTM
fields (typed text fields, created with the link when missing; a value the contact already has is kept) and
writes an activity entry; funnels whose trigger is "Entrou por um link de entrada" may then start. With several
codes in one message the first one in the text wins.

The code is never part of what keyword triggers read: ``match_text`` takes the workspace's codes (and the ``ref``
before them) out of every message before matching. Clicks cannot be counted: WhatsApp opens directly, no page of
ours sees the visit; only contacts who send the message are.

Admins and supervisors manage links; the runtime functions take the caller's session and check nothing (the
drain calls them for a message it stored).
"""

from __future__ import annotations

import io
import logging
import secrets
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from engine.core.matching import (
    CODE_ALPHABET,
    CODE_LENGTH,
    CODE_MARKER,
    entry_codes_in,
    looks_like_code,
    strip_entry_codes,
)
from workbench.base.errors import InvalidInput, NotFound
from workbench.base.i18n import t
from workbench.services import contact_fields
from workbench.services.auth import Actor
from workbench.services.conversation_ref import ConversationRef
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    Contact,
    ContactField,
    EntryLink,
    EntryLinkContact,
    Instance,
    is_row_id,
)
from workbench.store.text import CONTACT_FIELD_KEY, MAX_CONTACT_FIELD_CHARS, MAX_CONTACT_FIELDS, clean_text

log = logging.getLogger(__name__)

MAX_LINKS = 500
"""Entry links a workspace keeps (the page lists them all)."""
MAX_NAME = 120
MAX_SOURCE = 80
MAX_UTM = 120
MAX_MESSAGE = 500
"""Longest pre-filled message: a greeting, not a letter (the whole ``wa.me`` URL stays short enough for a QR)."""
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
SOURCE_FIELD = "origem"
LINK_FIELD = "link_entrada"
FIELD_KEYS = (SOURCE_FIELD, LINK_FIELD, *UTM_KEYS)
"""The contact fields an attribution fills (typed ``text`` fields of Configurações › Campos)."""
SOURCE_SUGGESTIONS = ("instagram", "facebook", "site", "ad", "counter_qr", "email", "referral")
"""Suggested sources, worded by the catalog (``links.source.<key>``); any other text is accepted."""


# -- building blocks --------------------------------------------------------------------------------------------

def prefilled(message: str, code: str) -> str:
    """The text the lead's WhatsApp starts with: the author's message and ``(ref CODE)``."""
    return f"{message} ({CODE_MARKER} {code})" if message else f"{CODE_MARKER} {code}"


def wa_url(phone: str, text: str) -> str:
    """The ``https://wa.me/<phone>?text=…`` URL that opens a chat with ``phone`` and ``text`` typed in."""
    return f"https://wa.me/{phone}?text={quote(text, safe='')}"


def qr_code(url: str, kind: str = "png") -> bytes:
    """The QR code of ``url`` as a PNG or SVG file (``kind``), dark on white with a quiet border."""
    import segno  # here, not at the top: only the panel draws QR codes, and the workers import this module

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind=kind, scale=8 if kind == "png" else 4, border=4)
    return out.getvalue()


def _new_code(session: Session, workspace_id: int) -> str:
    taken = set(session.scalars(select(EntryLink.code).where(EntryLink.workspace_id == workspace_id)))
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if looks_like_code(code.lower()) and code not in taken:
            return code


def _text(value: Any, limit: int, key: str, required: bool = True) -> str:
    text = clean_text(value if isinstance(value, str) else "", limit=None)[0].strip()
    if (required and not text) or len(text) > limit:
        raise InvalidInput("bad entry link field", key=key, max=limit)
    return text


def _ensure_fields(session: Session, workspace_id: int) -> None:
    """Define the source/UTM contact fields (text) that are not defined yet, while there is room."""
    existing = contact_fields.definitions(session, workspace_id)
    lowered = {k.casefold() for k in existing}
    position = max((f.position for f in existing.values()), default=-1)
    for key in FIELD_KEYS:
        if key.casefold() in lowered or len(existing) >= contact_fields.MAX_FIELDS:
            continue
        position += 1
        session.add(ContactField(workspace_id=workspace_id, key=key, label=t(f"links.field.{key}"), type="text",
                                 options=[], position=position))
        existing[key] = contact_fields.FieldDef(None, key, key, "text")


def _row(link: EntryLink) -> dict[str, Any]:
    text = prefilled(link.message, link.code)
    return {"id": link.id, "name": link.name, "instance_id": link.instance_id, "phone": link.phone,
            "source": link.source, "utm": dict(link.utm or {}), "message": link.message, "code": link.code,
            "text": text, "url": wa_url(link.phone, text), "contacts": link.contacts_count,
            "created_at": link.created_at}


# -- managing links -------------------------------------------------------------------------------------------

def create_link(actor: Actor, *, name: str, instance_id: int, source: str, message: str = "",
                utm: dict[str, str] | None = None, phone: str | None = None) -> dict[str, Any]:
    """Admins and supervisors create an entry link; returns it as ``list_links`` shows it.

    ``phone`` is the number's WhatsApp phone when the number has not told it yet (not paired); by default the
    number's own. Creating the first link also defines the contact fields it fills (``FIELD_KEYS``).

    Raises:
        InvalidInput: an empty or too long name, source, message or UTM value; an unknown UTM key; no phone.
        NotFound: the number is not the workspace's.
    """
    actor.require("admin", "supervisor")
    name = _text(name, MAX_NAME, "error.entry_link.name")
    source = _text(source, MAX_SOURCE, "error.entry_link.source")
    message = _text(message, MAX_MESSAGE, "error.entry_link.message", required=False)
    cleaned: dict[str, str] = {}
    for key, value in (utm or {}).items():
        if key not in UTM_KEYS:
            raise InvalidInput("unknown utm key", key="error.entry_link.utm_key")
        text = _text(value, MAX_UTM, "error.entry_link.utm", required=False)
        if text:
            cleaned[key] = text
    with session_scope() as session:
        instance = session.scalars(select(Instance).where(
            Instance.id == instance_id, Instance.workspace_id == actor.workspace_id,
            Instance.removed_at.is_(None))).first() if is_row_id(instance_id) else None
        if instance is None:
            raise NotFound("instance", key="error.entry_link.number")
        digits = contact_fields.normalize_phone(phone) if phone and str(phone).strip() else instance.phone
        if not digits:
            raise InvalidInput("no phone", key="error.entry_link.phone")
        count = session.scalar(select(func.count(EntryLink.id)).where(EntryLink.workspace_id == actor.workspace_id))
        if count >= MAX_LINKS:
            raise InvalidInput("too many links", key="error.entry_link.count", max=MAX_LINKS)
        _ensure_fields(session, actor.workspace_id)
        link = EntryLink(workspace_id=actor.workspace_id, instance_id=instance.id, name=name, phone=digits,
                         source=source, utm=cleaned, message=message, code=_new_code(session, actor.workspace_id),
                         created_by=actor.user_id)
        session.add(link)
        session.flush()
        session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id,
                                  kind="entry_link_created", subject_type="entry_link", subject_id=link.id,
                                  data={"name": name}))
        session.refresh(link)
        return _row(link)


def list_links(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's entry links, newest first, with their URL and counter (admins and supervisors)."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        rows = session.scalars(select(EntryLink).where(EntryLink.workspace_id == actor.workspace_id)
                               .order_by(EntryLink.id.desc()).limit(MAX_LINKS)).all()
        return [_row(link) for link in rows]


def link_choices(actor: Actor) -> list[dict[str, Any]]:
    """Id and name of every entry link, for the trigger's "Só estes links de entrada" (any editor of funnels)."""
    with session_scope() as session:
        rows = session.execute(select(EntryLink.id, EntryLink.name).where(EntryLink.workspace_id == actor.workspace_id)
                               .order_by(EntryLink.name).limit(MAX_LINKS)).all()
    return [{"id": i, "name": n} for i, n in rows]


def delete_link(actor: Actor, link_id: int) -> None:
    """Admins and supervisors delete a link; its contacts keep their source fields, but lose the attribution."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        link = session.scalars(select(EntryLink).where(
            EntryLink.id == link_id, EntryLink.workspace_id == actor.workspace_id)).first() \
            if is_row_id(link_id) else None
        if link is None:
            raise NotFound("entry link", key="error.entry_link.not_found")
        session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id,
                                  kind="entry_link_deleted", subject_type="entry_link", subject_id=link.id,
                                  data={"name": link.name}))
        session.delete(link)


# -- the runtime ----------------------------------------------------------------------------------------------

def _known(session: Session, workspace_id: int, text: str | None) -> list[EntryLink]:
    """The workspace's links whose code the text carries, in the order the codes appear."""
    codes = entry_codes_in(text)
    if not codes:
        return []
    links = {link.code: link for link in session.scalars(select(EntryLink).where(
        EntryLink.workspace_id == workspace_id, EntryLink.code.in_(codes[:20])))}
    return [links[c] for c in codes if c in links]


def read_message(session: Session, conversation: ConversationRef, text: str | None) -> tuple[str | None, int | None]:
    """What the runtime needs of an incoming message: its text as keyword triggers should read it (without the
    workspace's codes and their ``ref``) and, for a contact's first message that carries a code, the entry link
    it is now attributed to (``attribute``). One query, and only when the text holds a code-shaped word."""
    links = _known(session, conversation.workspace_id, text)
    if not links:
        return text, None
    stripped = strip_entry_codes(text, [link.code for link in links])
    if not conversation.first_message:
        return stripped, None
    return stripped, attribute(session, conversation, links[0])


def attribute(session: Session, conversation: ConversationRef, link: EntryLink) -> int | None:
    """Attribute the conversation's contact to ``link``, once: a contact already attributed keeps its link (and
    None is returned). Raises the counter, fills the source fields and writes the activity entry."""
    added = session.execute(pg_insert(EntryLinkContact).values(
        contact_id=conversation.contact_id, workspace_id=conversation.workspace_id, link_id=link.id,
    ).on_conflict_do_nothing().returning(EntryLinkContact.contact_id)).scalar_one_or_none()
    if added is None:
        return None
    session.execute(update(EntryLink).where(EntryLink.id == link.id)
                    .values(contacts_count=EntryLink.contacts_count + 1))
    _fill_fields(session, conversation, link)
    session.add(ActivityEvent(workspace_id=conversation.workspace_id, kind="entry_link", subject_type="contact",
                              subject_id=conversation.contact_id,
                              data={"link_id": link.id, "name": link.name, "source": link.source}))
    return link.id


def _fill_fields(session: Session, conversation: ConversationRef, link: EntryLink) -> None:
    """Write the link's source, name and UTM values into the contact's fields it does not hold yet; a value a
    field's type refuses (someone redefined ``origem`` as a list) is left out and logged by key."""
    contact = session.get(Contact, conversation.contact_id)
    fields = dict(contact.custom_data or {})
    defined = contact_fields.definitions(session, conversation.workspace_id)
    wanted = {SOURCE_FIELD: link.source, LINK_FIELD: link.name, **dict(link.utm or {})}
    for key, raw in wanted.items():
        if key in fields or not CONTACT_FIELD_KEY.match(key) or len(fields) >= MAX_CONTACT_FIELDS:
            continue
        try:
            value = contact_fields.coerce(defined.get(key) or contact_fields.FieldDef(None, key, key, "text"),
                                          str(raw)[:MAX_CONTACT_FIELD_CHARS])
        except InvalidInput:
            log.info("entry link %s: contact field %s not filled: its type refuses the value", link.id, key)
            continue
        if value is not None:
            fields[key] = value
    contact.custom_data = fields
