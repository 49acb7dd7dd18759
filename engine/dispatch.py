"""What the bot does with a new message from a contact.

Today: the workspace's default reply. The funnel runtime plugs in here (triggers and waiting runs
take the message first; the default reply answers only when no funnel did).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from connector.contracts import InboundMessage, OutboundCommand
from workbench.auth import now
from workbench.models import Message
from workbench.outbox import queue_message
from workbench.workspace_settings import DefaultReply, load_setting


def on_inbound_message(session: Session, conversation: dict[str, Any], event: InboundMessage,
                       text: str | None) -> list[OutboundCommand]:
    """Run the bot for one stored inbound message; returns commands to publish after commit."""
    if conversation["bot_paused"]:
        return []
    reply: DefaultReply = load_setting(session, conversation["workspace_id"], "default_reply")  # type: ignore[assignment]
    if not reply.enabled or not reply.text.strip():
        return []
    if reply.mode == "once_24h" and session.scalar(select(exists().where(
        Message.conversation_id == conversation["id"], Message.direction == "out",
        Message.data["auto"].astext == "default_reply", Message.created_at > now() - timedelta(hours=24),
    ))):
        return []
    _, command = queue_message(session, conversation, text=reply.text, data={"auto": "default_reply"})
    return [command]
