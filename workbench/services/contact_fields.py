"""Typed contact fields (Configurações › Campos): the workspace's field definitions and the one rule that checks
and normalises a value before it is stored in ``contacts.custom_data[key]``.

Definitions (``contact_fields``) give a key a label, a type (``FIELD_TYPES``: texto, número, data, lista de
opções, sim/não, e-mail, telefone, URL) and, for lists, their options. Admins and supervisors change them;
everyone reads them. The key follows the contact form's field-name rule (``CONTACT_FIELD_KEY``), because funnel
templates reach the value as ``{{contact.custom_data.KEY}}``; it cannot change after creation.

Every writer of a contact's fields goes through ``coerce`` (one value) or ``validate_values`` (a dict of them):
the inbox's contact panel (``workbench.services.contacts.update_contact``), funnels (``workbench.services.runs``),
imports and bulk edits. Stored values are JSON: numbers as numbers, dates as ``"YYYY-MM-DD"``, sim/não as
booleans, phones as digits with the country code, e-mails in lower case, options in the option's own spelling.
Keys without a definition stay free-form text, as before definitions existed.

Refusals are ``InvalidInput`` whose message names the field by its key (keys are letters, digits and ``_``, so
the message is safe to show anywhere); labels and options are typed by people and are only shown with literal
elements. Changing a field's type or options converts the stored values when every one of them fits, and is
refused with the number of contacts whose value does not fit otherwise (``Conflict``): nothing is ever lost or
silently rewritten to something else. Deleting a field removes its values from every contact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from engine.core.nodes.wait_reply import parse_date, parse_email, parse_number, parse_yes_no
from workbench.base.clock import now
from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.base.i18n import t
from workbench.services.auth import Actor
from workbench.store.db import session_scope
from workbench.store.models import FIELD_TYPES, Contact, ContactField, Workspace
from workbench.store.text import CONTACT_FIELD_KEY, MAX_CONTACT_FIELD_CHARS, MAX_CONTACT_FIELDS, clean_json, clean_text

MAX_FIELDS = MAX_CONTACT_FIELDS
"""Definitions per workspace: as many as one contact may hold."""
MAX_LABEL_CHARS = 120
MAX_OPTIONS = 50
MAX_OPTION_CHARS = 100
MAX_EMAIL_CHARS = 254
MAX_NUMBER = 10**15
"""Numbers are kept below this (in absolute value), so every stored number is exact as a JSON number."""
DEFAULT_REGION = "BR"
"""Phones typed without a country code are Brazilian (+55)."""

_PHONE_CHARACTERS = re.compile(r"^[\d\s()+.\-/]+$")


@dataclass(frozen=True)
class FieldDef:
    """One field definition as services and pages use it."""

    id: int | None
    key: str
    label: str
    type: str
    options: tuple[str, ...] = ()
    position: int = 0


def _def(row: ContactField) -> FieldDef:
    return FieldDef(row.id, row.key, row.label, row.type, tuple(row.options or ()), row.position)


# -- one value --------------------------------------------------------------------------------------------------


def coerce(field_or_type: FieldDef | str, raw: Any) -> Any:
    """Check ``raw`` against a field (or a bare type) and return what is stored; None for an empty value.

    Accepts what people and files type (``"1.234,56"``, ``"31/12/2026"``, ``"sim"``, ``"(11) 98765-4321"``) and
    what widgets give (numbers, ``date``, ``bool``).

    Args:
        field_or_type: the definition (needed for ``choice``, whose options it holds), or one of ``FIELD_TYPES``.
        raw: the value; None or blank text means "no value".

    Returns:
        text (cleaned, trimmed) for text; a JSON number (int when whole); ``"YYYY-MM-DD"``; a bool; an e-mail in
        lower case; the phone's digits with the country code (``"5511987654321"``); an http(s) URL; the option's
        own spelling; or None.

    Raises:
        InvalidInput: the value does not fit; the message names the field (its key, or the type's name).
    """
    field = field_or_type if isinstance(field_or_type, FieldDef) else FieldDef(None, "", "", field_or_type)
    if field.type not in FIELD_TYPES:
        raise ValueError(f"unknown field type {field.type}")
    if isinstance(raw, str):
        raw = clean_text(raw, limit=MAX_CONTACT_FIELD_CHARS + 1)[0].strip()
    if raw is None or raw == "":
        return None
    value = _COERCERS[field.type](field, raw)
    if value is None:
        name = field.key or t(f"fields.type.{field.type}")
        raise InvalidInput(f"{field.type} value", key=f"error.field.{field.type}", field=name,
                           max=MAX_CONTACT_FIELD_CHARS)
    return value


def _text(field: FieldDef, raw: Any) -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    text = raw if isinstance(raw, str) else str(raw)
    if len(text) > MAX_CONTACT_FIELD_CHARS:
        name = field.key or t("fields.type.text")
        raise InvalidInput("text too long", key="error.field.text_long", field=name, max=MAX_CONTACT_FIELD_CHARS)
    return text


def _number(field: FieldDef, raw: Any) -> int | float | None:
    if isinstance(raw, bool):
        return None
    number = raw if isinstance(raw, int | float) else parse_number(raw) if isinstance(raw, str) else None
    if number is None or number != number or abs(number) >= MAX_NUMBER:  # NaN compares unequal to itself
        return None
    return int(number) if float(number).is_integer() else float(number)


def _date(field: FieldDef, raw: Any) -> str | None:
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    parsed = parse_date(raw, now().date()) if isinstance(raw, str) else None
    return parsed.isoformat() if parsed else None


def _boolean(field: FieldDef, raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    return parse_yes_no(str(raw)) if isinstance(raw, str | int) else None


def _email(field: FieldDef, raw: Any) -> str | None:
    email = parse_email(raw) if isinstance(raw, str) else None
    return email if email and len(email) <= MAX_EMAIL_CHARS else None


def _phone(field: FieldDef, raw: Any) -> str | None:
    return normalize_phone(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else None


def _url(field: FieldDef, raw: Any) -> str | None:
    if not isinstance(raw, str) or len(raw) > MAX_CONTACT_FIELD_CHARS or any(ch.isspace() for ch in raw):
        return None
    try:
        parts = urlsplit(raw)
    except ValueError:  # a malformed IPv6 host
        return None
    return raw if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _choice(field: FieldDef, raw: Any) -> str | None:
    wanted = str(raw).strip().casefold() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    return next((option for option in field.options if option.casefold() == wanted), None)


_COERCERS = {"text": _text, "number": _number, "date": _date, "boolean": _boolean, "email": _email,
             "phone": _phone, "url": _url, "choice": _choice}


def normalize_phone(raw: str | int) -> str | None:
    """A phone as the product stores them, digits with the country code (``"5511987654321"``), or None.

    Brazilian when typed without a country code; ``+`` starts another country's number. The number must be a
    valid one for its country (``phonenumbers``' metadata), so a number missing its area code is refused.
    """
    text = str(raw).strip()
    if not _PHONE_CHARACTERS.match(text):
        return None
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def display_value(field_type: str | None, value: Any) -> str:
    """A stored value as people read it: dates as 31/12/2026, sim/não, numbers in pt-BR notation ("1.234,56");
    free-form and other values as they are ("" for none). Shown with literal elements: it may hold typed text."""
    if value is None:
        return ""
    if field_type == "boolean" and isinstance(value, bool):
        return t("fields.yes") if value else t("fields.no")
    if field_type == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return value
    if field_type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        text = f"{value:,.15g}" if isinstance(value, float) else f"{value:,}"
        return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return str(value)


# -- a set of values --------------------------------------------------------------------------------------------


def definitions(session: Session, workspace_id: int) -> dict[str, FieldDef]:
    """The workspace's definitions by key, in their order (no permission check: services call it)."""
    rows = session.scalars(select(ContactField).where(ContactField.workspace_id == workspace_id)
                           .order_by(ContactField.position, ContactField.id))
    return {row.key: _def(row) for row in rows}


def field_types(session: Session, workspace_id: int) -> dict[str, str]:
    """Key -> type of the workspace's defined fields (what funnel conditions compare by)."""
    return dict(session.execute(select(ContactField.key, ContactField.type)
                                .where(ContactField.workspace_id == workspace_id)).tuples().all())


def validate_values(session: Session, workspace_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a dict of key -> raw value against the workspace's definitions (for imports, bulk edits, the panel).

    Keys without a definition are free-form text, as before definitions existed. Keys must follow the field-name
    rule (``CONTACT_FIELD_KEY``); a bad key is reported by its position in ``values``, never by its text.

    Returns:
        key -> the value to store, in the order given; None for an empty value (the caller clears the field, or
        leaves it as it is).

    Raises:
        InvalidInput: a bad key (``error.field_key``, position ``n``), or the first value that does not fit
            (``error.field.<type>``, naming the field's key).
    """
    defined = definitions(session, workspace_id)
    result: dict[str, Any] = {}
    for position, (key, raw) in enumerate(values.items(), start=1):
        if not isinstance(key, str) or not CONTACT_FIELD_KEY.match(key):
            raise InvalidInput("field key", key="error.field_key", n=position)
        result[key] = coerce(defined.get(key) or FieldDef(None, key, key, "text"), raw)
    return result


# -- definitions ------------------------------------------------------------------------------------------------


def list_fields(actor: Actor) -> list[FieldDef]:
    """The workspace's field definitions in their order (any role: the inbox and the funnel editor read them)."""
    with session_scope() as session:
        return list(definitions(session, actor.workspace_id).values())


def list_field_types(actor: Actor) -> dict[str, str]:
    """Key -> type of the workspace's fields (any role: the funnel editor's test chat compares like runs do)."""
    with session_scope() as session:
        return field_types(session, actor.workspace_id)


def _label(label: str | None) -> str:
    label = " ".join(clean_text(label or "")[0].split())
    if not 1 <= len(label) <= MAX_LABEL_CHARS:
        raise InvalidInput("field label", key="error.field.label", max=MAX_LABEL_CHARS)
    return label


def _options(field_type: str, options: Sequence[str] | None) -> tuple[str, ...]:
    """A list's options, trimmed, blank lines dropped; other types have none."""
    if field_type != "choice":
        return ()
    cleaned = [" ".join(clean_text(str(o))[0].split()) for o in (options or ()) if str(o).strip()]
    if not 1 <= len(cleaned) <= MAX_OPTIONS:
        raise InvalidInput("options", key="error.field.options_count", max=MAX_OPTIONS)
    if any(len(o) > MAX_OPTION_CHARS for o in cleaned):
        raise InvalidInput("option", key="error.field.option_long", max=MAX_OPTION_CHARS)
    if len({o.casefold() for o in cleaned}) < len(cleaned):
        raise InvalidInput("options", key="error.field.option_duplicate")
    return tuple(cleaned)


def _type(field_type: str | None) -> str:
    if field_type not in FIELD_TYPES:
        raise InvalidInput("field type", key="error.field.type")
    return field_type


def _owned(session: Session, actor: Actor, field_id: int, lock: bool = False) -> ContactField:
    query = select(ContactField).where(ContactField.id == field_id, ContactField.workspace_id == actor.workspace_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound("contact field", key="error.field.not_found")
    return row


def create_field(actor: Actor, key: str, label: str, field_type: str, options: Sequence[str] | None = None) -> FieldDef:
    """Define a new field, placed last. Values contacts already hold under that key must fit its type; they
    are converted to it (a free-form "1.234,5" becomes the number 1234.5).

    Raises:
        PermissionDenied: agents.
        InvalidInput: a bad key, label, type or options; too many fields.
        Conflict: the key is taken (in any case), or contacts hold values under it that do not fit the type.
    """
    actor.require("admin", "supervisor")
    key = (key or "").strip()
    if not CONTACT_FIELD_KEY.match(key):
        raise InvalidInput("field key", key="error.field.key")
    field = FieldDef(None, key, _label(label), _type(field_type), _options(field_type, options))
    with session_scope() as session:
        # one new field at a time per workspace: the count and the key check below stay true
        session.execute(select(Workspace.id).where(Workspace.id == actor.workspace_id).with_for_update())
        existing = definitions(session, actor.workspace_id)
        if any(k.casefold() == key.casefold() for k in existing):
            raise Conflict("key taken", key="error.field.key_taken", field=key)
        if len(existing) >= MAX_FIELDS:
            raise InvalidInput("too many fields", key="error.field.count", max=MAX_FIELDS)
        _convert_values(session, actor.workspace_id, field)
        position = max((f.position for f in existing.values()), default=-1) + 1
        row = ContactField(workspace_id=actor.workspace_id, key=field.key, label=field.label, type=field.type,
                           options=list(field.options), position=position)
        session.add(row)
        session.flush()
        return _def(row)


def update_field(actor: Actor, field_id: int, *, label: str | None = None, field_type: str | None = None,
                 options: Sequence[str] | None = None) -> FieldDef:
    """Change a field's label, type or options (None leaves each as it is; the key never changes).

    A new type or new options apply to the values contacts hold: when all of them fit they are converted in the
    same transaction (a text "10" becomes the number 10, "ouro" becomes the option "Ouro"); otherwise nothing
    changes and the refusal says how many contacts hold a value that does not fit.

    Raises:
        PermissionDenied: agents.
        NotFound: no such field in the actor's workspace.
        InvalidInput: a bad label, type or options.
        Conflict: ``error.field.values_do_not_fit`` with ``count``.
    """
    actor.require("admin", "supervisor")
    with session_scope() as session:
        row = _owned(session, actor, field_id, lock=True)
        current = _def(row)
        new_type = _type(field_type) if field_type is not None else current.type
        new_options = _options(new_type, options if options is not None else current.options)
        changed = replace(current, label=_label(label) if label is not None else current.label, type=new_type,
                          options=new_options)
        if (changed.type, changed.options) != (current.type, current.options):
            _convert_values(session, actor.workspace_id, changed)
        row.label, row.type, row.options = changed.label, changed.type, list(changed.options)
        return changed


def _holders(workspace_id: int, key: str) -> tuple[Any, ...]:
    """Conditions for the workspace's contacts that hold a value under ``key``."""
    return Contact.workspace_id == workspace_id, Contact.custom_data.has_key(key)


def _convert_values(session: Session, workspace_id: int, field: FieldDef) -> None:
    """Rewrite the values held under ``field.key`` into ``field``'s type, or refuse when any does not fit."""
    rows = session.execute(select(Contact.id, Contact.custom_data[field.key])
                           .where(*_holders(workspace_id, field.key))).all()
    converted: dict[int, Any] = {}
    misfits = 0
    for contact_id, value in rows:
        try:
            new = coerce(field, value)
        except InvalidInput:
            misfits += 1
            continue
        if new != value or type(new) is not type(value):
            converted[contact_id] = new
    if misfits:
        raise Conflict("values do not fit", key="error.field.values_do_not_fit", field=field.key, count=misfits)
    for contact_id, new in converted.items():
        # only this key changes, in SQL: a concurrent write to the contact's other fields is not undone
        if new is None:  # a blank value: the field goes, as an empty value does everywhere
            values = Contact.custom_data - field.key
        else:
            values = Contact.custom_data.op("||", return_type=JSONB)(literal({field.key: clean_json(new)}, JSONB))
        session.execute(update(Contact).where(Contact.id == contact_id).values(custom_data=values))


def field_usage(actor: Actor, field_id: int) -> int:
    """How many contacts hold a value for the field (what deleting it would remove); admins and supervisors.

    Raises:
        PermissionDenied: agents.
        NotFound: no such field in the actor's workspace.
    """
    actor.require("admin", "supervisor")
    with session_scope() as session:
        row = _owned(session, actor, field_id)
        return session.scalar(select(func.count()).select_from(Contact)
                              .where(*_holders(actor.workspace_id, row.key))) or 0


def delete_field(actor: Actor, field_id: int) -> int:
    """Delete the definition and remove its values from every contact; returns how many contacts held one.

    Raises:
        PermissionDenied: agents.
        NotFound: no such field in the actor's workspace.
    """
    actor.require("admin", "supervisor")
    with session_scope() as session:
        row = _owned(session, actor, field_id, lock=True)
        removed = session.execute(update(Contact).where(*_holders(actor.workspace_id, row.key))
                                  .values(custom_data=Contact.custom_data - row.key)).rowcount
        session.execute(delete(ContactField).where(ContactField.id == row.id))
        return removed


def reorder_fields(actor: Actor, field_ids: Sequence[int]) -> None:
    """Put the workspace's fields in this order (every field id exactly once).

    Raises:
        PermissionDenied: agents.
        NotFound: an id that is not a field of the actor's workspace.
        InvalidInput: ids missing or repeated.
    """
    actor.require("admin", "supervisor")
    with session_scope() as session:
        rows = {row.id: row for row in session.scalars(
            select(ContactField).where(ContactField.workspace_id == actor.workspace_id).with_for_update())}
        if any(field_id not in rows for field_id in field_ids):
            raise NotFound("contact field", key="error.field.not_found")
        if sorted(field_ids) != sorted(rows):
            raise InvalidInput("order", key="error.field.order")
        for position, field_id in enumerate(field_ids):
            rows[field_id].position = position


def move_field(actor: Actor, field_id: int, step: int) -> None:
    """Move a field ``step`` places up (negative) or down in the order; at either end it stays.

    Raises:
        PermissionDenied: agents.
        NotFound: no such field in the actor's workspace.
    """
    ids = [f.id for f in list_fields(actor)]
    if field_id not in ids:
        raise NotFound("contact field", key="error.field.not_found")
    index = ids.index(field_id)
    target = min(max(index + step, 0), len(ids) - 1)
    ids.insert(target, ids.pop(index))
    reorder_fields(actor, ids)
