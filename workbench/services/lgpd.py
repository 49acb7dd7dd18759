"""LGPD requests of a contact (admins, from the contact's page): a copy of their data, and erasure.

*Exportar dados do contato* builds one ZIP: ``contact.json`` (fields, tags, notes), ``conversations.json``
(conversations with their messages), ``messages.csv`` and ``contact.html`` (readable copies), ``activity.json``
(the activity rows about the contact and its conversations) and ``media/`` (the files its messages carry).

*Apagar dados do contato* erases the personal data and keeps anonymous rows, so counts and dashboards stay as
they were: the contact keeps its id, number (our WhatsApp number), creation time and tags, but loses its name,
phone (replaced by ``apagado-<id>``), e-mail, company, fields and WhatsApp id; its messages keep direction, type,
status and times but lose their bodies, data, WhatsApp ids and media; notes, the AI summary and the
notifications of its conversations are deleted; funnel runs, their events, outside calls and outbox rows of its
conversations lose their variables, payloads and errors; activity rows about it lose their data. Media files no
other message (nor the media library) uses are deleted from the disk. Because the phone is gone, the same person
writing again is a new contact.

Both requests leave an activity row (who, when; ``contact_exported`` / ``contact_erased``) that holds no erased
data.
"""

from __future__ import annotations

import csv
import html
import io
import json
import zipfile
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from connector.media import media_path, thumbnail_path
from workbench.base.clock import now
from workbench.base.errors import InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.services.workspace_settings import MAX_RETENTION_DAYS, load_setting
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import (
    ActivityEvent,
    AISummary,
    Contact,
    ContactTag,
    Conversation,
    FunnelEvent,
    FunnelRun,
    Media,
    Message,
    Note,
    Notification,
    Outbox,
    OutsideCall,
    Setting,
    Tag,
    is_row_id,
)

MAX_EXPORT_MESSAGES = 200_000
"""Most messages one export holds (a contact's whole history in practice; bounds the ZIP's memory)."""
ERASED_PHONE = "apagado-{}"


def _contact(session: Session, actor: Actor, contact_id: object, lock: bool = False) -> Contact:
    actor.require("admin")
    query = select(Contact).where(Contact.id == contact_id, Contact.workspace_id == actor.workspace_id)
    contact = session.scalars(query.with_for_update() if lock else query).first() if is_row_id(contact_id) else None
    if contact is None:
        raise NotFound("contact", key="error.contact_not_found")
    return contact


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _activity(session: Session, workspace_id: int, contact_id: int, conversation_ids: list[int]):
    about = ((ActivityEvent.subject_type == "contact") & (ActivityEvent.subject_id == contact_id))
    if conversation_ids:
        about = about | ((ActivityEvent.subject_type == "conversation")
                         & ActivityEvent.subject_id.in_(conversation_ids))
    return select(ActivityEvent).where(ActivityEvent.workspace_id == workspace_id, about)


def export_contact(actor: Actor, contact_id: int) -> tuple[str, bytes]:
    """Admins: the contact's data as a ZIP; returns its file name and bytes (the request is recorded).

    Raises:
        PermissionDenied: not an admin. NotFound: no such contact in the actor's workspace.
    """
    data_dir = get_settings().data_dir
    with session_scope() as session:
        contact = _contact(session, actor, contact_id)
        tags = session.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                               .where(ContactTag.contact_id == contact.id).order_by(Tag.name)).all()
        notes = session.scalars(select(Note).where(Note.contact_id == contact.id).order_by(Note.id)).all()
        conversations = session.scalars(select(Conversation).where(Conversation.contact_id == contact.id)
                                        .order_by(Conversation.id)).all()
        conversation_ids = [c.id for c in conversations]
        rows = session.execute(
            select(Message, Media.sha256, Media.mime, Media.filename).outerjoin(Media, Media.id == Message.media_id)
            .where(Message.conversation_id.in_(conversation_ids)).order_by(Message.id)
            .limit(MAX_EXPORT_MESSAGES)).all() if conversation_ids else []
        activity = session.scalars(_activity(session, actor.workspace_id, contact.id, conversation_ids)
                                   .order_by(ActivityEvent.id)).all()
        person = {"id": contact.id, "phone": contact.phone, "whatsapp_id": contact.jid, "name": contact.name,
                  "whatsapp_name": contact.push_name, "email": contact.email, "company": contact.company,
                  "fields": contact.custom_data, "tags": list(tags), "created_at": _when(contact.created_at),
                  "notes": [{"kind": n.kind, "body": n.body, "created_at": _when(n.created_at)} for n in notes]}
        messages = [{"id": m.id, "conversation_id": m.conversation_id, "direction": m.direction, "type": m.type,
                     "text": m.text, "status": m.status, "created_at": _when(m.created_at),
                     "media": f"media/{sha or _sha_of(m.data)}" if sha or _sha_of(m.data) else None,
                     "media_type": mime or (m.data.get("media") or {}).get("mime"),
                     "media_name": name or (m.data.get("media") or {}).get("filename")}
                    for m, sha, mime, name in rows]
        threads = [{"id": c.id, "status": c.status, "created_at": _when(c.created_at),
                    "closed_at": _when(c.closed_at),
                    "messages": [m for m in messages if m["conversation_id"] == c.id]} for c in conversations]
        events = [{"kind": e.kind, "subject": e.subject_type, "subject_id": e.subject_id, "data": e.data,
                   "created_at": _when(e.created_at)} for e in activity]
        shas = sorted({sha for _, sha, _, _ in rows if sha} | {_sha_of(m.data) for m, *_ in rows} - {None})
        session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id,
                                  kind="contact_exported", subject_type="contact", subject_id=contact.id, data={}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("contact.json", json.dumps(person, ensure_ascii=False, indent=2, default=str))
        archive.writestr("conversations.json", json.dumps(threads, ensure_ascii=False, indent=2, default=str))
        archive.writestr("activity.json", json.dumps(events, ensure_ascii=False, indent=2, default=str))
        archive.writestr("messages.csv", _csv(messages))
        archive.writestr("contact.html", _html(person, messages))
        for sha in shas:
            path = media_path(data_dir, sha)
            if path.is_file():
                archive.write(path, f"media/{sha}")
    return f"contato-{contact_id}.zip", buffer.getvalue()


def _sha_of(data: Any) -> str | None:
    """The digest of the file a message's data names (inbound media keep their reference there)."""
    media = data.get("media") if isinstance(data, dict) else None
    sha = media.get("sha256") if isinstance(media, dict) else None
    return sha if isinstance(sha, str) else None


def _csv(messages: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ("created_at", "conversation_id", "direction", "type", "text", "media")
    writer.writerow(columns)
    for m in messages:
        writer.writerow([m[c] if m[c] is not None else "" for c in columns])
    return out.getvalue()


def _html(person: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """A readable page; everything in it was typed by people, so all of it is escaped."""
    e = html.escape
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(json.dumps(v, ensure_ascii=False, default=str))}</td></tr>"
                    for k, v in person.items() if k != "notes")
    notes = "".join(f"<li>{e(n['created_at'] or '')}: {e(n['body'])}</li>" for n in person["notes"])
    lines = "".join(f"<tr><td>{e(m['created_at'] or '')}</td><td>{e(m['direction'])}</td><td>{e(m['type'])}</td>"
                    f"<td>{e(m['text'] or '')}</td></tr>" for m in messages)
    return (f"<!doctype html><meta charset='utf-8'><title>Contato {person['id']}</title>"
            f"<table>{facts}</table><ul>{notes}</ul><table>{lines}</table>")


def erase_contact(actor: Actor, contact_id: int) -> dict[str, int]:
    """Admins: erase the contact's personal data, keeping anonymous rows; returns what was erased (counts).

    Raises:
        PermissionDenied: not an admin. NotFound: no such contact in the actor's workspace.
    """
    with session_scope() as session:
        contact = _contact(session, actor, contact_id, lock=True)
        conversation_ids = session.scalars(select(Conversation.id).where(Conversation.contact_id == contact.id)
                                           ).all()
        in_conversations = Message.conversation_id.in_(conversation_ids)
        media_ids = set(session.scalars(select(Message.media_id).where(in_conversations,
                                                                       Message.media_id.is_not(None))).all())
        shas = {_sha_of(data) for data in session.scalars(select(Message.data).where(in_conversations))} - {None}
        erased = session.execute(update(Message).where(in_conversations).values(
            text=None, data={}, wa_id=None, quoted_wa_id=None, error=None, media_id=None)).rowcount
        session.execute(update(Conversation).where(Conversation.id.in_(conversation_ids))
                        .values(last_message_preview=None))
        runs = select(FunnelRun.id).where(FunnelRun.contact_id == contact.id).scalar_subquery()
        session.execute(update(FunnelRun).where(FunnelRun.contact_id == contact.id).values(variables={}, error=None))
        session.execute(update(FunnelEvent).where(FunnelEvent.run_id.in_(runs)).values(data={}, error=None))
        session.execute(update(OutsideCall).where(OutsideCall.run_id.in_(runs)).values(request={}, result=None,
                                                                                       error=None))
        session.execute(update(Outbox).where(Outbox.message_id.in_(
            select(Message.id).where(in_conversations))).values(command={}, error=None))
        notes = session.execute(delete(Note).where(Note.contact_id == contact.id)).rowcount
        session.execute(delete(AISummary).where(AISummary.contact_id == contact.id))
        session.execute(delete(Notification).where(Notification.conversation_id.in_(conversation_ids)))
        about = _activity(session, actor.workspace_id, contact.id, list(conversation_ids)).subquery()
        session.execute(update(ActivityEvent).where(ActivityEvent.id.in_(select(about.c.id))).values(data={}))
        contact.phone = ERASED_PHONE.format(contact.id)
        for column in ("jid", "name", "push_name", "email", "company", "odoo_lead_id"):
            setattr(contact, column, None)
        contact.custom_data = {}
        files = _drop_media(session, actor.workspace_id, media_ids, shas)
        session.add(ActivityEvent(workspace_id=actor.workspace_id, actor_user_id=actor.user_id,
                                  kind="contact_erased", subject_type="contact", subject_id=contact.id,
                                  data={"messages": erased, "notes": notes, "media": len(files)}))
    _unlink(files)  # after the commit: a rolled-back erasure must not have lost the files
    return {"messages": erased, "notes": notes, "media": len(files)}


def _unlink(shas: list[str]) -> None:
    data_dir = get_settings().data_dir
    for sha in shas:
        for path in (media_path(data_dir, sha), thumbnail_path(data_dir, sha)):
            path.unlink(missing_ok=True)


def _drop_media(session: Session, workspace_id: int, media_ids: set[int], shas: set[str]) -> list[str]:
    """Delete the media rows only the erased messages used (library files stay); returns the digests of files
    (``shas`` and those rows') that no message nor media row of any workspace names any more."""
    used = set(session.scalars(select(Message.media_id).where(Message.media_id.in_(media_ids))).all())
    gone = set(session.execute(delete(Media).where(
        Media.id.in_(media_ids - used), Media.workspace_id == workspace_id, Media.in_library.is_(False))
        .returning(Media.sha256)).scalars().all()) if media_ids - used else set()
    candidates = sorted(shas | gone)
    if not candidates:
        return []
    named = Message.data["media"]["sha256"].astext
    kept = set(session.scalars(select(Media.sha256).where(Media.sha256.in_(candidates))).all())
    kept |= set(session.scalars(select(named).where(named.in_(candidates))).all())
    return [sha for sha in candidates if sha not in kept]


# -- Retention (Configurações › Geral, admins) -------------------------------------------------------------------
# A workspace may keep message bodies and media for N days only (off by default). The daily run
# (``engine.worker.jobs.retention``, from the scheduler process's sweep thread) empties older messages the way
# erasure does — text, data, media, quoted id — and keeps the rows, so counts and dashboards stay; contacts and
# their fields are left alone.

RETENTION_BATCH = 2000
"""Messages emptied per transaction (a long backlog is worked through in short transactions)."""


def _expired(workspace_id: int, days: int):
    cutoff = now() - timedelta(days=days)
    return (Message.workspace_id == workspace_id, Message.created_at < cutoff,
            (Message.text.is_not(None)) | (Message.media_id.is_not(None)) | (Message.data != {}))


def retention_preview(actor: Actor, days: int | None = None) -> dict[str, int]:
    """Admins: how many messages (and of them, with media) the retention of ``days`` (default: the saved
    setting's) would empty now; changes nothing."""
    actor.require("admin")
    with session_scope() as session:
        if days is None:
            days = load_setting(session, actor.workspace_id, "retention").days
        if not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
            raise InvalidInput("bad retention", key="error.retention_days", max=MAX_RETENTION_DAYS)
        where = _expired(actor.workspace_id, days)
        messages = session.scalar(select(func.count()).select_from(Message).where(*where))
        media = session.scalar(select(func.count()).select_from(Message).where(
            *where, (Message.media_id.is_not(None)) | Message.data.has_key("media")))
    return {"messages": messages, "media": media, "days": days}


def apply_retention(workspace_id: int) -> dict[str, int]:
    """Empty the workspace's messages older than its retention, when it is on (the daily job); returns counts."""
    with session_scope() as session:
        setting = load_setting(session, workspace_id, "retention")
    if not setting.enabled:
        return {"messages": 0, "media": 0}
    total, files = 0, 0
    while True:
        with session_scope() as session:
            ids = session.scalars(select(Message.id).where(*_expired(workspace_id, setting.days))
                                  .order_by(Message.id).limit(RETENTION_BATCH).with_for_update(skip_locked=True)
                                  ).all()
            if not ids:
                break
            chosen = Message.id.in_(ids)
            media_ids = set(session.scalars(select(Message.media_id).where(chosen, Message.media_id.is_not(None))))
            shas = {_sha_of(data) for data in session.scalars(select(Message.data).where(chosen))} - {None}
            session.execute(update(Message).where(chosen).values(text=None, data={}, quoted_wa_id=None,
                                                                 media_id=None))
            session.execute(update(Outbox).where(Outbox.message_id.in_(ids)).values(command={}))
            gone = _drop_media(session, workspace_id, media_ids, shas)
        _unlink(gone)
        total += len(ids)
        files += len(gone)
    if total:
        with session_scope() as session:
            session.execute(update(Conversation).where(
                Conversation.workspace_id == workspace_id,
                Conversation.last_message_at < now() - timedelta(days=setting.days)).values(last_message_preview=None))
            session.add(ActivityEvent(workspace_id=workspace_id, kind="retention_applied", subject_type="workspace",
                                      subject_id=workspace_id, data={"messages": total, "media": files}))
    return {"messages": total, "media": files}


def apply_retention_everywhere() -> dict[int, dict[str, int]]:
    """The daily job: every workspace whose retention is on."""
    with session_scope() as session:
        workspaces = session.scalars(select(Setting.workspace_id).where(Setting.key == "retention")).all()
    return {ws: apply_retention(ws) for ws in workspaces}
