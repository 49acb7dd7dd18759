"""Visão 360 page (pages/contact.py): reached from the inbox and notifications, three columns, notes, feed pages,
merge, agents' scope, and untrusted text only in literal elements."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from tests.test_pages_app import signed_in_app
from tests.test_pages_inbox import open_conversation, open_inbox, walk
from workbench.services import contact_feed, contact_notes, contacts, conversations, notifications
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation, Notification

HOSTILE = "**x** <b>y</b> [l](http://e.vil) :red[z]"


def lead(inst: int, phone: str, *texts: str, name: str = "Maria") -> int:
    publish(*[inbound(inst, phone=phone, text=text, push_name=name) for text in texts])
    run_jobs()
    with session_scope() as s:
        return s.scalar(select(Contact.id).where(Contact.instance_id == inst, Contact.phone == phone))


def open_contact(actor, contact_id: int | str) -> AppTest:
    at = signed_in_app(actor)
    at.run()
    at.query_params["contact"] = str(contact_id)
    return at.switch_page("pages/contact.py").run()


def texts(at: AppTest) -> list[str]:
    return [el.value for el in at.text]


def setup(role: str = "admin"):
    ws = make_workspace()
    inst = make_instance(ws)
    actor = make_actor(ws, role)
    contact = lead(inst, "5511911110001", "Oi", "Quero um orçamento")
    return ws, inst, actor, contact


def test_three_columns_with_data_feed_and_the_ai_summary(engine, r):
    ws, inst, admin, contact = setup()
    contacts.add_tag(admin, contact, "VIP")
    at = open_contact(admin, contact)
    assert not at.exception
    assert [t.value for t in at.title] == ["Visão 360 do contato"]
    assert [s.value for s in at.subheader] == ["Dados do contato", "Tags", "Campos", "Notas internas", "Atividade",
                                               "Resumo da IA"]
    shown = texts(at)
    assert "Maria" in shown and "5511911110001" in shown and "VIP" in shown
    assert "Quero um orçamento" in shown and "Tag adicionada: VIP" in shown
    assert "Ainda não há resumo desta conversa." in [c.value for c in at.caption]  # tests/test_ai_summary.py
    assert at.expander[-1].label == "Mesclar com…"  # an admin may merge


def test_missing_or_foreign_contact(engine, r):
    ws, inst, admin, contact = setup()
    at = signed_in_app(admin)
    at.run()
    at = at.switch_page("pages/contact.py").run()
    assert not at.exception
    assert [i.value for i in at.info] == ["Abra um contato pela Caixa de entrada ou por uma notificação."]
    stranger = make_actor(make_workspace("Outra"), "admin")
    at = open_contact(stranger, contact)
    assert [e.value for e in at.error] == ["Contato não encontrado."]
    at = open_contact(admin, "99999999999999999999999")
    assert not at.exception and at.info


def test_agents_open_only_contacts_they_see_and_cannot_merge(engine, r):
    ws, inst, admin, contact = setup()
    agent, other_agent = make_actor(ws, "agent"), make_actor(ws, "agent")
    at = open_contact(agent, contact)
    assert not at.exception and "Quero um orçamento" in texts(at)
    assert "Mesclar com…" not in [e.label for e in at.expander]
    with session_scope() as s:
        conversation_id = s.scalar(select(Conversation.id))
    conversations.assign(admin, conversation_id, agent_id=other_agent.user_id)
    at = open_contact(agent, contact)
    assert [e.value for e in at.error] == ["Contato não encontrado."]
    assert "Quero um orçamento" not in texts(at)


def test_notes_add_edit_and_delete_from_the_page(engine, r):
    ws, inst, agent, contact = setup("agent")
    at = open_contact(agent, contact)
    at.text_area(key="contact360_note_new").input(HOSTILE)
    at = at.button(key="contact360_note_add").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Nota adicionada."]
    assert at.text_area(key="contact360_note_new").value == ""
    [note] = contact_notes.list_notes(agent, contact)
    assert note["body"] == HOSTILE and HOSTILE in texts(at)

    at.text_area(key=f"contact360_note_text_{note['id']}").input("Ligar à tarde")
    at = at.button(key=f"contact360_note_save_{note['id']}").click().run()
    assert [s.value for s in at.success] == ["Nota atualizada."]
    assert contact_notes.list_notes(agent, contact)[0]["body"] == "Ligar à tarde"

    at = at.button(key=f"contact360_note_delete_{note['id']}").click().run()
    assert [w.value for w in at.warning] == ["Excluir esta nota? Não dá para desfazer."]
    at = at.button(key=f"contact360_note_yes_{note['id']}").click().run()
    assert [s.value for s in at.success] == ["Nota excluída."]
    assert contact_notes.list_notes(agent, contact) == []

    # empty: refused, nothing stored
    at = at.button(key="contact360_note_add").click().run()
    assert [e.value for e in at.error] == ["Escreva a nota antes de salvar."]


def test_someone_elses_note_has_no_edit_or_delete_for_an_agent(engine, r):
    ws, inst, admin, contact = setup()
    agent = make_actor(ws, "agent")
    note = contact_notes.add_note(admin, contact, "Nota do admin")
    at = open_contact(agent, contact)
    assert "Nota do admin" in texts(at)
    keys = {button.key for button in at.button}
    assert f"contact360_note_save_{note}" not in keys and f"contact360_note_delete_{note}" not in keys


def test_feed_filter_and_pages(engine, r, monkeypatch):
    ws, inst, admin, contact = setup()
    lead(inst, "5511911110001", *[f"mensagem {n}" for n in range(5)])
    contacts.add_tag(admin, contact, "VIP")
    monkeypatch.setattr(contact_feed, "PAGE_SIZE", 3)
    at = open_contact(admin, contact)
    first = texts(at)
    assert "Tag adicionada: VIP" in first and "mensagem 4" in first and "mensagem 2" not in first
    assert at.button(key="contact360_feed_newer").disabled
    at = at.button(key="contact360_feed_older").click().run()
    second = texts(at)
    assert "mensagem 2" in second and "mensagem 4" not in second
    at = at.button(key="contact360_feed_newer").click().run()
    assert "mensagem 4" in texts(at)

    at = at.button_group(key="contact360_feed_kinds").select("tag").run()
    assert not at.exception
    shown = texts(at)
    assert "Tag adicionada: VIP" in shown and "mensagem 4" not in shown
    assert at.button(key="contact360_feed_older").disabled


def test_merge_from_the_page(engine, r):
    ws, inst, admin, contact = setup()
    second = make_instance(ws, "Suporte")
    other = lead(second, "5511922220002", "Sou eu no outro número", name="Maria Souza")
    contacts.update_contact(admin, other, custom_data={"cpf": "123"})
    at = open_contact(admin, contact)
    at.text_input(key="contact360_merge_query").input("Souza")
    at = at.run()
    assert not at.exception
    assert at.selectbox(key="contact360_merge_other").value == other
    assert "Os contatos estão em números diferentes. Depois de mesclar, as respostas saem do número deste contato:" \
        in [i.value for i in at.info]
    at = at.button(key="contact360_merge_submit").click().run()
    assert [e.value for e in at.error] == ["Marque a confirmação antes de mesclar."]
    with session_scope() as s:
        assert s.get(Contact, other) is not None

    at.checkbox(key=f"contact360_merge_confirm_{other}").check()
    at = at.button(key="contact360_merge_submit").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Contatos mesclados."]
    with session_scope() as s:
        assert s.get(Contact, other) is None
        assert s.get(Contact, contact).custom_data == {"cpf": "123"}  # the other's only value came along
    assert "Sou eu no outro número" in texts(at)


def test_reached_from_the_inbox_and_a_notification(engine, r):
    ws, inst, admin, contact = setup()
    with session_scope() as s:
        conversation_id = s.scalar(select(Conversation.id))
        s.add(Notification(workspace_id=ws, conversation_id=conversation_id, body="Olhar este lead"))
    at = open_conversation(open_inbox(admin), conversation_id)
    [link] = [el for el in walk(at.main) if el.type == "page_link"]
    assert link.proto.label == "Abrir Visão 360" and link.proto.query_string == f"contact={contact}"

    [item] = notifications.list_notifications(admin)
    assert item["contact_id"] == contact
    at = at.button(key=f"notify_contact_{item['id']}").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Visão 360 do contato"] and "Quero um orçamento" in texts(at)
    assert notifications.unread_count(admin) == 0


def test_untrusted_text_only_in_literal_elements(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    contact = lead(inst, "5511911110001", HOSTILE, name=HOSTILE)
    contacts.add_tag(admin, contact, HOSTILE[:40])
    contacts.update_contact(admin, contact, name=HOSTILE, custom_data={"obs": HOSTILE})
    contact_notes.add_note(admin, contact, HOSTILE)
    at = open_contact(admin, contact)
    assert not at.exception
    where = {}
    for node in walk(at.main):
        proto = getattr(node, "proto", None)
        if proto is not None and "e.vil" in str(proto):
            where.setdefault(node.type, []).append(node)
    # literal text, data frames' cells, widget values (the edit forms)
    assert set(where) <= {"text", "dataframe", "text_area", "text_input"}, set(where)
