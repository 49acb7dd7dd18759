"""Merging duplicate contacts (the same person under two numbers, or written twice): admins and supervisors only.

``merge(actor, keep_id, other_id, choices)`` keeps one contact and removes the other, in one transaction:

- **values**: for the name, e-mail, company and every custom field either contact has, ``choices`` says which
  side wins (``"keep"`` or ``"other"``); without a choice the kept contact's value wins, or the other's when the
  kept one has none. The kept contact keeps its phone and its number (``instance_id``): a contact is unique per
  (number, phone), so the other's phone does not come along.
- **everything else moves to the kept contact**: tags (the union), notes, funnel runs (with their steps) and the
  activity of the contact and of its conversation. The two conversations become one: the kept contact's
  conversation takes the other's messages (their outbox rows and receipts follow the messages), notifications,
  notes and runs; unread counts add up, and the last message, last inbound time, status (an open conversation
  stays open) and assignment (when the kept one had none) are recomputed. Replies then go out from the kept
  conversation's number to the kept contact's phone; messages already queued keep the address they were queued
  with. When only the other contact has a conversation, it becomes the kept contact's, on the kept contact's
  number.
- the other conversation and contact are deleted, and the merge is recorded: an ``ActivityEvent`` ``merged`` on the
  kept contact with a snapshot of the other (``data.other``), the choices and what moved.

Refused: across workspaces (an id of another workspace is ``NotFound``), the same contact twice (``InvalidInput``),
and while either contact has a live funnel run — active, waiting or paused (``Conflict``: stop it first; a run's
timers and replies are tied to its conversation).

Concurrency: before reading anything it changes, a merge locks, in this order and each in id order, the inbound lanes
of both numbers (their ``drain_lanes`` rows, ``FOR NO KEY UPDATE``: the lock every inbound drain transaction takes
first; the rows of both contacts' lanes and of the numbers' streams of before lanes are created if missing, so no
drain of those contacts can start unseen: drains of those numbers wait for the merge, and a batch in flight finishes
before it), both conversations (``FOR UPDATE``, the lock an agent's tag or funnel start takes before touching the
contact) and both contacts. Every writer takes these locks in the same order, so they queue instead of deadlocking;
the live-run check runs under them. Inbound messages of the two numbers wait for the merge (milliseconds; a long
conversation's messages move in one statement each).

After the merge, a message from the removed (number, phone) pair creates a **new** contact and conversation by the
usual inbound rule: nothing maps that pair to the kept contact (the person may have two phones in use); merge again
if it is the same person.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from sqlalchemy import BigInteger, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from connector.contracts import inbound_lanes, lane_of
from workbench.base.errors import Conflict, InvalidInput, NotFound
from workbench.services import runs
from workbench.services.auth import Actor
from workbench.services.contact_card import display_name, tag_names
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import (
    LEGACY_LANE,
    ActivityEvent,
    Contact,
    ContactTag,
    Conversation,
    DrainLane,
    FunnelRun,
    Instance,
    Message,
    Note,
    Notification,
    is_row_id,
)
from workbench.store.outages import after_commit
from workbench.store.text import MAX_CONTACT_FIELDS, clean_text, like_pattern

SEARCH_LIMIT = 20
MAX_SEARCH_CHARS = 100
COLUMNS = ("name", "email", "company")
"""Contact columns a merge chooses between; custom fields are ``custom_data.<key>``."""


def _managers_only(actor: Actor) -> None:
    actor.require("admin", "supervisor")


def search_contacts(actor: Actor, text: str, exclude_id: int | None = None) -> list[dict[str, Any]]:
    """Contacts of the workspace whose name, WhatsApp name, phone or e-mail contains ``text`` (case ignored),
    at most ``SEARCH_LIMIT``, for picking the other contact of a merge.

    Returns:
        ``id``, ``display_name``, ``phone`` and ``instance`` (the number's name), by name.

    Raises:
        PermissionDenied: an agent (merging is for admins and supervisors).
    """
    _managers_only(actor)
    words = clean_text(text or "", limit=MAX_SEARCH_CHARS)[0].strip()
    if not words:
        return []
    like = like_pattern(words)
    query = select(Contact.id, Contact.name, Contact.push_name, Contact.phone, Instance.name.label("instance")) \
        .join(Instance, Instance.id == Contact.instance_id) \
        .where(Contact.workspace_id == actor.workspace_id,
               or_(Contact.name.ilike(like), Contact.push_name.ilike(like), Contact.phone.like(like),
                   Contact.email.ilike(like)))
    if exclude_id is not None and is_row_id(exclude_id):
        query = query.where(Contact.id != exclude_id)
    query = query.order_by(func.lower(func.coalesce(Contact.name, Contact.push_name, Contact.phone)), Contact.id)
    with session_scope() as session:
        rows = session.execute(query.limit(SEARCH_LIMIT)).mappings().all()
    return [{"id": row["id"], "display_name": row["name"] or row["push_name"] or row["phone"], "phone": row["phone"],
             "instance": row["instance"]} for row in rows]


def _pair(session: Session, actor: Actor, keep_id: Any, other_id: Any, lock: bool) -> tuple[Contact, Contact]:
    if not (is_row_id(keep_id) and is_row_id(other_id)):
        raise NotFound("contact", key="error.contact_not_found")
    query = select(Contact).where(Contact.id.in_((keep_id, other_id)), Contact.workspace_id == actor.workspace_id) \
        .order_by(Contact.id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = {contact.id: contact for contact in session.scalars(query)}
    if keep_id not in found or other_id not in found:  # another workspace's id is not found, whatever else is wrong
        raise NotFound("contact", key="error.contact_not_found")
    if keep_id == other_id:
        raise InvalidInput("same contact", key="error.merge_same")
    return found[keep_id], found[other_id]


def _values(contact: Contact) -> dict[str, Any]:
    """The values a merge chooses between: ``name``, ``email``, ``company`` and ``custom_data.<key>``."""
    values: dict[str, Any] = {column: getattr(contact, column) for column in COLUMNS}
    values.update({f"custom_data.{key}": value for key, value in (contact.custom_data or {}).items()})
    return values


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _snapshot(session: Session, contact: Contact, conversation: Conversation | None) -> dict[str, Any]:
    return {"id": contact.id, "display_name": display_name(contact), "name": contact.name,
            "push_name": contact.push_name, "phone": contact.phone, "instance_id": contact.instance_id,
            "instance": session.scalar(select(Instance.name).where(Instance.id == contact.instance_id)),
            "email": contact.email, "company": contact.company, "custom_data": dict(contact.custom_data or {}),
            "tags": tag_names(session, contact.id), "conversation_id": conversation.id if conversation else None,
            "created_at": contact.created_at.isoformat() if contact.created_at else None}


def preview(actor: Actor, keep_id: int, other_id: int) -> dict[str, Any]:
    """Both contacts side by side, for choosing which values win.

    Returns:
        ``keep`` and ``other`` (snapshots: names, phone, number, e-mail, company, fields, tags), ``rows``: one per
        value either has — ``field`` (``name``, ``email``, ``company`` or ``custom_data.<key>``), ``keep``,
        ``other`` and ``default`` (the side that wins without a choice) — and ``live_runs`` (True when a live
        funnel run would refuse the merge now).

    Raises:
        PermissionDenied: an agent. NotFound: either contact is not of the workspace. InvalidInput: the same
        contact twice.
    """
    _managers_only(actor)
    with session_scope() as session:
        keep, other = _pair(session, actor, keep_id, other_id, lock=False)
        convs = _conversations(session, keep.id, other.id)
        mine, theirs = _values(keep), _values(other)
        fields = list(COLUMNS) + sorted({*mine, *theirs} - set(COLUMNS))
        rows = [{"field": field, "keep": mine.get(field), "other": theirs.get(field),
                 "default": "other" if _empty(mine.get(field)) and not _empty(theirs.get(field)) else "keep"}
                for field in fields if not (_empty(mine.get(field)) and _empty(theirs.get(field)))]
        return {"keep": _snapshot(session, keep, convs.get(keep.id)), "other": _snapshot(session, other,
                                                                                        convs.get(other.id)),
                "rows": rows, "live_runs": _has_live_run(session, keep.id, other.id)}


def _conversations(session: Session, *contact_ids: int, lock: bool = False) -> dict[int, Conversation]:
    query = select(Conversation).where(Conversation.contact_id.in_(contact_ids)).order_by(Conversation.id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return {conv.contact_id: conv for conv in session.scalars(query)}


def _lock_lanes(session: Session, *contacts: Contact) -> None:
    """Lock the inbound lanes of the contacts' numbers (module docstring), creating the rows of the contacts' lanes
    and of the numbers' streams of before lanes if no drain made them yet."""
    try:
        client = get_redis()
        counts = {c.instance_id: inbound_lanes(client, c.instance_id) for c in contacts}
    except redis.RedisError:
        counts = {c.instance_id: get_settings().inbound_lanes for c in contacts}  # no drain runs without Redis
    rows = {(c.instance_id, lane) for c in contacts
            for lane in (LEGACY_LANE, lane_of({"kind": "message", "phone": c.phone}, counts[c.instance_id]))}
    with session_scope() as own:  # committed first: then every row is locked in one order, as a merge beside does
        own.execute(pg_insert(DrainLane).values([{"instance_id": i, "lane": k} for i, k in sorted(rows)])
                    .on_conflict_do_nothing())
    session.execute(select(DrainLane.lane).where(DrainLane.instance_id.in_(counts))
                    .order_by(DrainLane.instance_id, DrainLane.lane).with_for_update(key_share=True)).all()


def _has_live_run(session: Session, *contact_ids: int) -> bool:
    return session.scalar(select(FunnelRun.id).where(FunnelRun.contact_id.in_(contact_ids),
                                                      FunnelRun.status.in_(runs.LIVE)).limit(1)) is not None


def _choose(keep: Contact, other: Contact, choices: Mapping[str, str]) -> dict[str, str]:
    """The winning side of every value either contact has (the defaults of ``preview`` where no choice)."""
    mine, theirs = _values(keep), _values(other)
    winners: dict[str, str] = {}
    for field in {*mine, *theirs}:
        choice = choices.get(field)
        if choice is None:
            choice = "other" if _empty(mine.get(field)) and not _empty(theirs.get(field)) else "keep"
        elif choice not in ("keep", "other"):
            raise InvalidInput("bad choice", key="error.merge_choice")
        winners[field] = choice
    return winners


def _apply_values(keep: Contact, other: Contact, winners: dict[str, str]) -> None:
    theirs = _values(other)
    for column in COLUMNS:
        if winners.get(column) == "other":
            setattr(keep, column, theirs[column])
    fields = dict(keep.custom_data or {})
    for field, side in winners.items():
        if not field.startswith("custom_data.") or side != "other":
            continue
        key = field.removeprefix("custom_data.")
        if _empty(theirs.get(field)):
            fields.pop(key, None)  # the other side had no value there: choosing it clears the field
        else:
            fields[key] = theirs[field]
    if len(fields) > MAX_CONTACT_FIELDS:
        raise InvalidInput("fields", key="error.field_count", max=MAX_CONTACT_FIELDS)
    keep.custom_data = fields
    keep.push_name = keep.push_name or other.push_name
    keep.jid = keep.jid or (other.jid if other.instance_id == keep.instance_id else None)
    keep.created_at = min(keep.created_at, other.created_at)
    keep.last_inbound_at = _latest(keep.last_inbound_at, other.last_inbound_at)


def _latest(*moments: Any) -> Any:
    present = [moment for moment in moments if moment is not None]
    return max(present) if present else None


def _earliest(*moments: Any) -> Any:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def _join_conversations(session: Session, kept: Conversation, gone: Conversation) -> dict[str, int]:
    """Move the gone conversation's rows to the kept one and recompute the kept one's summary fields."""
    moved = {
        "messages": session.execute(update(Message).where(Message.conversation_id == gone.id)
                                    .values(conversation_id=kept.id)).rowcount,
        "notifications": session.execute(update(Notification).where(Notification.conversation_id == gone.id)
                                         .values(conversation_id=kept.id)).rowcount,
    }
    session.execute(update(Note).where(Note.conversation_id == gone.id).values(conversation_id=kept.id))
    session.execute(update(FunnelRun).where(FunnelRun.conversation_id == gone.id).values(conversation_id=kept.id))
    session.execute(update(ActivityEvent).where(ActivityEvent.subject_type == "conversation",
                                                ActivityEvent.subject_id == gone.id).values(subject_id=kept.id))
    if gone.last_message_at is not None and (kept.last_message_at is None
                                             or gone.last_message_at > kept.last_message_at):
        kept.last_message_at, kept.last_message_preview = gone.last_message_at, gone.last_message_preview
        kept.last_message_direction, kept.last_message_type = gone.last_message_direction, gone.last_message_type
    kept.last_inbound_at = _latest(kept.last_inbound_at, gone.last_inbound_at)
    kept.first_reply_at = _earliest(kept.first_reply_at, gone.first_reply_at)
    kept.unread_count += gone.unread_count
    if kept.status == "closed" and gone.status != "closed":
        kept.status, kept.closed_at = gone.status, None
    if kept.agent_id is None and kept.team_id is None:
        kept.agent_id, kept.team_id, kept.assigned_at = gone.agent_id, gone.team_id, gone.assigned_at
    kept.created_at = min(kept.created_at, gone.created_at)
    return moved


def merge(actor: Actor, keep_id: int, other_id: int, choices: Mapping[str, str] | None = None) -> int:
    """Merge ``other_id`` into ``keep_id`` (module docstring); returns the kept contact's id.

    Args:
        choices: field (``name``, ``email``, ``company``, ``custom_data.<key>``) -> ``"keep"`` or ``"other"``.

    Raises:
        PermissionDenied: an agent.
        NotFound: either contact is not of the actor's workspace.
        InvalidInput: the same contact twice, a choice other than keep/other, or more custom fields than a contact
            may hold once merged.
        Conflict: either contact has a live funnel run (stop it first).
    """
    _managers_only(actor)
    with session_scope() as session:
        keep, other = _pair(session, actor, keep_id, other_id, lock=False)
        # Locks in the order the other writers take them (module docstring): the numbers, then the conversations,
        # then the contacts, each in id order. Reading again under the locks: a concurrent merge may have won.
        _lock_lanes(session, keep, other)
        convs = _conversations(session, keep.id, other.id, lock=True)
        keep, other = _pair(session, actor, keep_id, other_id, lock=True)
        if _has_live_run(session, keep.id, other.id):
            raise Conflict("live run", key="error.merge_live_run")
        winners = _choose(keep, other, choices or {})
        kept_conv, gone_conv = convs.get(keep.id), convs.get(other.id)
        snapshot = _snapshot(session, other, gone_conv)
        _apply_values(keep, other, winners)
        moved = {"messages": 0, "notifications": 0}
        if gone_conv is not None and kept_conv is not None:
            moved = _join_conversations(session, kept_conv, gone_conv)
            session.delete(gone_conv)
        elif gone_conv is not None:
            # the kept contact had no conversation: the other's becomes its own, answered from its number
            gone_conv.contact_id, gone_conv.instance_id = keep.id, keep.instance_id
        session.execute(pg_insert(ContactTag).from_select(
            ["contact_id", "tag_id"],
            select(literal(keep.id, BigInteger), ContactTag.tag_id)
            .where(ContactTag.contact_id == other.id)).on_conflict_do_nothing())
        moved["notes"] = session.execute(update(Note).where(Note.contact_id == other.id)
                                         .values(contact_id=keep.id)).rowcount
        moved["runs"] = session.execute(update(FunnelRun).where(FunnelRun.contact_id == other.id)
                                        .values(contact_id=keep.id)).rowcount
        moved["activity"] = session.execute(update(ActivityEvent).where(
            ActivityEvent.subject_type == "contact", ActivityEvent.subject_id == other.id)
            .values(subject_id=keep.id)).rowcount
        session.flush()  # the conversation moves (or goes) before the contact it points to is deleted
        session.execute(delete(Contact).where(Contact.id == other.id))
        session.add(ActivityEvent(
            workspace_id=actor.workspace_id, actor_user_id=actor.user_id, kind="merged", subject_type="contact",
            subject_id=keep.id, data={"source": "merge", "other": snapshot, "moved": moved,
                                      "choices": {field: side for field, side in sorted(winners.items())
                                                  if side == "other"}}))
        kept_id = keep.id
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])
    return kept_id
