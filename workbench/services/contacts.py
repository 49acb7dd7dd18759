"""Contacts in the inbox: their profile, tags and custom fields.

Any role edits the contacts whose conversation it sees under the inbox rules (``conversations.visible``);
other contacts, including other workspaces', are reported as not found. Custom field keys are what funnel
templates reach as ``{{contact.custom_data.KEY}}``, so they follow the funnel's own rule for field names.
Putting a tag on a contact fires the funnels' "Tag adicionada" triggers (``workbench.services.runs.on_tag_added``)
in the same transaction; what they send is published after commit (``workbench.store.outages.after_commit``:
with Redis out of reach then, the change is saved and ``AfterCommit`` says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workbench.base.errors import InvalidInput, NotFound
from workbench.services import contact_fields, conversations, runs
from workbench.services.auth import Actor
from workbench.services.contact_card import odoo_lead
from workbench.services.conversation_ref import ConversationRef
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import ActivityEvent, Contact, ContactTag, Conversation, Tag
from workbench.store.outages import after_commit
from workbench.store.text import (
    CONTACT_FIELD_KEY,
    MAX_CONTACT_FIELDS,
    MAX_CONTACT_NAME_CHARS,
    clean_text,
)

MAX_TAG_CHARS = 80
MAX_COMPANY_CHARS = 255
"""What ``contacts.company`` holds."""


def _load(session: Session, actor: Actor, contact_id: int, lock: bool = False) -> tuple[Contact, Conversation]:
    query = conversations.visible(actor, select(Contact, Conversation)
                                   .join(Conversation, Conversation.contact_id == Contact.id)
                                   .where(Contact.id == contact_id))
    if lock:
        # the inbound worker upserts this row too: a tag trigger and a message never start runs side by side
        query = query.with_for_update(of=Conversation)
    row = session.execute(query).first()
    if row is None:
        raise NotFound("contact", key="error.contact_not_found")
    return row[0], row[1]


def _tags(session: Session, contact_id: int) -> list[str]:
    return list(session.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                                .where(ContactTag.contact_id == contact_id).order_by(func.lower(Tag.name))))


def _record(session: Session, actor: Actor, contact: Contact, kind: str, data: dict[str, Any]) -> None:
    session.add(ActivityEvent(workspace_id=contact.workspace_id, actor_user_id=actor.user_id, kind=kind,
                              subject_type="contact", subject_id=contact.id, data=data))


def contact_profile(actor: Actor, contact_id: int) -> dict[str, Any]:
    """The contact for the inbox panel.

    Returns:
        ``id``, ``name``, ``push_name``, ``phone``, ``email``, ``company``, ``custom_data`` (dict), ``tags``
        (names, alphabetical) and ``odoo_lead`` (``contact_card.odoo_lead``: the lead's id and link, or None).

    Raises:
        NotFound: no such contact, or its conversation is not visible to the actor.
    """
    with session_scope() as session:
        contact, _ = _load(session, actor, contact_id)
        return {"id": contact.id, "name": contact.name, "push_name": contact.push_name, "phone": contact.phone,
                "email": contact.email, "company": contact.company, "custom_data": dict(contact.custom_data or {}),
                "tags": _tags(session, contact.id),
                "odoo_lead": odoo_lead(session, actor.workspace_id, contact.odoo_lead_id)}


def list_tags(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's tags, alphabetical: ``id``, ``name``, ``color`` and ``contacts`` (how many carry it)."""
    with session_scope() as session:
        rows = session.execute(
            select(Tag.id, Tag.name, Tag.color, func.count(ContactTag.contact_id).label("contacts"))
            .outerjoin(ContactTag, ContactTag.tag_id == Tag.id).where(Tag.workspace_id == actor.workspace_id)
            .group_by(Tag.id).order_by(func.lower(Tag.name), Tag.id)).mappings().all()
    return [dict(row) for row in rows]


def _tag_name(name: str | None) -> str:
    name = " ".join(clean_text(name or "")[0].split())  # the add-tag step stores names the same way
    if not 1 <= len(name) <= MAX_TAG_CHARS:
        raise InvalidInput("tag name", key="error.tag_name", max=MAX_TAG_CHARS)
    return name


def add_tag(actor: Actor, contact_id: int, name: str) -> str:
    """Put a tag on the contact, creating the workspace tag if needed; returns the tag's name as stored.

    An existing tag is reused whatever its case (typing "vip" adds "VIP"). When the contact did not carry it
    yet, funnels whose trigger is "Tag adicionada" for it start by the usual rules (not while the bot is
    paused; a live run is interrupted only by a trigger that may restart it).

    Raises:
        InvalidInput: the name is empty or longer than ``MAX_TAG_CHARS`` after trimming.
        NotFound: no such contact, or its conversation is not visible to the actor.
        AfterCommit: the tag (and any funnel it started) is saved; what the funnel sends waits for Redis.
    """
    name = _tag_name(name)
    with session_scope() as session:
        contact, conv = _load(session, actor, contact_id, lock=True)
        stored, added = runs.tag_contact(session, contact.workspace_id, contact.id, name)
        effects = runs.Effects()
        if added:
            _record(session, actor, contact, "tag_added", {"tag": stored})
            effects = runs.on_tag_added(session, ConversationRef.of(conv, contact), stored)
    if added:
        with after_commit():
            client = get_redis()
            runs.publish_effects(client, effects, [actor.workspace_id])
    return stored


def remove_tag(actor: Actor, contact_id: int, name: str) -> None:
    """Take a tag off the contact (any case); nothing happens when the contact does not carry it.

    Raises:
        NotFound: no such contact, or its conversation is not visible to the actor.
    """
    name = clean_text(name or "")[0].strip()
    with session_scope() as session:
        contact, _ = _load(session, actor, contact_id)
        removed = runs.untag_contact(session, contact.workspace_id, contact.id, name)
        if removed:
            _record(session, actor, contact, "tag_removed", {"tag": name})
    if removed:
        with after_commit():
            live.touch(get_redis(), [actor.workspace_id])


def _keys(custom_data: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The fields' raw values by key, rows checked by position: key rule, no repeats; blank editor rows skipped.

    Keys that fail are reported by position, never by their text; values are checked afterwards, by the
    field's definition (``contact_fields.validate_values``), whose messages name the (valid) key.
    """
    pairs = custom_data.items() if isinstance(custom_data, Mapping) else custom_data
    fields: dict[str, Any] = {}
    for position, (key, value) in enumerate(pairs, start=1):
        key = key.strip() if isinstance(key, str) else key
        if not key and (value is None or (isinstance(value, str) and not value.strip())):
            continue  # a blank row left in the editor
        if not isinstance(key, str) or not CONTACT_FIELD_KEY.match(key):
            raise InvalidInput("field key", key="error.field_key", n=position)
        if key in fields:
            raise InvalidInput("field key", key="error.field_duplicate", n=position)
        fields[key] = value
    return fields


def _short_text(value: str, limit: int, key: str) -> str:
    """A short text column (company): trimmed ("" clears it), refused past ``limit`` characters."""
    value = clean_text(value)[0].strip()
    if len(value) > limit:
        raise InvalidInput("text too long", key=key, max=limit)
    return value


def update_contact(actor: Actor, contact_id: int, *, name: str | None = None, email: str | None = None,
                   company: str | None = None,
                   custom_data: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> None:
    """Change the contact's name, e-mail, company and/or replace its custom fields; None leaves that part as it is.

    Args:
        name: the name agents know the contact by; "" clears it (the WhatsApp push name shows instead).
        email: checked like an e-mail field and stored in lower case; "" clears it.
        company: at most ``MAX_COMPANY_CHARS`` characters; "" clears it.
        custom_data: the complete set of fields, ``{key: value}`` or ``(key, value)`` pairs in the order the user
            typed them (so a repeated key is reported rather than silently merged). Keys start with a letter and
            hold letters, digits and ``_`` (at most 64), so ``{{contact.custom_data.KEY}}`` reaches them. A key
            defined in Configurações › Campos takes what its type accepts (``contact_fields.coerce``: text,
            numbers, dates, ``date``/``bool`` widget values...); other keys are free-form text of at most
            ``MAX_CONTACT_FIELD_CHARS`` characters. An empty value removes the field, and a row with neither key
            nor value is skipped.

    Raises:
        InvalidInput: a name or company too long, a bad e-mail, an invalid or repeated key (named by position),
            a value its field does not accept (named by key), too many fields.
        NotFound: no such contact, or its conversation is not visible to the actor.
    """
    if name is not None:
        name = clean_text(name)[0].strip()
        if len(name) > MAX_CONTACT_NAME_CHARS:
            raise InvalidInput("name", key="error.contact_name", max=MAX_CONTACT_NAME_CHARS)
    if email is not None:
        email = contact_fields.coerce("email", email) or ""  # "" clears it
    if company is not None:
        company = _short_text(company, MAX_COMPANY_CHARS, "error.contact_company")
    raw_fields = _keys(custom_data) if custom_data is not None else None
    with session_scope() as session:
        contact, _ = _load(session, actor, contact_id)
        fields = None
        if raw_fields is not None:
            checked = contact_fields.validate_values(session, contact.workspace_id, raw_fields)
            fields = {key: value for key, value in checked.items() if value is not None}
            if len(fields) > MAX_CONTACT_FIELDS:
                raise InvalidInput("fields", key="error.field_count", max=MAX_CONTACT_FIELDS)
        # One ``field_changed`` record per value that changed, with its old and new value (the contact's history;
        # earlier versions also wrote a ``contact_updated`` summary, which the feed still shows for old edits).
        changed: list[str] = []
        for column, value in (("name", name), ("email", email), ("company", company)):
            if value is not None and (value or None) != getattr(contact, column):
                _record(session, actor, contact, "field_changed",
                        {"source": "agent", "key": column, "old": getattr(contact, column), "new": value or None})
                setattr(contact, column, value or None)
                changed.append(column)
        old = dict(contact.custom_data or {})
        if fields is not None and fields != old:
            for key in [*fields, *(k for k in old if k not in fields)]:
                if fields.get(key) != old.get(key):
                    _record(session, actor, contact, "field_changed",
                            {"source": "agent", "key": key, "old": old.get(key), "new": fields.get(key)})
            contact.custom_data = fields
            changed.append("custom_data")
    if changed:
        with after_commit():
            live.touch(get_redis(), [actor.workspace_id])
