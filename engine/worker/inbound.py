"""Storing what the connector reports: messages, send acks, receipts and connection states.

``apply_events`` runs inside one transaction for a batch of one inbound lane's events of a number, in stream order.
Storing is idempotent: WhatsApp redelivers after reconnects and our own stream may deliver an entry
twice after a worker crash, so the (instance, WhatsApp id) pair decides whether a message is new, and only a
message actually inserted updates its conversation and reaches the bot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from connector.contracts import InboundMessage, Receipt, SendAck, StateChange, phone_digits
from engine.worker import dispatch
from workbench.services.conversation_ref import ConversationRef
from workbench.services.outbox import mark_acked
from workbench.services.runs import Effects
from workbench.store.models import LEGACY_LANE, Contact, Conversation, DrainLane, Instance, Message
from workbench.store.text import clean_json, clean_text, preview

log = logging.getLogger(__name__)

STATUS_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}
PUSH_NAME_CHARS = 255  # the contacts column; a longer WhatsApp profile name is cut
# Types that change another message rather than say something new: no unread badge, no bot reply.
SIDE_EFFECT_TYPES = ("reaction", "edit", "revoke")


@dataclass
class Applied:
    """What a batch changed: commands to publish after commit and workspaces whose views are stale."""

    effects: Effects = field(default_factory=Effects)  # outbound commands, timers, read receipts
    workspaces: set[int] = field(default_factory=set)
    stored: int = 0
    duplicates: int = 0


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class LostDrain(Exception):
    """Another drain took the lane over (this one's lock expired): this transaction must not commit."""


class AlreadyStored(Exception):
    """A message of the batch was stored by another transaction after this one looked: roll back, apply again."""


def apply_events(session: Session, instance_id: int, events: list[Any], epoch: int | None = None,
                 lane: int = LEGACY_LANE) -> Applied:
    """Apply one lane's events of a number, in order, inside the caller's transaction.

    Args:
        session: the caller's session; its transaction holds the whole batch.
        instance_id: the number the events came to.
        events: decoded ``wb:in`` events, in stream order.
        epoch: the drain's fencing token (the ``drain_lanes.epoch`` it set when it took the lane). The lane's row
            is locked first and its epoch compared, so the transactions of one lane never overlap and a drain that
            lost the lane cannot commit after the next one took it; other lanes of the number commit in parallel.
            None skips the check.
        lane: the lane the events came from (``LEGACY_LANE`` for the number's stream of before lanes).

    Returns:
        What to publish after commit, and the counts.

    Raises:
        LostDrain: the epoch moved on; the caller rolls back and leaves the lane to its new drain.
        AlreadyStored: a message was inserted by someone else meanwhile (only possible without ``epoch``, or for a
            writer outside the drains); the caller rolls back and applies the batch again.
    """
    applied = Applied()
    if epoch is None:
        instance = session.get(Instance, instance_id)
    else:
        found = session.execute(
            select(Instance, DrainLane.epoch).join(DrainLane, DrainLane.instance_id == Instance.id)
            .where(Instance.id == instance_id, DrainLane.lane == lane)
            .with_for_update(of=DrainLane, key_share=True)).first()
        if found is None or found[1] != epoch:
            if found is not None or session.get(Instance, instance_id) is not None:
                raise LostDrain(instance_id)
            instance = None
        else:
            instance = found[0]
    messages = [e for e in events if isinstance(e, InboundMessage)]
    known = set()
    if messages:
        known = set(session.scalars(select(Message.wa_id).where(
            Message.instance_id == instance_id, Message.wa_id.in_([m.wa_id for m in messages]))))
    for event in events:
        if isinstance(event, InboundMessage):
            if event.wa_id in known:
                applied.duplicates += 1
                continue
            known.add(event.wa_id)
            _store_message(session, instance, event, applied)
            applied.stored += 1
        elif isinstance(event, SendAck):
            mark_acked(session, instance_id, event.outbox_id, event.ok, event.wa_id,
                       clean_text(event.error)[0] if event.error is not None else None, _ts(event.timestamp_ms))
        elif isinstance(event, Receipt):
            _apply_receipt(session, instance_id, event)
        elif isinstance(event, StateChange):
            _apply_state(instance, event)
        applied.workspaces.add(instance.workspace_id)
    return applied


def _contact_upsert():
    stmt = pg_insert(Contact).values(
        workspace_id=bindparam("workspace_id"), instance_id=bindparam("instance_id"), phone=bindparam("phone"),
        jid=bindparam("jid"), push_name=bindparam("push_name"), last_inbound_at=bindparam("inbound_at"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[Contact.instance_id, Contact.phone],
        set_={
            "push_name": func.coalesce(stmt.excluded.push_name, Contact.push_name),
            "jid": stmt.excluded.jid,
            "last_inbound_at": func.coalesce(stmt.excluded.last_inbound_at, Contact.last_inbound_at),
        },
    ).returning(
        Contact.id, literal_column("xmax = 0").label("inserted"),
        # The row as it was before this statement (subqueries in RETURNING see the statement's snapshot): no
        # inbound message yet means this is the contact's first, even if we wrote to them first from the phone.
        literal_column("(SELECT before.last_inbound_at IS NULL FROM contacts AS before"
                       " WHERE before.id = contacts.id)").label("never_wrote"),
    )


def _conversation_upsert():
    stmt = pg_insert(Conversation).values(
        workspace_id=bindparam("workspace_id"), instance_id=bindparam("instance_id"),
        contact_id=bindparam("contact_id"), status="open", last_message_at=bindparam("at"),
        last_message_preview=bindparam("preview"), last_message_direction=bindparam("direction"),
        last_message_type=bindparam("type"), last_inbound_at=bindparam("inbound_at"),
        unread_count=bindparam("unread"),
    )
    counts = stmt.excluded.unread_count > 0  # a new message from the contact reopens a closed conversation
    return stmt.on_conflict_do_update(index_elements=[Conversation.contact_id], set_={
        "last_message_at": func.greatest(Conversation.last_message_at, stmt.excluded.last_message_at),
        "last_message_preview": stmt.excluded.last_message_preview,
        "last_message_direction": stmt.excluded.last_message_direction,
        "last_message_type": stmt.excluded.last_message_type,
        "last_inbound_at": func.coalesce(stmt.excluded.last_inbound_at, Conversation.last_inbound_at),
        "unread_count": Conversation.unread_count + stmt.excluded.unread_count,
        "status": case((and_(counts, Conversation.status == "closed"), "open"), else_=Conversation.status),
        "closed_at": case((counts, None), else_=Conversation.closed_at),
    }).returning(Conversation.id, Conversation.bot_paused)


def _message_insert():
    return pg_insert(Message).values(
        workspace_id=bindparam("workspace_id"), instance_id=bindparam("instance_id"),
        conversation_id=bindparam("conversation_id"), wa_id=bindparam("wa_id"), direction=bindparam("direction"),
        type=bindparam("type"), text=bindparam("text"), data=bindparam("data", type_=JSONB),
        quoted_wa_id=bindparam("quoted_id"), status=bindparam("status"), wa_timestamp=bindparam("at"),
    ).on_conflict_do_nothing(index_elements=[Message.instance_id, Message.wa_id]).returning(Message.id)


# Built once: these run for every message, and building an upsert costs more than executing it.
CONTACT_UPSERT = _contact_upsert()
CONVERSATION_UPSERT = _conversation_upsert()
MESSAGE_INSERT = _message_insert()


def _store_message(session: Session, instance: Instance, event: InboundMessage, applied: Applied) -> None:
    conn = session.connection()
    when = _ts(event.timestamp_ms)
    phone = phone_digits(event.phone)
    inbound = not event.from_me
    side_effect = event.type in SIDE_EFFECT_TYPES
    counts = inbound and not side_effect
    text, flags = clean_text(event.text) if event.text is not None else (None, {})
    push_name = clean_text(event.push_name, limit=PUSH_NAME_CHARS)[0] if event.push_name and inbound else None
    scope = {"workspace_id": instance.workspace_id, "instance_id": instance.id}
    contact_id, new_contact, never_wrote = conn.execute(CONTACT_UPSERT, {
        **scope, "phone": phone, "jid": event.chat_jid, "push_name": push_name,
        "inbound_at": when if inbound else None,
    }).one()
    conversation_id, paused = conn.execute(CONVERSATION_UPSERT, {
        **scope, "contact_id": contact_id, "at": when, "preview": preview(text),
        "direction": "in" if inbound else "out", "type": event.type, "inbound_at": when if inbound else None,
        "unread": 1 if counts else 0,
    }).one()

    data: dict[str, Any] = {**flags}
    if event.media:
        data["media"] = event.media.model_dump(exclude_none=True)
    if event.target_id:
        data["target_id"] = event.target_id
    if event.raw:
        data["raw"] = event.raw
    inserted = conn.execute(MESSAGE_INSERT, {
        **scope, "conversation_id": conversation_id, "wa_id": event.wa_id, "direction": "in" if inbound else "out",
        "type": event.type, "text": text, "data": clean_json(data), "quoted_id": event.quoted_id,
        "status": "received" if inbound else "sent", "at": when,
    }).first()
    if inserted is None:
        # Stored by another transaction after apply_events looked: the upserts above counted it a second time.
        # Nothing of this batch may commit, and the bot must not answer twice.
        raise AlreadyStored(instance.id)
    if side_effect and event.target_id:
        _apply_side_effect(session, instance.id, event, text)
    if counts:
        # What the statements above learnt saves the runtime reading it again: whether the bot is paused,
        # and whether the contact row is brand new (no tags, fields or runs). "First message ever" is wider:
        # a new row, or a contact we had only written to.
        conversation = ConversationRef(
            id=conversation_id, workspace_id=instance.workspace_id, instance_id=instance.id, contact_id=contact_id,
            phone=phone, jid=event.chat_jid, push_name=push_name, known_unpaused=not paused,
            contact_created=new_contact, first_message=new_contact or bool(never_wrote))
        applied.effects.extend(dispatch.on_inbound_message(session, conversation, event, text))


def _apply_side_effect(session: Session, instance_id: int, event: InboundMessage, text: str | None) -> None:
    """Mark the message an edit or revoke points at, so the chat shows it edited or deleted."""
    target = select(Message).where(Message.instance_id == instance_id, Message.wa_id == event.target_id)
    message = session.scalars(target).first()
    if message is None:
        return
    if event.type == "edit":
        message.data = {**message.data, "edited_text": text, "edited_at": event.timestamp_ms}
    elif event.type == "revoke":
        message.data = {**message.data, "revoked": True}
    elif event.type == "reaction":
        message.data = {**message.data, "reaction": text or None}


_RECEIPT = update(Message).where(
    Message.instance_id == bindparam("b_instance_id"), Message.wa_id.in_(bindparam("wa_ids", expanding=True)),
    Message.direction == "out", Message.status.in_(bindparam("lower", expanding=True)),
).values(status=bindparam("b_status"), status_at=bindparam("at"))


def _apply_receipt(session: Session, instance_id: int, event: Receipt) -> None:
    """Move our messages forward to delivered/read; a late 'delivered' never undoes 'read'."""
    rank = STATUS_RANK[event.status]
    session.connection().execute(_RECEIPT, {
        "b_instance_id": instance_id, "wa_ids": event.wa_ids, "b_status": event.status,
        "at": _ts(event.timestamp_ms),
        "lower": [s for s, r in STATUS_RANK.items() if r < rank],
    })


def _apply_state(instance: Instance, event: StateChange) -> None:
    instance.state = clean_text(event.state, limit=32)[0]
    instance.state_reason = clean_text(event.reason)[0] if event.reason is not None else None
    instance.state_at = _ts(event.timestamp_ms)
    if event.phone:
        instance.phone = phone_digits(event.phone)[:32] or instance.phone
    if event.push_name:
        instance.push_name = clean_text(event.push_name, limit=120)[0]
