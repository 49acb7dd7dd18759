"""Caixa de entrada page: list from inbound events, chat, mark read, replies, bot and status controls,
and untrusted text shown only in literal elements."""

from __future__ import annotations

import base64
import hashlib
import io

import streamlit as st
from PIL import Image
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from connector.contracts import OUT_STREAM, MediaRef, Receipt, decode_outbound, now_ms
from connector.media import store_media, thumbnail
from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from tests.test_pages_app import signed_in_app
from workbench.services import conversations
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Conversation, Message

HOSTILE = "**x** <b>y</b> [l](http://e.vil) :red[z]"
# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
                       "AABJRU5ErkJggg==")


def open_inbox(actor) -> AppTest:
    at = signed_in_app(actor)
    at.run()  # agents land on the inbox, admins and supervisors on the Painel
    return at.switch_page("pages/inbox.py").run()


def open_conversation(at: AppTest, conversation_id: int) -> AppTest:
    return at.button(key=f"inbox_open_{conversation_id}").click().run()


def the_conversation() -> Conversation:
    with session_scope() as s:
        return s.scalars(select(Conversation)).one()


def walk(node):
    yield node
    for child in (getattr(node, "children", None) or {}).values():
        yield from walk(child)


def test_list_shows_conversation_from_inbound_events(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Quero um orçamento", push_name="Maria"))
    publish(inbound(inst, phone="5511999990002", type="sticker", text=None, push_name="João"))
    run_jobs()
    at = open_inbox(make_actor(ws))
    assert not at.exception
    texts = [t.value for t in at.text]
    assert {"Maria", "Quero um orçamento", "João", "[Figurinha]"} <= set(texts)
    assert [c.value.split(" · ")[1] for c in at.caption if "badge" in c.value] == [":green-badge[1 não lida]"] * 2
    assert at.info[0].value == "Escolha uma conversa na lista para ver as mensagens."


def test_opening_shows_messages_and_marks_read(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi"), inbound(inst, text="Tem desconto?"))
    run_jobs()
    actor = make_actor(ws)
    at = open_inbox(actor)
    conv = the_conversation()
    assert conv.unread_count == 2
    open_conversation(at, conv.id)
    assert not at.exception
    assert len(at.chat_message) == 2
    assert [m.children[0].value for m in at.chat_message] == ["Oi", "Tem desconto?"]
    assert the_conversation().unread_count == 0
    # A new message while the chat is open is read as it arrives (the fragment's next tick).
    publish(inbound(inst, text="Alô?"))
    run_jobs()
    at.run()
    assert [m.children[0].value for m in at.chat_message][-1] == "Alô?"
    assert the_conversation().unread_count == 0


def test_reply_creates_outbox_command_and_shows_ticks(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi"))
    run_jobs()
    actor = make_actor(ws)
    at = open_conversation(open_inbox(actor), the_conversation().id)
    at.chat_input(key="inbox_reply").set_value("Olá! Como posso ajudar?").run()
    assert not at.exception
    [(_, fields)] = r.xrange(OUT_STREAM.format(inst))
    command = decode_outbound(fields)
    assert (command.text, command.to_phone, command.instance_id) == ("Olá! Como posso ajudar?", "5511999990001", inst)
    assert the_conversation().bot_paused  # the agent took over
    assert at.chat_message[-1].children[0].value == "Olá! Como posso ajudar?"
    assert "🕓 enviando" in at.chat_message[-1].children[1].value
    # The connector sends it and the lead reads it: the ticks follow.
    with session_scope() as s:
        message = s.scalars(select(Message).where(Message.direction == "out")).one()
        message.wa_id, message.status = "OUT1", "sent"
    publish(Receipt(instance_id=inst, wa_ids=["OUT1"], status="read", timestamp_ms=now_ms()))
    run_jobs()
    conversations.pause_bot(actor, the_conversation().id)  # any change bumps the revision
    at.run()
    assert ":blue[✓✓ lida]" in at.chat_message[-1].children[1].value


def test_empty_reply_is_refused(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst))
    run_jobs()
    at = open_conversation(open_inbox(make_actor(ws)), the_conversation().id)
    at.chat_input(key="inbox_reply").set_value("   ").run()
    assert [e.value for e in at.error] == ["Escreva alguma coisa antes de enviar."]
    assert r.xlen(OUT_STREAM.format(inst)) == 0


def test_bot_status_and_assign_buttons(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst))
    run_jobs()
    agent = make_actor(ws, role="agent")
    at = open_conversation(open_inbox(agent), the_conversation().id)
    at.button(key="inbox_pause").click().run()
    assert the_conversation().bot_paused
    at.button(key="inbox_resume").click().run()
    assert not the_conversation().bot_paused
    at.button(key="inbox_assign").click().run()
    assert the_conversation().agent_id == agent.user_id
    assert not [b for b in at.button if b.key == "inbox_assign"]
    at.button(key="inbox_resolve").click().run()
    assert the_conversation().status == "closed"
    assert not at.exception
    at.button(key="inbox_reopen").click().run()
    assert the_conversation().status == "open"


def test_image_edited_deleted_and_unsupported_messages(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    media = store_media(get_settings().data_dir, PNG, "image/png", "foto.png")
    pdf = store_media(get_settings().data_dir, b"%PDF-1.4 proposta", "application/pdf", "proposta **v2**.pdf")
    publish(
        inbound(inst, type="image", text="Veja a foto", media=media),
        inbound(inst, type="document", text=None, media=pdf),
        inbound(inst, text="Texto original", wa_id="E1"),
        inbound(inst, type="edit", text="Texto corrigido", target_id="E1"),
        inbound(inst, text="Vou apagar", wa_id="D1"),
        inbound(inst, type="revoke", text=None, target_id="D1"),
        inbound(inst, type="location", text=None),
    )
    run_jobs()
    at = open_conversation(open_inbox(make_actor(ws)), the_conversation().id)
    assert not at.exception
    assert len(at.chat_message) == 5  # the edit and the revoke show on their targets
    image, document, edited, deleted, location = at.chat_message
    assert image.get("image") and image.get("text")[0].value == "Veja a foto"
    assert document.get("text")[0].value == "proposta **v2**.pdf"  # the contact's file name, literally
    assert [b.proto.label for b in document.get("download_button")] == ["Baixar"]
    assert edited.get("text")[0].value == "Texto corrigido" and "editada" in edited.get("caption")[-1].value
    assert deleted.get("caption")[0].value == "[Mensagem apagada]" and not deleted.get("text")
    assert location.get("caption")[0].value == "[Localização]"


def media_urls(at: AppTest, element: str) -> list[str]:
    """The media URLs of the page's ``element``s ("audio" or "video"): the extension Streamlit gives each tells
    the type the file is served with."""
    return [node.proto.url for node in walk(at.main) if node.type == element]


def test_contacts_files_never_break_the_chat(engine, r):
    """Whatever a contact sends as an image, the chat shows a thumbnail or a placeholder with a download."""
    ws = make_workspace()
    inst = make_instance(ws)
    data_dir = get_settings().data_dir
    bomb = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x4e\x20\x00\x00\x4e\x20\x08\x02\x00\x00\x00"
            b"\x00\x00\x00\x00IEND\xaeB`\x82")  # claims 20000 x 20000 pixels
    photo = io.BytesIO()
    Image.new("RGB", (1600, 1200), (0, 90, 200)).save(photo, "JPEG")
    publish(
        inbound(inst, type="image", text="bomba", media=store_media(data_dir, bomb, "image/png", "a.png")),
        inbound(inst, type="image", text="texto", media=store_media(data_dir, b"nada de imagem", "image/png")),
        inbound(inst, type="sticker", text=None, media=store_media(data_dir, HOSTILE.encode(), "image/webp")),
        inbound(inst, type="image", text="foto", media=store_media(data_dir, photo.getvalue(), "image/jpeg")),
    )
    run_jobs()
    at = open_conversation(open_inbox(make_actor(ws)), the_conversation().id)
    assert not at.exception
    bombed, text, sticker, shown = at.chat_message
    for bubble in (bombed, text, sticker):
        assert not bubble.get("image")
        assert bubble.get("caption")[0].value == "[Este arquivo não pode ser exibido aqui; baixe-o para abrir]"
        assert [b.proto.label for b in bubble.get("download_button")] == ["Baixar"]
    assert [t.value for t in sticker.get("text")] == ["documento"]  # no name: the placeholder name
    assert len(shown.get("image")) == 1 and not shown.get("download_button")
    with Image.open(io.BytesIO(thumbnail(data_dir, hashlib.sha256(photo.getvalue()).hexdigest()))) as thumb:
        assert max(thumb.size) == 320, "the chat shows the bounded thumbnail, not the photo"


def test_declared_types_are_never_served(engine, r, monkeypatch):
    """A file is played inline only when its content is an audio or video type; anything else is a download
    served as application/octet-stream, so a contact's "audio" that is a web page never becomes a page."""
    ws = make_workspace()
    inst = make_instance(ws)
    data_dir = get_settings().data_dir
    page = b"<html><script>fetch('/x?c=' + document.cookie)</script></html>"
    voice = b"OggS\x00\x02" + bytes(22) + b"OpusHead\x01\x02" + bytes(100)
    old = {"sha256": hashlib.sha256(page).hexdigest(), "mime": "text/html", "size": len(page)}
    publish(
        inbound(inst, type="audio", text=None, media=store_media(data_dir, page, "text/html", "audio.html")),
        inbound(inst, type="audio", text=None, media=store_media(data_dir, voice, "text/html")),
        # stored before types were decided: the sender's claim is in the message itself
        inbound(inst, type="video", text=None, media=MediaRef(**old)),
        inbound(inst, type="document", text=None, media=MediaRef(**old, filename="fatura.html")),
    )
    run_jobs()
    downloads = []
    real_button = st.download_button

    def download_button(*args, **kwargs):
        downloads.append((kwargs.get("file_name"), kwargs.get("mime")))
        return real_button(*args, **kwargs)

    monkeypatch.setattr(st, "download_button", download_button)
    at = open_conversation(open_inbox(make_actor(ws)), the_conversation().id)
    assert not at.exception
    # Streamlit names a served file by its type: .oga is audio/ogg (the sender said text/html).
    assert [url.rsplit(".", 1)[-1] for url in media_urls(at, "audio")] == ["oga"]
    assert media_urls(at, "video") == []
    assert downloads[-3:] == [("audio.html", "application/octet-stream"), ("documento", "application/octet-stream"),
                              ("fatura.html", "application/octet-stream")]


def test_untrusted_text_only_in_literal_elements(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text=HOSTILE, push_name=HOSTILE))
    run_jobs()
    at = open_conversation(open_inbox(make_actor(ws)), the_conversation().id)
    assert not at.exception
    where = {}
    for root in (at.main, at.sidebar):
        for node in walk(root):
            proto = getattr(node, "proto", None)
            if proto is not None and "e.vil" in str(proto):
                where.setdefault(node.type, []).append(node)
    assert set(where) == {"text"}, f"untrusted text reached {set(where) - {'text'}}"
    # list name + preview, chat header, the message, the contact panel's push name
    assert [node.value for node in where["text"]].count(HOSTILE) == 5


def test_agents_do_not_see_others_conversations(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, push_name="Cliente do Pedro"))
    run_jobs()
    admin, agent, pedro = make_actor(ws), make_actor(ws, role="agent"), make_actor(ws, role="agent")
    conversations.assign(admin, the_conversation().id, agent_id=pedro.user_id)
    at = open_inbox(agent)
    assert "Cliente do Pedro" not in [t.value for t in at.text]
    assert at.caption[0].value == "Nenhuma conversa por aqui."


def pick_tag(at: AppTest, name: str) -> AppTest:
    """Pick a tag in "Adicionar tag", or type a new one (the browser sends a typed name like an option)."""
    picker = at.selectbox(key="inbox_tag_add")
    if name not in picker.options:
        picker.options.append(name)
    return picker.set_value(name).run()


def test_add_and_remove_tags_from_the_contact_panel(engine, r):
    from workbench.services import contacts

    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi"), inbound(inst, phone="5511999990002", text="Olá"))
    run_jobs()
    agent = make_actor(ws, role="agent")
    other = next(c for c in conversations.list_conversations(agent) if c["phone"] == "5511999990002")
    contacts.add_tag(agent, other["contact_id"], "Cliente antigo")  # a workspace tag to pick from
    conversation = conversations.list_conversations(agent)[-1]
    at = open_conversation(open_inbox(agent), conversation["id"])
    assert at.selectbox(key="inbox_tag_add").options == ["Cliente antigo"]
    assert "Nenhuma tag." in [t.value for t in at.text]

    at = pick_tag(at, "Cliente antigo")
    at = pick_tag(at, "  Quer   desconto ")  # typed: a new tag, trimmed
    assert not at.exception
    assert contacts.contact_profile(agent, conversation["contact_id"])["tags"] == ["Cliente antigo", "Quer desconto"]
    panel = [t.value for t in at.text]
    assert "Cliente antigo" in panel and "Quer desconto" in panel and "Nenhuma tag." not in panel
    assert at.selectbox(key="inbox_tag_add").value is None and at.selectbox(key="inbox_tag_add").options == []

    at = at.button(key="inbox_tag_remove_0").click().run()  # alphabetical: "Cliente antigo" first
    assert not at.exception
    assert contacts.contact_profile(agent, conversation["contact_id"])["tags"] == ["Quer desconto"]
    assert "Cliente antigo" not in [t.value for t in at.text]
    assert at.selectbox(key="inbox_tag_add").options == ["Cliente antigo"]

    at = pick_tag(at, "x" * 81)
    assert [e.value for e in at.error] == ["O nome da tag precisa ter de 1 a 80 caracteres."]


def test_hostile_tag_names_show_literally(engine, r):
    from workbench.services import contacts

    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi"))
    run_jobs()
    actor = make_actor(ws)
    at = pick_tag(open_conversation(open_inbox(actor), the_conversation().id), "<b>x</b> **y**")
    contacts.add_tag(actor, the_conversation().contact_id, "[l](http://e.vil)")
    at.run()
    assert not at.exception
    where = {}
    for root in (at.main, at.sidebar):
        for node in walk(root):
            proto = getattr(node, "proto", None)
            if proto is not None and ("e.vil" in str(proto) or "<b>x</b>" in str(proto)):
                where.setdefault(node.type, []).append(node)
    assert set(where) == {"text"}, f"tag names reached {set(where) - {'text'}}"
    assert [node.value for node in where["text"]] == ["<b>x</b> **y**", "[l](http://e.vil)"]


def fields_editor(at: AppTest, delta: dict) -> None:
    """Edit the custom fields table as the browser would: st.data_editor's state is the delta of the edits."""
    [editor] = [n for n in walk(at.main) if n.type == "dataframe" and "inbox_contact_fields_" in n.proto.id]
    at.session_state[editor.proto.id[editor.proto.id.index("inbox_contact_fields_"):]] = {
        "edited_rows": {}, "added_rows": [], "deleted_rows": [], **delta}


def test_edit_the_contacts_name_and_fields(engine, r):
    from workbench.services import contacts

    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi"))
    run_jobs()
    actor = make_actor(ws, role="agent")
    contact_id = the_conversation().contact_id
    contacts.update_contact(actor, contact_id, custom_data={"email": "maria@ex.com", "plano": "Prata"})
    at = open_conversation(open_inbox(actor), the_conversation().id)
    [name] = [w for w in at.text_input if w.label == "Nome"]
    name.input("Maria Souza")
    fields_editor(at, {"edited_rows": {1: {"value": "Ouro"}}, "deleted_rows": [0],
                       "added_rows": [{"key": "cidade", "value": "Recife"}, {"key": "vazio"}]})
    at = at.button(key="inbox_contact_save").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Contato atualizado."]
    profile = contacts.contact_profile(actor, contact_id)
    assert (profile["name"], profile["custom_data"]) == ("Maria Souza", {"plano": "Ouro", "cidade": "Recife"})
    assert "Maria Souza" in [t.value for t in at.text]  # the list, the chat header and the panel follow at once

    fields_editor(at, {"added_rows": [{"key": "e-mail", "value": "x"}]})
    at = at.button(key="inbox_contact_save").click().run()
    assert [e.value for e in at.error] == [
        "Campo 3: nome inválido. Use letras sem acento, números e _, começando por letra (até 64 caracteres)."]
    assert contacts.contact_profile(actor, contact_id)["custom_data"] == {"plano": "Ouro", "cidade": "Recife"}
