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
from typing import Any, NamedTuple

from sqlalchemy import String, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from connector.contracts import InboundMessage, Receipt, SendAck, StateChange, phone_digits
from engine.worker import dispatch
from workbench.services.conversation_ref import ConversationRef
from workbench.services.outbox import Ack, mark_acked
from workbench.services.runs import LIVE, Effects
from workbench.store.db import HeldRows, HotStatement, hold_rows
from workbench.store.models import LEGACY_LANE, Instance, Message
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


class _Number(NamedTuple):
    """What storing needs of the number the events came to."""

    id: int
    workspace_id: int


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
    instance: Instance | _Number | None
    if epoch is None:
        instance = session.get(Instance, instance_id)
    else:
        found = _LOCK_LANE.first(session, {"instance_id": instance_id, "lane": lane})
        if found is None or found[2] != epoch:
            if found is not None or session.get(Instance, instance_id) is not None:
                raise LostDrain(instance_id)
            instance = None
        else:
            instance = _Number(found[0], found[1])
    if instance is None:
        log.warning("events for unknown instance %s dropped", instance_id)
        return applied
    statuses = _Statuses(instance_id)
    applied.workspaces.add(instance.workspace_id)
    # Messages are stored in runs of distinct contacts, one statement per run, and the bot's messages and funnel
    # steps of the whole batch are written together, one statement of each kind, before the batch stores another
    # message of the same contact (which reads what they change) and at the end.
    with hold_rows(session) as held:
        run: list[InboundMessage] = []
        in_run: set[tuple[str, str]] = set()  # the phones and WhatsApp ids of ``run``
        for event in events:
            if isinstance(event, InboundMessage):
                keys = {("phone", phone_digits(event.phone)), ("id", event.wa_id)}
                if not in_run.isdisjoint(keys):
                    _store_messages(session, instance, run, applied, statuses, held)
                    in_run.clear()
                run.append(event)
                in_run |= keys
            elif isinstance(event, SendAck):
                statuses.acks.append(Ack(event.outbox_id, event.ok, event.wa_id,
                                         clean_text(event.error)[0] if event.error is not None else None,
                                         _ts(event.timestamp_ms)))
            elif isinstance(event, Receipt):
                statuses.receipts.append(event)
            elif isinstance(event, StateChange):
                _store_messages(session, instance, run, applied, statuses, held)
                in_run.clear()
                _apply_state(session.get(Instance, instance_id), event)
        _store_messages(session, instance, run, applied, statuses, held)
    statuses.apply(session)
    return applied


class _Statuses:
    """A batch's send acks and receipts, stored together: one statement for the acks and one per receipt status
    instead of one per event (a reply brings an ack and a "delivered" receipt, so this halves a busy lane's
    statements). Acks go first, then receipts in rank order, so a receipt always finds the WhatsApp id its ack
    stored and a late "delivered" never undoes "read". Only a message that names another one (ours, sent from
    the phone; an edit, reaction or quote) could see the difference, so ``apply_events`` stores what it has
    gathered before such a message."""

    def __init__(self, instance_id: int) -> None:
        self.instance_id = instance_id
        self.acks: list[Ack] = []
        self.receipts: list[Receipt] = []

    def apply(self, session: Session) -> None:
        mark_acked(session, self.instance_id, self.acks)
        by_status: dict[str, dict[str, datetime]] = {}
        for receipt in self.receipts:
            at = _ts(receipt.timestamp_ms)
            for wa_id in receipt.wa_ids:  # a receipt that names no message adds nothing (no empty statement)
                by_status.setdefault(receipt.status, {}).setdefault(wa_id, at)  # the first receipt of a status dates it
        for status in sorted(by_status, key=STATUS_RANK.__getitem__):
            ids = by_status[status]
            _RECEIPTS.execute(session, {
                "instance_id": self.instance_id, "status": status,
                "receipts": [{"wa_id": wa_id, "at": at.isoformat()} for wa_id, at in ids.items()],
                "lower": [s for s, r in STATUS_RANK.items() if r < STATUS_RANK[status]]})
        self.acks.clear()
        self.receipts.clear()


# One statement stores a run of messages of distinct contacts (one message under a light flow): per message the
# contact upsert, the conversation upsert and the message insert as data-modifying CTEs, guarded by "not stored yet"
# (one round trip for a whole run instead of four per message). A message already stored (WhatsApp redelivers, our
# stream may deliver twice) inserts and counts nothing, and returns no row; each row names its message by ``k``, its
# place in the run. ``never_wrote``: the contact row as it was before this statement (subqueries see the
# statement's snapshot) had no inbound message yet, so this is the contact's first even if we wrote to them first
# from the phone. ``live_run``: whether the bot has a live run for the contact, so the runtime looks for it only
# when there is one (the session is flushed first, so this batch's runs count). The look for a stored copy and the
# look for a live run are each kept a per-message index probe by OFFSET 0, whatever plan the statement was prepared
# with: as a plain EXISTS, a plan for the 50 rows PostgreSQL assumes a batch holds hashed every live run of the
# installation (thousands, while a welcome funnel waits for answers) to store one message.
_STORE = HotStatement(text(f"""
WITH fresh AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(:rows) AS m(
        k integer, workspace_id bigint, instance_id bigint, phone text, jid text, push_name text,
        inbound_at timestamptz, at timestamptz, preview text, direction text, type text, unread integer,
        wa_id text, text text, data jsonb, quoted_id text, status text)
    WHERE NOT EXISTS (SELECT 1 FROM messages WHERE instance_id = m.instance_id AND wa_id = m.wa_id OFFSET 0)
), contact AS (
    INSERT INTO contacts (workspace_id, instance_id, phone, jid, push_name, last_inbound_at)
    SELECT workspace_id, instance_id, phone, jid, push_name, inbound_at FROM fresh
    ON CONFLICT (instance_id, phone) DO UPDATE SET
        jid = excluded.jid,
        push_name = coalesce(excluded.push_name, contacts.push_name),
        last_inbound_at = coalesce(excluded.last_inbound_at, contacts.last_inbound_at)
    RETURNING id, phone, xmax = 0 AS inserted,
        (SELECT before.last_inbound_at IS NULL FROM contacts AS before WHERE before.id = contacts.id) AS never_wrote
), conversation AS (
    INSERT INTO conversations (workspace_id, instance_id, contact_id, status, last_message_at, last_message_preview,
                               last_message_direction, last_message_type, last_inbound_at, unread_count)
    SELECT fresh.workspace_id, fresh.instance_id, contact.id, 'open', fresh.at, fresh.preview, fresh.direction,
           fresh.type, fresh.inbound_at, fresh.unread
    FROM fresh JOIN contact ON contact.phone = fresh.phone
    ON CONFLICT (contact_id) DO UPDATE SET
        status = CASE WHEN excluded.unread_count > 0 AND conversations.status = 'closed' THEN 'open'
                      ELSE conversations.status END,
        last_message_at = greatest(conversations.last_message_at, excluded.last_message_at),
        last_message_preview = excluded.last_message_preview,
        last_message_direction = excluded.last_message_direction,
        last_message_type = excluded.last_message_type,
        last_inbound_at = coalesce(excluded.last_inbound_at, conversations.last_inbound_at),
        unread_count = conversations.unread_count + excluded.unread_count,
        closed_at = CASE WHEN excluded.unread_count > 0 THEN NULL ELSE conversations.closed_at END
    RETURNING id, contact_id, bot_paused
), message AS (
    INSERT INTO messages (workspace_id, instance_id, conversation_id, wa_id, direction, type, text, data,
                          quoted_wa_id, status, wa_timestamp)
    SELECT fresh.workspace_id, fresh.instance_id, conversation.id, fresh.wa_id, fresh.direction, fresh.type,
           fresh.text, fresh.data, fresh.quoted_id, fresh.status, fresh.at
    FROM fresh JOIN contact ON contact.phone = fresh.phone JOIN conversation ON conversation.contact_id = contact.id
    ON CONFLICT (instance_id, wa_id) DO NOTHING
    RETURNING id, wa_id
)
SELECT fresh.k, contact.id, contact.inserted, contact.never_wrote, conversation.id, conversation.bot_paused,
       message.id,
       EXISTS (SELECT 1 FROM funnel_runs WHERE conversation_id = conversation.id
               AND status IN ({", ".join(f"'{s}'" for s in LIVE)}) OFFSET 0) AS live_run
FROM fresh JOIN contact ON contact.phone = fresh.phone JOIN conversation ON conversation.contact_id = contact.id
LEFT JOIN message ON message.wa_id = fresh.wa_id
""").bindparams(bindparam("rows", type_=JSONB)))


# The lane's fencing row, locked for this transaction, with what storing needs of the number. Plain SQL on the
# connection: it runs once per transaction of every lane, and an ORM select costs more in Python than the rest of a
# one-message transaction.
_LOCK_LANE = HotStatement(text("""
SELECT instances.id, instances.workspace_id, drain_lanes.epoch
FROM instances JOIN drain_lanes ON drain_lanes.instance_id = instances.id
WHERE instances.id = :instance_id AND drain_lanes.lane = :lane
FOR NO KEY UPDATE OF drain_lanes
"""))


class _Prepared(NamedTuple):
    """One message made ready for ``_STORE``: its row, and what the bot needs of it afterwards."""

    row: dict[str, Any]
    phone: str
    text: str | None
    push_name: str | None


def _prepare(instance: Instance | _Number, event: InboundMessage, k: int) -> _Prepared:
    when = _ts(event.timestamp_ms).isoformat()
    phone = phone_digits(event.phone)
    inbound = not event.from_me
    counts = inbound and event.type not in SIDE_EFFECT_TYPES
    text_, flags = clean_text(event.text) if event.text is not None else (None, {})
    push_name = clean_text(event.push_name, limit=PUSH_NAME_CHARS)[0] if event.push_name and inbound else None
    data: dict[str, Any] = {**flags}
    if event.media:
        data["media"] = event.media.model_dump(exclude_none=True)
    if event.target_id:
        data["target_id"] = event.target_id
    if event.raw:
        data["raw"] = event.raw
    row = {
        "k": k, "workspace_id": instance.workspace_id, "instance_id": instance.id, "phone": phone,
        "jid": event.chat_jid, "push_name": push_name, "inbound_at": when if inbound else None, "at": when,
        "preview": preview(text_), "direction": "in" if inbound else "out", "type": event.type,
        "unread": 1 if counts else 0, "wa_id": event.wa_id, "text": text_, "data": clean_json(data),
        "quoted_id": event.quoted_id, "status": "received" if inbound else "sent",
    }
    return _Prepared(row, phone, text_, push_name)


def _store_messages(session: Session, instance: Instance | _Number, run: list[InboundMessage], applied: Applied,
                    statuses: _Statuses, held: HeldRows) -> None:
    """Store a run of messages of distinct contacts in one statement, then run the bot on each, in order; empties
    ``run``."""
    if not run:
        return
    if any(event.from_me or event.target_id or event.quoted_id for event in run):
        statuses.apply(session)  # one may name one of our messages: their WhatsApp ids must be stored first
    prepared = [_prepare(instance, event, k) for k, event in enumerate(run)]
    for message in prepared:
        held.write_for(session, message.phone)  # what the bot wrote to the contact before this message
    session.flush()  # runs this batch started must be rows for the statement's live_run
    found = {row[0]: row[1:] for row in _STORE.execute(session, {"rows": [message.row for message in prepared]})}
    for k, (event, message) in enumerate(zip(run, prepared, strict=True)):
        _store_message(session, instance, event, applied, message, found.get(k))
    run.clear()


def _store_message(session: Session, instance: Instance | _Number, event: InboundMessage, applied: Applied,
                   message: _Prepared, row: tuple | None) -> None:
    """What follows storing one message (``row``, None for a copy already stored): count it, apply what it changes
    in another message, run the bot on it."""
    if row is None:
        applied.duplicates += 1
        return
    contact_id, new_contact, never_wrote, conversation_id, paused, message_id, live_run = row
    if message_id is None:
        # Stored by another transaction after this statement's snapshot: the upserts above counted it a second
        # time. Nothing of this batch may commit, and the bot must not answer twice.
        raise AlreadyStored(instance.id)
    applied.stored += 1
    if event.type in SIDE_EFFECT_TYPES and event.target_id:
        _apply_side_effect(session, instance.id, event, message.text)
    if message.row["unread"]:
        # What the statement learnt saves the runtime reading it again: whether the bot is paused, whether the
        # contact row is brand new (no tags, fields or runs) and whether a run is live. "First message ever" is
        # wider: a new row, or a contact we had only written to.
        conversation = ConversationRef(
            id=conversation_id, workspace_id=instance.workspace_id, instance_id=instance.id, contact_id=contact_id,
            phone=message.phone, jid=event.chat_jid, push_name=message.push_name, known_unpaused=not paused,
            contact_created=new_contact, first_message=new_contact or bool(never_wrote), no_live_run=not live_run)
        applied.effects.extend(dispatch.on_inbound_message(session, conversation, event, message.text))


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


# Forward only: a late "delivered" never undoes "read" (``lower`` holds the statuses below the new one).
# Each receipt's message is looked up alone (the lateral subquery, kept apart by OFFSET 0, is one probe of the
# (number, WhatsApp id) index), then updated by primary key, whatever the statistics say: as a plain join, a table
# that grew faster than autovacuum analyzes it got a plan that read every message of the number once per batch (see
# ``outbox._ACKS``). The receipts come as a JSON document, not as arrays: PostgreSQL sizes an array it is given
# (one receipt) but not a parameter (a guess of a hundred), so with arrays a run of one receipt, as a paced flow
# brings, always looked cheaper planned for its own values, and PostgreSQL planned it on every run (0.2 ms); a
# document is sized alike both ways, and the prepared statement keeps its plan.
_RECEIPTS = HotStatement(text("""
WITH found AS MATERIALIZED (
    SELECT message.id, receipts.at
    FROM jsonb_to_recordset(:receipts) AS receipts(wa_id text, at timestamptz)
    CROSS JOIN LATERAL (
        SELECT id FROM messages
        WHERE instance_id = :instance_id AND wa_id = receipts.wa_id AND direction = 'out' AND status = ANY(:lower)
        OFFSET 0
    ) AS message
)
UPDATE messages SET status = :status, status_at = found.at
FROM found
WHERE messages.id = ANY(ARRAY(SELECT id FROM found)) AND messages.id = found.id AND messages.status = ANY(:lower)
""").bindparams(bindparam("lower", type_=ARRAY(String))))


def _apply_state(instance: Instance, event: StateChange) -> None:
    instance.state = clean_text(event.state, limit=32)[0]
    instance.state_reason = clean_text(event.reason)[0] if event.reason is not None else None
    instance.state_at = _ts(event.timestamp_ms)
    if event.phone:
        instance.phone = phone_digits(event.phone)[:32] or instance.phone
    if event.push_name:
        instance.push_name = clean_text(event.push_name, limit=120)[0]
