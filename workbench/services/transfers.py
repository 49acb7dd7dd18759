"""Manual transfer in the inbox: hand a conversation to a person or a team, with a note the next owner sees.

Anyone who sees a conversation may transfer it (an agent handing over what they cannot solve is the point);
the person must be an active member and the team the workspace's. To a team, the team's rule decides
(``routing.route_to_team``: an available member when it distributes automatically, else its queue). The optional
note is written as a private note in the thread (``thread_notes``), so it stays with the conversation, and the
next owner — the person, or the team when nobody was picked — gets a notification in the bell.
"""

from __future__ import annotations

from workbench.base.errors import InvalidInput
from workbench.base.i18n import t
from workbench.services import routing
from workbench.services.auth import Actor
from workbench.services.contact_notes import note_body
from workbench.services.conversations import check_member, check_team, load_visible
from workbench.services.thread_notes import write_note
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import Notification
from workbench.store.outages import after_commit


def transfer(actor: Actor, conversation_id: int, agent_id: int | None = None, team_id: int | None = None,
             note: str = "") -> int | None:
    """Transfer the conversation; returns the person who has it now (None: it waits in the team's queue).

    Raises:
        InvalidInput: neither a person nor a team, or a note longer than the notes' limit.
        NotFound: the conversation, the person or the team is not one the actor may use.
    """
    if agent_id is None and team_id is None:
        raise InvalidInput("no target", key="error.transfer_target")
    text = note_body(note) if note and note.strip() else None
    with session_scope() as session:
        conv, contact = load_visible(session, actor, conversation_id)
        if agent_id is not None:
            check_member(session, actor, agent_id)
        if team_id is not None:
            check_team(session, actor, team_id)
        extra = {"transfer": True, "from_agent_id": conv.agent_id}
        if agent_id is not None:
            routing.assign_agent(session, conv.workspace_id, conv.id, agent_id, team_id, actor.user_id, "transfer",
                                 extra)
            owner = agent_id
        else:
            owner = routing.route_to_team(session, conv.workspace_id, conv.id, team_id, actor.user_id, "transfer",
                                          extra)
        if text:
            write_note(session, actor, conv.id, contact.id, text, purpose="transfer")
        if owner != actor.user_id:
            session.add(Notification(workspace_id=conv.workspace_id, user_id=owner,
                                     team_id=None if owner else team_id, conversation_id=conv.id,
                                     body=t("transfer.notification", name=actor.name)
                                     + (f"\n{text}" if text else "")))
    with after_commit():
        live.touch(get_redis(), [actor.workspace_id])
    return owner
