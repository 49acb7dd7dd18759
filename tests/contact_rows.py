"""Contacts as the Contatos tests need them: written straight to the database (real rows, no mocks)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from workbench.services.runs import tag_contact
from workbench.store.db import session_scope
from workbench.store.models import Contact, ContactField, Conversation, Funnel, FunnelRun, FunnelVersion

_phones = itertools.count(5511900000000)


def make_contact(workspace_id: int, instance_id: int, name: str | None = None, *, phone: str | None = None,
                 tags: tuple[str, ...] = (), custom: dict[str, Any] | None = None, conversation: bool = True,
                 agent_id: int | None = None, team_id: int | None = None, last_message_at: datetime | None = None,
                 created_at: datetime | None = None, email: str | None = None, push_name: str | None = None) -> int:
    """A contact (with its conversation unless told otherwise); returns its id."""
    with session_scope() as s:
        contact = Contact(workspace_id=workspace_id, instance_id=instance_id, phone=phone or str(next(_phones)),
                          name=name, push_name=push_name, email=email, custom_data=custom or {})
        if created_at is not None:
            contact.created_at = created_at
        s.add(contact)
        s.flush()
        if conversation:
            s.add(Conversation(workspace_id=workspace_id, instance_id=instance_id, contact_id=contact.id,
                               agent_id=agent_id, team_id=team_id, last_message_at=last_message_at))
        for tag in tags:
            tag_contact(s, workspace_id, contact.id, tag)
        return contact.id


def make_field(workspace_id: int, key: str, type_: str, position: int = 0) -> None:
    with session_scope() as s:
        s.add(ContactField(workspace_id=workspace_id, key=key, label=key.title(), type=type_, position=position))


def make_run(workspace_id: int, contact_id: int, funnel_name: str, status: str, funnel_id: int | None = None) -> int:
    """A funnel run of the contact's conversation (creating the funnel unless given); returns the funnel's id."""
    with session_scope() as s:
        if funnel_id is None:
            funnel = Funnel(workspace_id=workspace_id, name=funnel_name)
            s.add(funnel)
            s.flush()
            funnel_id = funnel.id
        version = FunnelVersion(funnel_id=funnel_id, version=1 + s.query(FunnelVersion).filter_by(
            funnel_id=funnel_id).count(), definition={})
        s.add(version)
        s.flush()
        conv = s.query(Conversation).filter_by(contact_id=contact_id).one()
        s.add(FunnelRun(workspace_id=workspace_id, funnel_id=funnel_id, version_id=version.id,
                        conversation_id=conv.id, contact_id=contact_id, status=status))
        return funnel_id
