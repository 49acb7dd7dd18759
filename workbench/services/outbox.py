"""Outbound messages: a message row and its outbox command written in one transaction, published after commit.

The outbox row is the durable promise to send; the ``wb:out:{i}`` stream entry is only a wake-up for the
connector. If Redis loses the entry, ``republish_pending`` puts it back; if an entry is delivered twice,
the connector's claim (``connector.claims``, kept in its data dir) makes sure WhatsApp sees it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from redis.client import Pipeline
from sqlalchemy import BigInteger, DateTime, Interval, String, bindparam, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from connector.contracts import CLAIM_HORIZONS, OUT_STREAM, STATUS_HASH, MediaRef, OutboundCommand, encode
from workbench.base.clock import now
from workbench.base.i18n import t
from workbench.services.conversation_ref import ConversationRef
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import HotStatement, write_rows
from workbench.store.models import Instance, Outbox
from workbench.store.text import clean_text, preview

# New outbound messages, their outbox rows and their conversations' last-message fields in one statement, for one
# conversation (a funnel step's greeting and menu) or for a whole inbound batch's (``hold_rows``), instead of three
# statements per message: data-modifying CTEs all run, in one snapshot, whether or not the outer statement reads
# them. Each row takes its message id from the sequence in the rows' order, so the outbox row of a row is the row of
# its own message whatever order rows come back in, and a conversation's last row is its last message. The
# statement is prepared: planning it took 0.4 ms, more than running it, and it runs for every paced message. A plan
# made while a new installation's conversations table was nearly empty joins it by one sequential scan per statement
# (never a scan per row, unlike the old ``_ACKS``), and lasts no longer than ``db.PLAN_TTL_S``. The first human
# reply is what "time to first response" measures; bot messages do not count.
_QUEUE = HotStatement(text("""
WITH draft AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS message_id, draft.*
    FROM jsonb_to_recordset(:rows)
         AS draft(workspace_id bigint, instance_id bigint, conversation_id bigint, user_id bigint, at timestamptz,
                  type text, text text, preview text, data jsonb, media_id bigint, funnel_id bigint, command jsonb)
), new_message AS (
    INSERT INTO messages (id, workspace_id, instance_id, conversation_id, direction, type, text, data, media_id,
                          status, sent_by_user_id, sent_by_funnel_id, created_at, status_at)
    SELECT message_id, workspace_id, instance_id, conversation_id, 'out', type, text, data, media_id, 'pending',
           user_id, funnel_id, at, at
    FROM draft
), last AS MATERIALIZED (
    SELECT DISTINCT ON (conversation_id) conversation_id, at, preview, type, user_id
    FROM draft ORDER BY conversation_id, message_id DESC
), touched AS (
    UPDATE conversations
    SET last_message_at = last.at, last_message_preview = last.preview, last_message_direction = 'out',
        last_message_type = last.type,
        first_reply_at = CASE WHEN last.user_id IS NOT NULL THEN coalesce(first_reply_at, last.at)
                              ELSE first_reply_at END
    FROM last
    WHERE conversations.id = ANY(ARRAY(SELECT conversation_id FROM last)) AND conversations.id = last.conversation_id
)
INSERT INTO outbox (workspace_id, instance_id, message_id, command, publish_count, published_at)
SELECT workspace_id, instance_id, message_id, command, 1, at FROM draft
RETURNING message_id, id
""").bindparams(bindparam("rows", type_=JSONB)))


class Draft(NamedTuple):
    """One outbound message for ``queue_messages``.

    ``poll`` = (question, options) makes the command a single-choice poll; ``text`` is then what the inbox shows
    and what goes out where a poll cannot (the question with numbered options). ``typing`` False sends it without
    the "typing…" delay.
    """

    text: str | None
    type: str = "text"
    media: MediaRef | None = None
    media_id: int | None = None
    funnel_id: int | None = None
    data: dict[str, Any] | None = None
    poll: tuple[str, list[str]] | None = None
    typing: bool = True


def queue_messages(session: Session, conversation: ConversationRef, drafts: Sequence[Draft],
                   user_id: int | None = None) -> list[tuple[int, OutboundCommand]]:
    """Write outbound messages of one conversation, in order, with their outbox commands, in one statement; publish
    the returned commands after commit. ``user_id``: the person who sends them (None for the bot).

    Returns each draft's message id and command, in the drafts' order.
    """
    message_ids: list[int] = []
    commands = _write(session, conversation, drafts, user_id, message_ids.append, hold=False)
    return list(zip(message_ids, commands, strict=True))


def queue_bot_messages(session: Session, conversation: ConversationRef, drafts: Sequence[Draft]
                       ) -> list[OutboundCommand]:
    """The bot's messages to one conversation, as ``queue_messages`` writes them, but held with the rest of an
    inbound batch's when the session holds rows (``db.hold_rows``): the commands get their outbox ids once the
    batch's rows are written, which happens before commit and before anything of the same contact is read or
    stored. Returns the commands, in the drafts' order, to publish after commit."""
    return _write(session, conversation, drafts, None, None, hold=True)


def _write(session: Session, conversation: ConversationRef, drafts: Sequence[Draft], user_id: int | None,
           message_id: Callable[[int], None] | None, *, hold: bool) -> list[OutboundCommand]:
    """The rows and commands of ``drafts``; the rows go to ``_QUEUE`` now or held (``hold``), and each command gets
    its outbox id (and ``message_id`` each message id, in order) once they are written."""
    when = now().isoformat()
    rows, commands = [], []
    for draft in drafts:
        body, flags = clean_text(draft.text) if draft.text is not None else (None, {})
        poll = draft.poll
        command = OutboundCommand(
            outbox_id=0, instance_id=conversation.instance_id, to_phone=conversation.phone, to_jid=conversation.jid,
            type=draft.type, text=poll[0] if poll else body, media=draft.media, typing=draft.typing,
            **({"poll_options": list(poll[1]), "fallback_text": body} if poll else {}),
        )
        rows.append({"workspace_id": conversation.workspace_id, "instance_id": conversation.instance_id,
                     "conversation_id": conversation.id, "user_id": user_id, "at": when, "type": draft.type,
                     "text": body, "preview": preview(body), "media_id": draft.media_id, "funnel_id": draft.funnel_id,
                     "data": {**(draft.data or {}), **flags, **({"media": draft.media.model_dump()} if draft.media
                                                                else {})},
                     "command": command.model_dump(exclude={"outbox_id"}, exclude_none=True)})
        commands.append(command)
    if not commands:
        return []

    def written(result: list[tuple]) -> None:  # (message id, outbox id) per row, in the rows' order
        for (message, outbox_id), command in zip(result, commands, strict=True):
            command.outbox_id = outbox_id
            if message_id is not None:
                message_id(message)

    write_rows(session, _QUEUE, rows, conversation.phone if hold else None, written)
    return commands


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
    """Write one outbound message and its outbox command (``queue_messages`` with one ``Draft``); publish the
    returned command after commit. Returns the message id and the command."""
    [queued] = queue_messages(session, conversation, [Draft(text, type, media, media_id, funnel_id, data, poll)],
                              user_id)
    return queued


def publish(commands: Iterable[OutboundCommand], redis_client=None) -> None:
    """Append commands to their numbers' outbound streams (call only after the commit).

    ``redis_client`` may be a pipeline: the commands are then only added to it, and its owner executes it.
    """
    commands = list(commands)
    if not commands:
        return
    client = redis_client or get_redis()
    pipe = client if isinstance(client, Pipeline) else client.pipeline(transaction=False)
    for command in commands:
        pipe.xadd(OUT_STREAM.format(command.instance_id), encode(command))
    if pipe is not client:
        pipe.execute()


def _command_of(row: Outbox) -> OutboundCommand:
    return OutboundCommand.model_validate({**row.command, "outbox_id": row.id, "instance_id": row.instance_id})


REPUBLISH_BATCH = 1000
"""Rows re-published per sweep at most (oldest first); the next sweep takes the rest."""

# The outbox rows of removed numbers, and their messages, are failed: no connector will ever send them.
_FAIL_REMOVED = text("""
WITH failed AS (
    UPDATE outbox SET status = 'failed', error = :error, done_at = :at
    WHERE status = 'pending' AND instance_id IN (SELECT id FROM instances WHERE desired_state = 'removed')
    RETURNING message_id
)
UPDATE messages SET status = 'failed', error = :error, status_at = :at
WHERE id IN (SELECT message_id FROM failed) AND status = 'pending'
""").bindparams(bindparam("at", type_=DateTime(timezone=True)))


def republish_pending(session: Session, redis_client=None, older_than_s: int | None = None) -> int:
    """Re-publish unsent outbox rows of connected numbers (after a Redis loss or a lost entry).

    Rows of numbers that are not connected wait in their stream; each re-publish doubles the wait before
    the next one, so a long outage does not flood the stream. Both filters are in the query, so rows that
    must wait never take the places of rows that may go. Rows of removed numbers are failed first.
    Returns how many were re-published.
    """
    client = redis_client or get_redis()
    base = timedelta(seconds=older_than_s if older_than_s is not None else get_settings().outbox_republish_after_s)
    when = now()
    session.execute(_FAIL_REMOVED, {"error": t("outbox.number_removed"), "at": when})
    numbers = session.scalars(select(Instance.id).where(Instance.desired_state != "removed")).all()
    pipe = client.pipeline(transaction=False)
    for instance_id in numbers:
        pipe.hget(STATUS_HASH.format(instance_id), "state")
    connected = [i for i, state in zip(numbers, pipe.execute(), strict=True) if state == b"connected"]
    if not connected:
        return 0
    wait = literal(base, Interval) * func.power(2, func.least(Outbox.publish_count, 8))
    rows = session.scalars(
        select(Outbox).where(
            Outbox.status == "pending", Outbox.instance_id.in_(connected), Outbox.created_at < when - base,
            or_(Outbox.published_at.is_(None), Outbox.published_at < literal(when, DateTime(timezone=True)) - wait),
        ).order_by(Outbox.id).limit(REPUBLISH_BATCH)
    ).all()
    publish([_command_of(row) for row in rows], client)
    for row in rows:
        row.publish_count += 1
        row.published_at = when
    return len(rows)


# One statement for a batch's acks: each outbox row is done, and its message sent or failed. A row already done
# (the stream may deliver an ack twice) changes nothing, and neither does its message.
#
# The rows are found by primary key whatever the statistics say: ``id = ANY(ARRAY(...))`` is an index condition
# whose array size the planner cannot know, and "not done yet" is ``done_at IS NULL`` (set exactly when a row leaves
# ``pending``, here and in ``_FAIL_REMOVED``) rather than ``status = 'pending'``, which the planner answers with the
# partial index ``ix_outbox_pending``. Written as a plain join, a table that grew faster than autovacuum analyzes
# it (a burst into a new installation) got a plan that read every pending row once per batch: 20-40 ms a batch
# with a few thousand pending, most of PostgreSQL's time in bench/pipeline.py's welcome-funnel burst. Written so, even
# a plan made on empty tables finds both tables' rows by primary key (tests/test_db_plans.py holds it to that), so the
# statement is prepared: planning it on each run cost 0.18 ms of its 0.35.
_ACKS = HotStatement(text("""
WITH acks AS (
    SELECT * FROM unnest(CAST(:outbox_ids AS bigint[]), CAST(:statuses AS text[]), CAST(:errors AS text[]),
                         CAST(:wa_ids AS text[]), CAST(:ats AS timestamptz[])) AS a(outbox_id, status, error, wa_id, at)
), done AS (
    UPDATE outbox SET status = acks.status, error = acks.error, done_at = acks.at
    FROM acks
    WHERE outbox.id = ANY(ARRAY(SELECT outbox_id FROM acks)) AND outbox.id = acks.outbox_id
      AND outbox.instance_id = :instance_id AND outbox.done_at IS NULL
    RETURNING outbox.message_id, acks.status, acks.error, acks.wa_id, acks.at
)
UPDATE messages SET status = done.status, wa_id = coalesce(done.wa_id, messages.wa_id), error = done.error,
                    status_at = done.at
FROM done WHERE messages.id = done.message_id
""").bindparams(bindparam("outbox_ids", type_=ARRAY(BigInteger)), bindparam("statuses", type_=ARRAY(String)),
                bindparam("errors", type_=ARRAY(String)), bindparam("wa_ids", type_=ARRAY(String)),
                bindparam("ats", type_=ARRAY(DateTime(timezone=True)))))


class Ack(NamedTuple):
    """The connector's answer to one send (``connector.contracts.SendAck``, its error text already cleaned)."""

    outbox_id: int
    ok: bool
    wa_id: str | None
    error: str | None
    at: datetime


def mark_acked(session: Session, instance_id: int, acks: Sequence[Ack]) -> None:
    """Record the connector's answers in one statement: each outbox row is done and its message sent (with its
    WhatsApp id) or failed. The first answer for an outbox row counts; a repeat changes nothing."""
    first: dict[int, Ack] = {}
    for ack in acks:
        first.setdefault(ack.outbox_id, ack)
    if not first:
        return
    rows = list(first.values())
    _ACKS.execute(session, {
        "instance_id": instance_id, "outbox_ids": [a.outbox_id for a in rows],
        "statuses": ["sent" if a.ok else "failed" for a in rows], "errors": [a.error for a in rows],
        "wa_ids": [a.wa_id if a.ok else None for a in rows], "ats": [a.at for a in rows]})


def prune_claims(session: Session, redis_client=None) -> int:
    """Tell each number's connector which of its send claims it may forget (``connector.claims``).

    Per number: the lowest outbox id still pending (None: nothing is) and when that was seen. The connector
    forgets a claim below it once the claim is old enough. Returns how many numbers were told.
    """
    at_ms = int(now().timestamp() * 1000)  # before the query: every row committed before it is seen
    lowest = dict(session.execute(select(Outbox.instance_id, func.min(Outbox.id)).where(
        Outbox.status == "pending").group_by(Outbox.instance_id)).all())
    numbers = session.scalars(select(Instance.id).where(Instance.desired_state != "removed")).all()
    horizons = {str(i): json.dumps({"below": lowest.get(i), "at": at_ms}) for i in numbers}
    pipe = (redis_client or get_redis()).pipeline()
    pipe.delete(CLAIM_HORIZONS)
    if horizons:
        pipe.hset(CLAIM_HORIZONS, mapping=horizons)
    pipe.execute()
    return len(horizons)
