"""The inbox's team tools: transfer with a note, private notes (never sent), quick replies in the sandbox."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from connector.contracts import OUT_STREAM
from tests.factories import make_actor, make_instance, make_team, make_workspace
from tests.test_team_routing import _conv, _conversation, _events
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import conversations, notifications, quick_replies, routing, thread_notes, transfers
from workbench.store.db import session_scope
from workbench.store.models import Contact, Message, Note, Outbox, Team


@pytest.fixture
def desk(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin", email="admin@example.com")
    ana, bia = make_actor(ws, "agent", email="ana@example.com"), make_actor(ws, "agent", email="bia@example.com")
    supervisor = make_actor(ws, "supervisor", email="sup@example.com")
    team = make_team(ws, "Suporte", bia.user_id)
    conv = _conversation(ws, inst, agent_id=ana.user_id)
    with session_scope() as s:
        contact = s.get(Contact, _conv(conv).contact_id)
        contact.name, contact.custom_data = "Maria <b>Silva</b>", {"plano": "Ouro"}
    return {"ws": ws, "inst": inst, "admin": admin, "ana": ana, "bia": bia, "sup": supervisor, "team": team,
            "conv": conv}


def _counts(conversation_id: int) -> tuple[int, int]:
    with session_scope() as s:
        messages = s.scalar(select(func.count(Message.id)).where(Message.conversation_id == conversation_id))
        outbox = s.scalar(select(func.count(Outbox.id)).join(Message, Message.id == Outbox.message_id)
                          .where(Message.conversation_id == conversation_id))
    return messages, outbox


def test_private_notes_never_reach_the_outbox_and_mentions_ring_the_bell(desk, r):
    ana, bia, conv = desk["ana"], desk["bia"], desk["conv"]
    note = thread_notes.add_note(ana, conv, "Cliente irritada, @bia pode ajudar? cc @Admin <script>x</script>")
    assert _counts(conv) == (0, 0)
    assert r.xlen(OUT_STREAM.format(desk["inst"])) == 0
    assert _conv(conv).last_message_preview is None  # the list's preview is the contact's, not the note
    [shown] = thread_notes.list_notes(ana, conv)
    assert (shown["id"], shown["author"]) == (note, "ana")
    assert shown["body"].endswith("<script>x</script>")  # stored as typed; the page shows it literally
    assert [n["body"] for n in notifications.list_notifications(bia)] == ["ana mencionou você em uma nota privada."]
    assert notifications.unread_count(desk["admin"]) >= 1
    assert notifications.list_notifications(ana) == []  # no self-notification, no one else's
    # "@ana" inside "@anabela" is not a mention; the part of the e-mail before "@" is
    with session_scope() as s:
        assert thread_notes.mentioned(s, desk["ws"], "falar com @anabela") == []
        assert thread_notes.mentioned(s, desk["ws"], "@SUP, veja") == [desk["sup"].user_id]
    # a reply after the note goes out; the note still does not
    conversations.send_text(ana, conv, "Olá!")
    assert _counts(conv) == (1, 1)
    with session_scope() as s:
        assert s.scalars(select(Outbox.command)).one()["text"] == "Olá!"


def test_notes_follow_the_conversation_visibility_and_bad_notes_are_refused(desk):
    conv, bia = desk["conv"], desk["bia"]
    with pytest.raises(NotFound):  # bia does not see ana's conversation
        thread_notes.add_note(bia, conv, "oi")
    with pytest.raises(NotFound):
        thread_notes.list_notes(bia, conv)
    with pytest.raises(InvalidInput) as info:
        thread_notes.add_note(desk["ana"], conv, "   ")
    assert error_text(info.value) == "Escreva a nota antes de salvar."
    with pytest.raises(InvalidInput):
        thread_notes.add_note(desk["ana"], conv, "x" * 4001)
    other = make_actor(make_workspace("Outra"), "admin")
    with pytest.raises(NotFound):
        thread_notes.add_note(other, conv, "oi")
    with pytest.raises(NotFound):
        thread_notes.add_note(desk["ana"], "1 OR 1=1", "oi")


def test_transfer_to_a_person_with_a_note_the_next_owner_sees(desk):
    ana, bia, conv = desk["ana"], desk["bia"], desk["conv"]
    assert transfers.transfer(ana, conv, agent_id=bia.user_id, note="Quer trocar o plano") == bia.user_id
    assert _conv(conv).agent_id == bia.user_id
    assert _events(conv)[-1]["how"] == "transfer" and _events(conv)[-1]["from_agent_id"] == ana.user_id
    [note] = thread_notes.list_notes(bia, conv)  # bia sees the conversation now, and the note
    assert note["body"] == "Quer trocar o plano"
    [notice] = notifications.list_notifications(bia)
    assert notice["body"] == "ana transferiu esta conversa.\nQuer trocar o plano"
    assert notice["conversation_id"] == conv
    assert _counts(conv) == (0, 0)
    with pytest.raises(NotFound):  # ana no longer sees it
        conversations.get_conversation(ana, conv)


def test_transfer_to_a_team_follows_its_distribution(desk):
    admin, bia, conv, team = desk["admin"], desk["bia"], desk["conv"], desk["team"]
    assert transfers.transfer(admin, conv, team_id=team) is None  # no distribution: the team's queue
    assert (_conv(conv).agent_id, _conv(conv).team_id) == (None, team)
    assert [n["team"] for n in notifications.list_notifications(bia)] == ["Suporte"]
    with session_scope() as s:
        s.get(Team, team).auto_assign = True
    routing.set_availability(bia, "available")  # bia becomes available: the queued conversation is hers
    assert _conv(conv).agent_id == bia.user_id
    conv2 = _conversation(desk["ws"], desk["inst"])
    assert transfers.transfer(admin, conv2, team_id=team) == bia.user_id
    with pytest.raises(InvalidInput) as info:
        transfers.transfer(admin, conv2)
    assert error_text(info.value) == "Escolha uma pessoa ou uma equipe para transferir a conversa."
    with pytest.raises(NotFound):
        transfers.transfer(admin, conv2, team_id=make_team(make_workspace("Outra"), "Deles"))
    with pytest.raises(NotFound):
        transfers.transfer(admin, conv2, agent_id=make_actor(make_workspace("Outra2")).user_id)


def test_quick_replies_render_in_the_sandbox_and_are_managed_by_admins_and_supervisors(desk, r):
    admin, sup, ana, conv = desk["admin"], desk["sup"], desk["ana"], desk["conv"]
    reply = quick_replies.save_reply(sup, "/Saudacao", "Olá {{contact.name}}, aqui é {{agent.name}} "
                                     "(plano {{contact.custom_data.plano}}).")
    with pytest.raises(PermissionDenied):
        quick_replies.save_reply(ana, "oi", "Oi")
    with pytest.raises(PermissionDenied):
        quick_replies.delete_reply(ana, reply)
    with pytest.raises(Conflict):
        quick_replies.save_reply(admin, "saudacao", "outra")
    for shortcut in ("", "com espaco", "x" * 41, "ação"):
        with pytest.raises(InvalidInput):
            quick_replies.save_reply(admin, shortcut, "texto")
    with pytest.raises(InvalidInput):
        quick_replies.save_reply(admin, "vazio", "  ")
    assert [q["shortcut"] for q in quick_replies.list_replies(ana)] == ["Saudacao"]
    text = quick_replies.render_reply(ana, conv, shortcut="SAUDACAO")
    assert text == "Olá Maria <b>Silva</b>, aqui é ana (plano Ouro)."
    message_id = quick_replies.send_typed(ana, conv, " /saudacao ")
    with session_scope() as s:
        assert s.get(Message, message_id).text == text
    with pytest.raises(NotFound):  # a mistyped shortcut sends nothing
        quick_replies.send_typed(ana, conv, "/saudacoes")
    assert _counts(conv) == (1, 1)
    quick_replies.send_typed(ana, conv, "/saudacao e mais")  # not a lone shortcut: sent as typed
    assert _counts(conv) == (2, 2)
    quick_replies.save_reply(admin, "bye", "Tchau!", reply_id=reply)
    assert [q["shortcut"] for q in quick_replies.list_replies(ana)] == ["bye"]
    quick_replies.delete_reply(admin, reply)
    assert quick_replies.list_replies(ana) == []
    other = make_actor(make_workspace("Outra"), "admin")
    with pytest.raises(NotFound):
        quick_replies.delete_reply(other, quick_replies.save_reply(admin, "x", "y"))


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ contact.name.__class__ }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x' * 10**8 }}",
    "{{ 2 ** 100000 }}",
    "{% macro m() %}{% endmacro %}",
    "{% include 'x' %}",
])
def test_hostile_quick_replies_are_refused_on_save_or_at_use_never_sent(desk, template, r):
    admin, conv = desk["admin"], desk["conv"]
    try:
        reply = quick_replies.save_reply(admin, "mau", template)
    except InvalidInput as refused:
        assert "variável" in error_text(refused)
        return
    with pytest.raises(InvalidInput) as info:
        quick_replies.render_reply(admin, conv, reply_id=reply)
    assert error_text(info.value).startswith("O texto da resposta rápida tem um erro de variável")
    with pytest.raises(InvalidInput):
        quick_replies.send_typed(admin, conv, "/mau")
    assert _counts(conv) == (0, 0)
    with session_scope() as s:
        assert s.scalar(select(func.count(Note.id))) == 0
