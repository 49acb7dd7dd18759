"""In-app notifications: a funnel's "notify human" reaches the right people, and the sidebar bell opens it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.test_pages_app import signed_in_app
from workbench.base.errors import NotFound
from workbench.services import conversations, funnels, notifications, runs
from workbench.store.db import session_scope
from workbench.store.models import Conversation, Notification

LEAD = "5511988887777"
HOSTILE = "**x** <b>y</b> [l](http://e.vil)"


def notify_funnel(team: str) -> dict:
    """Any message -> notify the team (the text carries contact data) -> end."""
    return {
        "nodes": [
            {"id": "t", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {"kind": "any_message"}},
            {"id": "n", "type": "notify_human", "position": {"x": 300, "y": 0},
             "data": {"team_name": team, "message": "{{contact.name}} pediu ajuda: {{trigger.message}}"}},
            {"id": "e", "type": "end", "position": {"x": 600, "y": 0}, "data": {}},
        ],
        "edges": [{"id": "t-n", "source": "t", "target": "n", "label": "next"},
                  {"id": "n-e", "source": "n", "target": "e", "label": "next"}],
    }


@pytest.fixture
def team_setup(engine, r):
    """A workspace whose funnel notifies "Vendas": a seller (member), a support agent, a supervisor."""
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    seller = make_actor(ws, "agent", "vendedor@example.com")
    support = make_actor(ws, "agent", "suporte@example.com")
    supervisor = make_actor(ws, "supervisor", "sup@example.com")
    make_team(ws, "Vendas", seller.user_id)
    make_team(ws, "Suporte", support.user_id)
    fid = funnels.create_funnel(admin, "Aviso", notify_funnel("Vendas"))
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    runs.clear_cache()
    publish(inbound(inst, phone=LEAD, text=HOSTILE))
    run_jobs()
    return {"ws": ws, "admin": admin, "seller": seller, "support": support, "supervisor": supervisor}


def test_notify_human_reaches_the_team_and_managers_only(team_setup):
    seller, support, supervisor = team_setup["seller"], team_setup["support"], team_setup["supervisor"]
    [item] = notifications.list_notifications(seller)
    assert item["body"] == f"Maria pediu ajuda: {HOSTILE}"  # the contact's push name and message
    assert item["team"] == "Vendas" and item["contact"] == "Maria" and item["read_at"] is None
    assert notifications.unread_count(seller) == 1
    assert notifications.list_notifications(support) == [] and notifications.unread_count(support) == 0
    assert [n["id"] for n in notifications.list_notifications(supervisor)] == [item["id"]]
    with pytest.raises(NotFound):
        notifications.mark_read(support, item["id"])
    other = make_actor(make_workspace("Outra"), "admin", "outra@example.com")
    assert notifications.list_notifications(other) == []
    with pytest.raises(NotFound):
        notifications.mark_read(other, item["id"])


def test_reading_once_reads_it_for_the_team(team_setup):
    seller, supervisor = team_setup["seller"], team_setup["supervisor"]
    [item] = notifications.list_notifications(seller, unread_only=True)
    with session_scope() as s:
        conversation_id = s.scalar(select(Conversation.id))
    assert notifications.mark_read(seller, item["id"]) == conversation_id
    assert notifications.unread_count(supervisor) == 0
    assert notifications.list_notifications(supervisor, unread_only=True) == []
    assert notifications.mark_all_read(supervisor) == 0


def test_mark_all_read_covers_only_what_the_actor_sees(team_setup):
    ws, seller, support = team_setup["ws"], team_setup["seller"], team_setup["support"]
    with session_scope() as s:
        s.add(Notification(workspace_id=ws, user_id=support.user_id, body="só para o suporte"))
    assert notifications.mark_all_read(seller) == 1
    assert notifications.unread_count(support) == 1


def test_the_bell_lists_literally_and_opens_the_conversation(team_setup):
    seller = team_setup["seller"]
    at = signed_in_app(seller)
    at = at.run()
    assert not at.exception
    assert f"Maria pediu ajuda: {HOSTILE}" in [el.value for el in at.sidebar.text], "verbatim, as plain text"
    assert not [md for md in at.markdown if "<b>" in md.value or "**x**" in md.value]
    [item] = notifications.list_notifications(seller)
    at = at.button(key=f"notify_open_{item['id']}").click().run()
    assert not at.exception
    assert at.session_state["inbox_selected"] == item["conversation_id"]
    assert notifications.unread_count(seller) == 0
    assert any(el.value.endswith(HOSTILE) for el in at.text), "the inbox shows the conversation's messages"


def test_notifications_follow_the_inbox_rule(team_setup):
    """One rule with the inbox: addressed to someone = theirs only, even with a team; addressed to nobody = all."""
    ws, seller, support, supervisor = (team_setup[k] for k in ("ws", "seller", "support", "supervisor"))
    with session_scope() as s:
        sales_team = s.scalar(select(Notification.team_id).where(Notification.team_id.is_not(None)))
        s.add_all([Notification(workspace_id=ws, user_id=support.user_id, team_id=sales_team, body="para o suporte"),
                   Notification(workspace_id=ws, body="para ninguém")])
    bodies = {actor: {n["body"] for n in notifications.list_notifications(actor)}
              for actor in (seller, support, supervisor)}
    assert bodies[seller] == {f"Maria pediu ajuda: {HOSTILE}", "para ninguém"}
    assert bodies[support] == {"para o suporte", "para ninguém"}
    assert bodies[supervisor] == bodies[seller] | bodies[support]
    assert (notifications.unread_count(seller), notifications.unread_count(support)) == (2, 2)


def test_a_notification_whose_conversation_the_agent_cannot_open_names_no_contact(team_setup):
    """The team is told, but the conversation went to someone outside it: no contact name, nothing to open."""
    admin, seller, support, supervisor = (team_setup[k] for k in ("admin", "seller", "support", "supervisor"))
    with session_scope() as s:
        conversation_id = s.scalar(select(Conversation.id))
    conversations.assign(admin, conversation_id, agent_id=support.user_id)
    [item] = notifications.list_notifications(seller)
    assert (item["contact"], item["conversation_id"]) == (None, None)
    assert notifications.mark_read(seller, item["id"]) is None
    [overseen] = notifications.list_notifications(supervisor)
    assert (overseen["contact"], overseen["conversation_id"]) == ("Maria", conversation_id)
