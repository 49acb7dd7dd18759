"""Simulador page and service: scanning a sandbox QR, sending as a lead, typing and read receipts."""

from __future__ import annotations

import inspect
import io
import json

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from connector.contracts import STATUS_HASH, now_ms
from connector.sandbox import INBOX, QR, SandboxNetwork
from tests.factories import make_actor, make_instance, make_workspace
from tests.test_pages_app import signed_in_app
from tests.test_pages_inbox import PNG
from workbench.base.errors import InvalidInput
from workbench.services import simulator

BUSINESS = "5511955550001"
LEAD = "5511987654321"


def show_qr(r, instance_id: int, code: str = "sandbox:test:qr") -> str:
    """Play the connector of a sandbox number that waits for its QR code to be read."""
    r.set(QR.format(code), instance_id, ex=60)
    r.hset(STATUS_HASH.format(instance_id), mapping={
        "state": "awaiting_qr", "qr": code, "qr_expires_at": now_ms() + 60_000, "heartbeat": now_ms()})
    return code


def connect(r, instance_id: int, phone: str = BUSINESS) -> None:
    """The connector saw the scan and is connected now."""
    r.hdel(STATUS_HASH.format(instance_id), "qr", "qr_expires_at")
    r.hset(STATUS_HASH.format(instance_id), mapping={"state": "connected", "phone": phone, "heartbeat": now_ms()})


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)
    at.run()
    return at.switch_page("pages/simulator.py").run()


@pytest.fixture
def linked(engine, r):
    """A workspace with one sandbox number linked to BUSINESS and connected."""
    ws = make_workspace()
    inst = make_instance(ws, "Atendimento")
    actor = make_actor(ws, role="supervisor")
    show_qr(r, inst)
    assert simulator.scan_qr(actor, inst, BUSINESS, "Loja Teste")
    connect(r, inst)
    return actor, inst


def test_scanning_a_pending_qr_links_the_number(engine, r):
    ws = make_workspace()
    inst = make_instance(ws, "Atendimento")
    show_qr(r, inst)
    at = open_page(make_actor(ws))
    assert not at.exception
    assert at.subheader[0].value == "Números aguardando leitura do QR"
    assert "Atendimento" in [t.value for t in at.text]
    assert at.info[0].value.startswith("Nenhum número de sandbox conectado")
    at.text_input(key=f"sim_scan_phone_{inst}").input("+55 (11) 95555-0001")
    at.button(key=f"sim_scan_{inst}").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["QR lido! O número conecta em instantes."]
    assert SandboxNetwork(r).business_numbers()[0]["phone"] == BUSINESS
    # A code that was already used (or expired) cannot link anything.
    at.button(key=f"sim_scan_{inst}").click().run()
    assert at.error[0].value.startswith("Não deu para ler")


def test_lead_sends_text_and_sees_typing_and_read_ticks(linked, r):
    actor, inst = linked
    at = open_page(actor)
    assert not at.exception
    assert at.selectbox(key="sim_number").value == BUSINESS
    at.chat_input(key="sim_text").set_value("Olá, quero comprar").run()
    assert not at.exception
    [message] = SandboxNetwork(r).lead_chat(LEAD, BUSINESS)
    assert (message["direction"], message["text"]) == ("from_lead", "Olá, quero comprar")
    assert r.xlen(INBOX.format(BUSINESS)) == 1  # waiting for the business device
    bubble = at.chat_message[0]
    assert bubble.get("text")[0].value == "Olá, quero comprar" and "✓ enviada" in bubble.get("caption")[-1].value

    network = SandboxNetwork(r)
    network.set_typing(BUSINESS, LEAD, True)
    at.run()
    assert "_digitando…_" in [c.value for c in at.caption]
    network.deliver_from_business(BUSINESS, [(LEAD, {
        "id": "BIZ1", "direction": "from_business", "type": "text", "text": "Oi! Posso ajudar?",
        "timestamp_ms": now_ms()})])
    at.run()
    assert "_digitando…_" not in [c.value for c in at.caption]
    assert at.chat_message[-1].get("text")[0].value == "Oi! Posso ajudar?"
    # The chat is open on the lead's phone, so the business's message was read.
    assert network.lead_chat(LEAD, BUSINESS)[-1]["status"] == "read"


def test_lead_sends_an_image(linked, r):
    actor, _ = linked
    simulator.send_from_lead(actor, BUSINESS, LEAD, text="Foto do produto", media=PNG, mime="image/png",
                             filename="produto.png")
    [message] = simulator.chat(actor, BUSINESS, LEAD)
    assert (message["type"], message["text"], message["media"]["mime"]) == ("image", "Foto do produto", "image/png")
    at = open_page(actor)
    assert not at.exception
    assert at.chat_message[0].get("image")
    for data, mime in ((b"MZ...", "application/x-msdownload"), (b"<html>", "image/png"), (PNG[:-12], "image/png")):
        with pytest.raises(InvalidInput) as info:  # the content decides, and the image must decode
            simulator.send_from_lead(actor, BUSINESS, LEAD, media=data, mime=mime, filename="foto.png")
        assert info.value.key == "error.media_type"
    assert len(simulator.chat(actor, BUSINESS, LEAD)) == 1


def test_the_simulator_shows_only_the_images_of_its_own_chats(linked, r):
    """Images reach the page only as thumbnails of the chat's messages: no call takes a file's digest, so another
    workspace's files (or any stored file) cannot be asked for."""
    actor, _ = linked
    public = [call for name, call in vars(simulator).items()
              if inspect.isfunction(call) and not name.startswith("_") and call.__module__ == simulator.__name__]
    taking_a_digest = [call.__name__ for call in public
                       if {"sha256", "digest"} & set(inspect.signature(call).parameters)]
    assert taking_a_digest == []
    simulator.send_from_lead(actor, BUSINESS, LEAD, media=PNG, mime="text/html", filename="foto")
    [message] = simulator.chat(actor, BUSINESS, LEAD)
    assert message["media"]["mime"] == "image/png", "decided from the content, not from the browser"
    with Image.open(io.BytesIO(message["thumbnail"])) as thumb:
        assert thumb.size == (1, 1)


def test_bad_lead_phone_shows_error(linked, r):
    actor, _ = linked
    at = open_page(actor)
    at.text_input(key="sim_lead_phone").input("abc").run()
    assert not at.exception
    assert at.error[0].value.startswith("Telefone inválido")


def test_offline_number_is_flagged(linked, r):
    actor, inst = linked
    r.hset(STATUS_HASH.format(inst), "state", "reconnecting")
    at = open_page(actor)
    assert at.warning[0].value.startswith("Este número está offline")


def test_lead_votes_on_a_poll_by_clicking_an_option(linked, r):
    actor, _ = linked
    network = SandboxNetwork(r)
    network.deliver_from_business(BUSINESS, [(LEAD, {
        "id": "POLL1", "direction": "from_business", "type": "poll", "text": "Qual horário?",
        "options": ["**Manhã**", "Tarde"], "timestamp_ms": now_ms()})])
    at = open_page(actor)
    assert not at.exception
    bubble = at.chat_message[0]
    assert [x.value for x in bubble.get("text")] == ["Qual horário?", "**Manhã**", "Tarde"], "options stay literal"
    assert bubble.get("caption")[0].value == "[Enquete]"
    assert [b.label for b in at.button if b.key.startswith("sim_vote_")] == ["Votar", "Votar"]
    at.button(key="sim_vote_POLL1_1").click().run()
    assert not at.exception and not at.error
    entries = [json.loads(fields[b"p"]) for _, fields in r.xrange(INBOX.format(BUSINESS))]
    [vote] = [e for e in entries if e["kind"] == "message"]  # the rest are the poll's receipts
    assert (vote["type"], vote["text"], vote["quoted_id"], vote["push_name"]) == (
        "text", "Tarde", "POLL1", "Cliente Teste")
    assert vote["raw"] == {"poll_vote": True, "poll_id": "POLL1"}
    assert at.button(key="sim_vote_POLL1_1").disabled and not at.button(key="sim_vote_POLL1_0").disabled
    assert "✓ seu voto" in [c.value for c in at.chat_message[0].get("caption")]
    with pytest.raises(InvalidInput) as info:
        simulator.vote(actor, BUSINESS, LEAD, "POLL1", "Noite")
    assert info.value.key == "error.poll_vote"
