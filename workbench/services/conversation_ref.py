"""The conversation being handled, as the funnel runtime, the bot's default reply and the outbox take it.

Built in one place per origin: the inbound worker builds it from the statements that stored a message (and
then knows a few things the runtime would otherwise read again, per message); everything else (a timer, an
agent's reply, a tag, a manual start) builds it from the rows with ``ConversationRef.of``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workbench.store.models import Contact, Conversation


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """A conversation with its contact's address, and what the event that brought it already knows.

    Attributes:
        id: the conversation.
        workspace_id: its workspace.
        instance_id: the WhatsApp number it talks through.
        contact_id: its contact.
        phone: the contact's phone number (digits).
        jid: the contact's WhatsApp id, when known.
        push_name: the contact's WhatsApp name as the incoming message carried it (only read when
            ``contact_created``: the row holds no name yet).
        known_unpaused: the bot is known not to be paused (the statement that stored the message, or the row
            just loaded, said so), so the runtime does not read the conversation again; False means "look".
        contact_created: the incoming message created the contact: it has no name, fields, tags, runs or
            earlier messages, so the runtime reads none of them.
        first_message: the contact's first message ever (``first_message`` triggers), even when we wrote to
            them first.
        no_live_run: the statement that stored the message found no live funnel run for the conversation, so
            the runtime does not look for one; False means "look".
    """

    id: int
    workspace_id: int
    instance_id: int
    contact_id: int
    phone: str
    jid: str | None = None
    push_name: str | None = None
    known_unpaused: bool = False
    contact_created: bool = False
    first_message: bool = False
    no_live_run: bool = False

    @classmethod
    def of(cls, conversation: Conversation, contact: Contact) -> ConversationRef:
        """The conversation as its rows stand now (a timer, an agent's action)."""
        return cls(id=conversation.id, workspace_id=conversation.workspace_id, instance_id=conversation.instance_id,
                   contact_id=contact.id, phone=contact.phone, jid=contact.jid,
                   known_unpaused=not conversation.bot_paused)

    def forget_event(self) -> ConversationRef:
        """The same conversation without what the incoming event knew beforehand.

        For funnels a walk starts (a go-to step, a tag trigger): the walk may have paused the bot, and a
        brand-new contact may now have tags and a run.
        """
        return replace(self, known_unpaused=False, contact_created=False, first_message=False, no_live_run=False)
