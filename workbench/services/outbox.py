"""Outbound messages: a message row and its outbox command written in one transaction, published after commit.

The outbox row is the durable promise to send; the ``wb:out:{i}`` stream entry is only a wake-up for the
connector. If Redis loses the entry, ``republish_pending`` puts it back; if an entry is delivered twice,
the connector's claim (``wb:sent:{i}``) makes sure WhatsApp sees it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, DateTime, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from connector.contracts import OUT_STREAM, SENT_HASH, STATUS_HASH, MediaRef, OutboundCommand, encode
from workbench.base.clock import now
from workbench.services.conversation_ref import ConversationRef
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.models import Message, Outbox
from workbench.store.text import clean_text, preview

# The message, its outbox row and the conversation's last-message fields in one statement (one round trip per
# message instead of three): data-modifying CTEs all run, in one snapshot, whether or not the outer statement
# reads them. The first human reply is what "time to first response" measures; bot messages do not count.
_QUEUE = text("""
WITH new_message AS (
    INSERT INTO messages (workspace_id, instance_id, conversation_id, direction, type, text, data, media_id, status,
                          sent_by_user_id, sent_by_funnel_id, created_at, status_at)
    VALUES (:workspace_id, :instance_id, :conversation_id, 'out', :type, :text, :data, :media_id, 'pending',
            :user_id, :funnel_id, :at, :at)
    RETURNING id
), touched AS (
    UPDATE conversations
    SET last_message_at = :at, last_message_preview = :preview, last_message_direction = 'out',
        last_message_type = :type,
        first_reply_at = CASE WHEN :by_human THEN coalesce(first_reply_at, :at) ELSE first_reply_at END
    WHERE id = :conversation_id
)
INSERT INTO outbox (workspace_id, instance_id, message_id, command, publish_count, published_at)
SELECT :workspace_id, :instance_id, id, :command, 1, :at FROM new_message
RETURNING id, message_id
""").bindparams(bindparam("data", type_=JSONB), bindparam("command", type_=JSONB),
                bindparam("at", type_=DateTime(timezone=True)), bindparam("by_human", type_=Boolean))


def queue_message(
    session: Session,
    conversation: ConversationRef,
    *,
    text: str | None,
    type: str = "text",
    media: MediaRef | None = None,
    media_id: int | None = None,
    user_id: int | None = None,
    funnel_id: int | None = None,
    data: dict[str, Any] | None = None,
    poll: tuple[str, list[str]] | None = None,
) -> tuple[int, OutboundCommand]:
    """Write an outbound message and its outbox command; publish the returned command after commit.

    ``poll`` = (question, options) makes the command a single-choice poll; ``text`` is then what the inbox shows
    and what goes out where a poll cannot (the question with numbered options).
    Returns the message id and the command.
    """
    conn = session.connection()
    body, flags = clean_text(text) if text is not None else (None, {})
    when = now()
    scope = {"workspace_id": conversation.workspace_id, "instance_id": conversation.instance_id}
    command = OutboundCommand(
        outbox_id=0, instance_id=conversation.instance_id, to_phone=conversation.phone, to_jid=conversation.jid,
        type=type, text=poll[0] if poll else body, media=media,
        **({"poll_options": list(poll[1]), "fallback_text": body} if poll else {}),
    )
    outbox_id, message_id = conn.execute(_QUEUE, {
        **scope, "conversation_id": conversation.id, "type": type, "text": body,
        "data": {**(data or {}), **flags, **({"media": media.model_dump()} if media else {})},
        "media_id": media_id, "user_id": user_id, "funnel_id": funnel_id, "at": when,
        "command": command.model_dump(exclude={"outbox_id"}, exclude_none=True),
        "preview": preview(body), "by_human": user_id is not None,
    }).one()
    return message_id, command.model_copy(update={"outbox_id": outbox_id})


def publish(commands: Iterable[OutboundCommand], redis_client=None) -> None:
    """Append commands to their numbers' outbound streams (call only after the commit)."""
    commands = list(commands)
    if not commands:
        return
    pipe = (redis_client or get_redis()).pipeline(transaction=False)
    for command in commands:
        pipe.xadd(OUT_STREAM.format(command.instance_id), encode(command))
    pipe.execute()


def _command_of(row: Outbox) -> OutboundCommand:
    return OutboundCommand.model_validate({**row.command, "outbox_id": row.id, "instance_id": row.instance_id})


def republish_pending(session: Session, redis_client=None, older_than_s: int | None = None) -> int:
    """Re-publish unsent outbox rows of connected numbers (after a Redis loss or a lost entry).

    Rows of numbers that are not connected wait in their stream; each re-publish doubles the wait before
    the next one, so a long outage does not flood the stream. Returns how many were re-published.
    """
    client = redis_client or get_redis()
    base = older_than_s if older_than_s is not None else get_settings().outbox_republish_after_s
    rows = session.scalars(
        select(Outbox).where(Outbox.status == "pending", Outbox.created_at < now() - timedelta(seconds=base))
        .order_by(Outbox.id).limit(1000)
    ).all()
    due: list[Outbox] = []
    connected: dict[int, bool] = {}
    for row in rows:
        if row.instance_id not in connected:
            state = client.hget(STATUS_HASH.format(row.instance_id), "state")
            connected[row.instance_id] = state == b"connected"
        wait = timedelta(seconds=base * 2 ** min(row.publish_count, 8))
        if connected[row.instance_id] and (row.published_at is None or row.published_at < now() - wait):
            due.append(row)
    publish([_command_of(row) for row in due], client)
    for row in due:
        row.publish_count += 1
        row.published_at = now()
    return len(due)


_ACK_OUTBOX = update(Outbox).where(
    Outbox.id == bindparam("b_outbox_id"), Outbox.instance_id == bindparam("b_instance_id"),
    Outbox.status == "pending",
).values(status=bindparam("b_status"), error=bindparam("b_error"), done_at=bindparam("at")).returning(Outbox.message_id)
_ACK_MESSAGE = update(Message).where(Message.id == bindparam("b_message_id")).values(
    status=bindparam("b_status"), wa_id=func.coalesce(bindparam("b_wa_id"), Message.wa_id),
    error=bindparam("b_error"), status_at=bindparam("at"),
)


def mark_acked(session: Session, instance_id: int, outbox_id: int, ok: bool, wa_id: str | None,
               error: str | None, at: datetime) -> None:
    """Record the connector's answer: the outbox row is done and its message sent (with its WhatsApp id) or failed."""
    conn = session.connection()
    status = "sent" if ok else "failed"
    message_id = conn.execute(_ACK_OUTBOX, {"b_outbox_id": outbox_id, "b_instance_id": instance_id,
                                            "b_status": status, "b_error": error, "at": at}).scalar_one_or_none()
    if message_id is None:
        return  # an ack we already applied (the stream may deliver twice)
    conn.execute(_ACK_MESSAGE, {"b_message_id": message_id, "b_status": status, "b_wa_id": wa_id if ok else None,
                                "b_error": error, "at": at})


CLAIMS_KEPT = timedelta(days=1)
_PRUNED_UNTIL = "wb:sent-pruned-until"


def prune_claims(session: Session, redis_client=None) -> int:
    """Forget the connector's send claims of commands finished more than a day ago.

    A finished row is never re-published, so after a day no copy of its command can still be waiting in a
    stream; the claim has done its job. A watermark keeps each sweep to the rows finished since the last one.
    """
    client = redis_client or get_redis()
    raw = client.get(_PRUNED_UNTIL)
    since = datetime.fromisoformat(raw.decode()) if raw else now() - CLAIMS_KEPT * 30
    until = now() - CLAIMS_KEPT
    if until <= since:
        return 0
    rows = session.execute(select(Outbox.id, Outbox.instance_id).where(
        Outbox.status != "pending", Outbox.done_at > since, Outbox.done_at <= until)).all()
    pipe = client.pipeline(transaction=False)
    for outbox_id, instance_id in rows:
        pipe.hdel(SENT_HASH.format(instance_id), str(outbox_id))
    pipe.set(_PRUNED_UNTIL, until.isoformat())
    pipe.execute()
    return len(rows)
