"""What the bot does with a new message from a contact.

First the funnels (``workbench.services.runs``): a waiting run takes the reply, or a matching trigger starts a
run. Only when no funnel took the message does the workspace's default reply answer.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from connector.contracts import ControlCommand, InboundMessage
from workbench.base.clock import now
from workbench.services import runs
from workbench.services.conversation_ref import ConversationRef
from workbench.services.outbox import Draft, queue_bot_messages
from workbench.services.runs import Effects
from workbench.services.workspace_settings import BotSettings, DefaultReply, load_setting
from workbench.store.models import Message


def on_inbound_message(session: Session, conversation: ConversationRef, event: InboundMessage,
                       text: str | None) -> Effects:
    """Run the bot for one stored inbound message; returns what to publish and schedule after commit.

    A message the bot acted on (a funnel or the default reply answered it, or a funnel set a timer) gets a
    read receipt when the workspace's bot setting ``read_receipts`` is on; messages left to agents do not,
    so the contact's blue ticks mean someone (or something) really read them.
    """
    effects = runs.on_message(session, conversation, text)
    if effects is None:
        effects = _default_reply(session, conversation)
    if (effects.commands or effects.timers) and event.wa_id:
        bot: BotSettings = load_setting(session, conversation.workspace_id, "bot")  # type: ignore[assignment]
        if bot.read_receipts:
            effects.reads.append((conversation.instance_id,
                                  ControlCommand(action="mark_read", phone=event.phone, wa_ids=[event.wa_id])))
    return effects


def _default_reply(session: Session, conversation: ConversationRef) -> Effects:
    reply: DefaultReply = load_setting(session, conversation.workspace_id, "default_reply")  # type: ignore[assignment]
    if not reply.enabled or not reply.text.strip():
        return Effects()
    if reply.mode == "once_24h" and session.scalar(select(exists().where(
        Message.conversation_id == conversation.id, Message.direction == "out",
        Message.data["auto"].astext == "default_reply", Message.created_at > now() - timedelta(hours=24),
    ))):
        return Effects()
    draft = Draft(reply.text, data={"auto": "default_reply"})
    return Effects(commands=queue_bot_messages(session, conversation, [draft]))
