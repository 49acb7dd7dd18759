"""The sandbox network and transport behind a relay: pairing, inbound, outbound, receipts (relay in a thread)."""

from __future__ import annotations

import hashlib

import pytest
import redis as redis_lib
from rq import Queue

from connector import contracts
from connector.claims import Claims, read_claims
from connector.media import media_path, store_media
from connector.sandbox import SandboxError, SandboxNetwork, SandboxTransport
from tests.test_connector_support import (
    BUSINESS,
    LEAD,
    acks,
    clear_inbound,
    events,
    pair,
    relay_thread,
    round_trips,
    send_command,
    status,
    wait_qr,
    wait_state,
    wait_until,
)
from workbench.store.config import get_settings

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def network(r) -> SandboxNetwork:
    """The simulated phone network on the flushed test Redis."""
    return SandboxNetwork(r)


def _states(r, instance_id: int) -> list[str]:
    return [e.state for e in events(r, instance_id, "state")]


def test_scan_pairs_the_number_and_a_restart_reconnects_without_qr(r, network):
    with relay_thread(r, 1):
        shown = wait_qr(r, 1)
        assert shown["qr"].startswith("sandbox:1:")
        assert int(shown["qr_expires_at"]) > contracts.now_ms()
        assert not network.scan("sandbox:1:not-a-code", BUSINESS)
        assert network.scan(shown["qr"], BUSINESS, "Loja")
        connected = wait_state(r, 1, "connected")
        assert (connected["phone"], connected["push_name"]) == (BUSINESS, "Loja")
        assert "qr" not in connected
        assert not network.scan(shown["qr"], "5511990000002"), "a used code links nothing"
        assert network.business_numbers() == [
            {"phone": BUSINESS, "instance_id": 1, "push_name": "Loja", "online": True}]
    assert status(r, 1)["state"] == "stopped"
    assert network.business_numbers()[0]["online"] is False
    assert _states(r, 1) == ["connecting", "awaiting_qr", "connected", "stopped"]

    clear_inbound(r, 1)
    with relay_thread(r, 1):
        wait_state(r, 1, "connected")
    assert _states(r, 1) == ["connecting", "connected", "stopped"]  # the stored device: no QR this time


def test_qr_rotates_and_an_expired_code_is_refused(r, network):
    with relay_thread(r, 1, transport_options={"qr_ttl_s": 0.3}):
        first = wait_qr(r, 1)["qr"]
        wait_until(lambda: status(r, 1).get("qr") not in (None, first), what="a new QR code")
        assert not network.scan(first, BUSINESS)
        # the current code may rotate between reading and scanning it: scan until one is still valid
        wait_until(lambda: network.scan(status(r, 1).get("qr", ""), BUSINESS), what="a successful scan")
        wait_state(r, 1, "connected")


def test_one_number_links_to_one_instance(r, network):
    with relay_thread(r, 1), relay_thread(r, 2):
        pair(r, network, 1)
        assert not network.scan(wait_qr(r, 2)["qr"], BUSINESS)
        assert wait_state(r, 2, "awaiting_qr")


def test_logout_forgets_the_device_and_shows_a_new_qr(r, network):
    with relay_thread(r, 1):
        pair(r, network, 1)
        r.rpush(contracts.CONTROL_LIST.format(1), contracts.ControlCommand(action="logout").model_dump_json())
        shown = wait_qr(r, 1)
        assert "phone" not in shown
        assert network.business_numbers() == []
    assert _states(r, 1)[-3:] == ["logged_out", "awaiting_qr", "stopped"]
    clear_inbound(r, 1)
    with relay_thread(r, 1):
        wait_state(r, 1, "awaiting_qr")  # after a logout a restart needs a new scan


def test_reconnect_keeps_the_device(r, network):
    with relay_thread(r, 1):
        pair(r, network, 1)
        r.rpush(contracts.CONTROL_LIST.format(1), contracts.ControlCommand(action="reconnect").model_dump_json())
        wait_until(lambda: _states(r, 1)[-2:] == ["reconnecting", "connected"], what="a reconnect")
        assert wait_state(r, 1, "connected")["phone"] == BUSINESS


def test_pair_by_phone_code(r, network):
    with relay_thread(r, 1):
        wait_state(r, 1, "awaiting_qr")
        command = contracts.ControlCommand(action="pair_phone", phone="+55 11 99000-0001")
        r.rpush(contracts.CONTROL_LIST.format(1), command.model_dump_json())
        # the state is written first, then the code: there is a moment without one
        code = wait_until(lambda: (s := status(r, 1)).get("state") == "pairing" and s.get("pair_code"),
                          what="a pairing code")
        assert len(code) == 8
        assert not network.enter_pair_code(code, "5511990000009"), "a code only works on the phone it was asked for"
        assert network.enter_pair_code(code, BUSINESS, "Loja")
        assert "pair_code" not in wait_state(r, 1, "connected")


def test_lead_text_and_image_arrive_as_inbound_messages(r, network, servers):
    with relay_thread(r, 1):
        pair(r, network, 1)
        text_id = network.send_from_lead(LEAD, BUSINESS, text="Oi, quero saber o preço", push_name="Ana")
        image_id = network.send_from_lead(LEAD, BUSINESS, text="olha", media=PNG, mime="image/png",
                                          filename="../../foto.png")
        got = wait_until(lambda: len(m := events(r, 1, "message")) == 2 and m, what="two inbound messages")
    text, image = got
    assert (text.wa_id, text.type, text.text, text.phone, text.push_name) == (
        text_id, "text", "Oi, quero saber o preço", LEAD, "Ana")
    assert text.chat_jid == text.sender_jid == f"{LEAD}@s.whatsapp.net"
    assert (image.wa_id, image.type, image.text) == (image_id, "image", "olha")
    sha = hashlib.sha256(PNG).hexdigest()
    assert image.media.model_dump() == {"sha256": sha, "mime": "image/png", "size": len(PNG), "filename": "foto.png"}
    assert media_path(servers["WORKBENCH_DATA_DIR"], sha).read_bytes() == PNG
    assert status(r, 1)["last_inbound_at"]
    chat = network.lead_chat(LEAD, BUSINESS)
    assert [(m["id"], m["direction"], m["status"]) for m in chat] == [
        (text_id, "from_lead", "delivered"), (image_id, "from_lead", "delivered")]
    assert network.lead_conversations(LEAD)[0]["business_phone"] == BUSINESS


def test_publish_inbound_queues_the_drain_job(r, network):
    with relay_thread(r, 1):
        pair(r, network, 1)
        network.send_from_lead(LEAD, BUSINESS, text="oi")
        wait_until(lambda: events(r, 1, "message"), what="the inbound message")
    jobs = Queue(contracts.INBOUND_QUEUE, connection=r).jobs
    lead = contracts.lane_of({"kind": "message", "phone": LEAD}, contracts.inbound_lanes(r, 1))
    # one job per lane that received events: the lead's, and lane 0 for the connection's states
    assert sorted((job.func_name, job.args) for job in jobs) == sorted(
        {(contracts.DRAIN_JOB, (1, 0)), (contracts.DRAIN_JOB, (1, lead))})


def test_other_message_types_keep_their_type(r, network):
    with relay_thread(r, 1):
        pair(r, network, 1)
        first = network.send_from_lead(LEAD, BUSINESS, text="oi")
        network.send_from_lead(LEAD, BUSINESS, media=b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(20), mime="image/webp",
                               type="sticker")
        network.send_from_lead(LEAD, BUSINESS, type="location", extra={"latitude": -23.5, "longitude": -46.6})
        network.send_from_lead(LEAD, BUSINESS, type="reaction", text="👍", extra={"target_id": first})
        network.send_from_lead(LEAD, BUSINESS, type="call_log")
        got = wait_until(lambda: len(m := events(r, 1, "message")) == 5 and m, what="five inbound messages")
    assert [m.type for m in got] == ["text", "sticker", "location", "reaction", "unsupported"]
    assert got[1].media.mime == "image/webp"
    assert got[2].raw == {"latitude": -23.5, "longitude": -46.6}
    assert (got[3].text, got[3].target_id) == ("👍", first)
    assert got[4].raw == {"type": "call_log"}


def test_messages_sent_while_the_connector_is_down_arrive_in_order_when_it_returns(r, network):
    with relay_thread(r, 1):
        pair(r, network, 1)
    sent = [network.send_from_lead(LEAD, BUSINESS, text=f"mensagem {n}") for n in range(12)]
    sent.append(network.send_from_lead("5511980000002", BUSINESS, text="outro lead"))
    assert events(r, 1, "message") == []
    assert {m["status"] for m in network.lead_chat(LEAD, BUSINESS)} == {"sent"}
    with relay_thread(r, 1):
        got = wait_until(lambda: len(m := events(r, 1, "message")) == 13 and m, what="the waiting messages")
    # in order per contact; two contacts' lanes are separate streams, whose entry ids order them only apart
    # from a tie in the same millisecond
    assert [m.wa_id for m in got if m.phone == LEAD] == sent[:12]
    assert {m.wa_id for m in got} == set(sent)
    assert {m["status"] for m in network.lead_chat(LEAD, BUSINESS)} == {"delivered"}


def test_an_inbound_entry_handed_over_but_not_acknowledged_is_delivered_again(r, network):
    """A crash between publish and XACK: the entry stays pending in the sandbox inbox and comes back."""
    with relay_thread(r, 1):
        pair(r, network, 1)
    wa_id = network.send_from_lead(LEAD, BUSINESS, text="oi")
    # What a dead connector leaves behind: the entry read (pending) but never acknowledged.
    r.xreadgroup("device", "device", {f"wb:sbx:inbox:{BUSINESS}": ">"})
    with relay_thread(r, 1):
        got = wait_until(lambda: events(r, 1, "message"), what="the redelivered message")
    assert [m.wa_id for m in got] == [wa_id]


def test_an_inbox_read_is_acknowledged_with_the_next_read_and_on_stopping(r, network, monkeypatch):
    """One round trip per read: the entries handed over are acknowledged (and their "delivered" set) ahead of the
    next read, in the same pipeline; a connector that stops acknowledges its last read before it goes."""
    inbox = f"wb:sbx:inbox:{BUSINESS}".encode()
    with round_trips(monkeypatch) as writes, relay_thread(r, 1):
        pair(r, network, 1)
        for n in range(3):
            network.send_from_lead(LEAD, BUSINESS, text=f"mensagem {n}")
            wait_until(lambda n=n: len(events(r, 1, "message")) == n + 1, what="the message")
        wait_until(lambda: {m["status"] for m in network.lead_chat(LEAD, BUSINESS)} == {"delivered"},
                   what="the lead's ticks")
    sandbox_writes = [write for write in writes if inbox in write]
    acks = [write for write in sandbox_writes if b"XACK" in write]
    assert len(acks) >= 3
    assert all(b"XREADGROUP" in write for write in acks[:-1]), "each acknowledgement rides on the next read"
    assert r.xpending(inbox, "device")["pending"] == 0, "the last read acknowledged on stopping"


def test_a_redis_that_forgot_its_scripts_still_gets_messages_delivered_and_acknowledged(r, network):
    """The inbox read is acknowledged in one pipeline with the "delivered" statuses queued by script hash; a Redis
    that lost its scripts (restarted, SCRIPT FLUSH) makes that hash unknown, and the statuses go the slow way."""
    with relay_thread(r, 1):
        pair(r, network, 1)
        wait_until(lambda: _states(r, 1)[-1:] == ["connected"], what="the connection")
        r.script_flush()
        sent = [network.send_from_lead(LEAD, BUSINESS, text=f"mensagem {n}") for n in range(3)]
        wait_until(lambda: len(events(r, 1, "message")) == 3, what="the messages")
        wait_until(lambda: {m["status"] for m in network.lead_chat(LEAD, BUSINESS)} == {"delivered"},
                   what="the lead's ticks")
        wait_until(lambda: r.xpending(f"wb:sbx:inbox:{BUSINESS}", "device")["pending"] == 0,
                   what="the inbox acknowledged")
    assert [m.wa_id for m in events(r, 1, "message")] == sent


def test_outbound_shows_typing_then_delivers_acks_and_reports_receipts(r, network):
    with relay_thread(r, 1, typing_ms_per_char=40, typing_max_ms=4000):
        pair(r, network, 1)
        send_command(r, 1, 7, "Olá! Sou a assistente da loja, em que posso ajudar hoje?")
        wait_until(lambda: network.is_typing(LEAD, BUSINESS), what="the typing indicator")
        assert network.lead_chat(LEAD, BUSINESS) == [], "typing comes before the message"
        chat = wait_until(lambda: network.lead_chat(LEAD, BUSINESS), what="the message in the lead's chat")
        assert not network.is_typing(LEAD, BUSINESS)
        wait_until(lambda: events(r, 1, "receipt"), what="the delivery receipt")
        assert network.mark_read(LEAD, BUSINESS) == [chat[0]["id"]]
        wait_until(lambda: len(events(r, 1, "receipt")) == 2, what="the read receipt")
    message = chat[0]
    assert (message["direction"], message["type"], message["text"]) == (
        "from_business", "text", "Olá! Sou a assistente da loja, em que posso ajudar hoje?")
    published = [e for e in events(r, 1) if e.kind in ("ack", "receipt")]
    assert [(e.kind, getattr(e, "status", None)) for e in published] == [
        ("ack", None), ("receipt", "delivered"), ("receipt", "read")]
    ack = published[0]
    assert (ack.outbox_id, ack.ok, ack.wa_id) == (7, True, message["id"])
    assert published[1].wa_ids == published[2].wa_ids == [message["id"]]
    assert network.lead_chat(LEAD, BUSINESS)[0]["status"] == "read"
    assert read_claims(get_settings().data_dir, 1)[7] == f"sent:{message['id']}"
    assert network.mark_read(LEAD, BUSINESS) == [], "already read"


def test_the_business_marks_the_leads_messages_read(r, network):
    with relay_thread(r, 1):
        pair(r, network, 1)
        wa_id = network.send_from_lead(LEAD, BUSINESS, text="oi")
        wait_until(lambda: events(r, 1, "message"), what="the inbound message")
        # the way the workers ask for it: a control command on the number's list, carried out by the relay
        r.rpush(contracts.CONTROL_LIST.format(1), contracts.ControlCommand(
            action="mark_read", phone=LEAD, wa_ids=[wa_id]).model_dump_json())
        wait_until(lambda: network.lead_chat(LEAD, BUSINESS)[0]["status"] == "read", what="blue ticks")


def test_read_receipts_for_several_chats_go_out_in_one_round_trip(r, network, monkeypatch):
    """A batch of the workers' read requests becomes one pipeline of status changes, one per chat."""
    other = "5511980000002"
    with relay_thread(r, 1) as relay:
        pair(r, network, 1)
        sent = {lead: network.send_from_lead(lead, BUSINESS, text="oi") for lead in (LEAD, other)}
        wait_until(lambda: len(events(r, 1, "message")) == 2, what="the inbound messages")
        # only this thread's writes: the sandbox's inbox reader may acknowledge its last read ("delivered") meanwhile
        with round_trips(monkeypatch, this_thread_only=True) as writes:
            relay.carry_out([contracts.ControlCommand(action="mark_read", phone=lead, wa_ids=[wa_id])
                             .model_dump_json().encode() for lead, wa_id in sent.items()])
    status_writes = [write for write in writes if b"EVALSHA" in write]
    assert len(status_writes) == 1 and status_writes[0].count(b"EVALSHA") == 2
    assert [network.lead_chat(lead, BUSINESS)[0]["status"] for lead in sent] == ["read", "read"]


def test_commands_wait_while_disconnected_and_go_out_once_connected(r, network):
    with relay_thread(r, 1):
        send_command(r, 1, 1, "primeira")
        send_command(r, 1, 2, "segunda")
        wait_state(r, 1, "awaiting_qr")
        assert acks(r, 1) == {}
        pair(r, network, 1)
        wait_until(lambda: len(acks(r, 1)) == 2, what="both acks")
    assert [m["text"] for m in network.lead_chat(LEAD, BUSINESS)] == ["primeira", "segunda"]


def test_a_long_typing_delay_for_one_contact_does_not_hold_up_another(r, network):
    other = "5511980000002"
    with relay_thread(r, 1, typing_ms_per_char=40, typing_max_ms=4000):
        pair(r, network, 1)
        send_command(r, 1, 1, "x" * 200, to_phone=LEAD)  # 4 s of typing
        send_command(r, 1, 2, "depois", to_phone=LEAD)  # same contact: waits its turn
        send_command(r, 1, 3, "ok", to_phone=other)  # another contact: goes out meanwhile
        wait_until(lambda: len(acks(r, 1)) == 3, what="three acks")
    assert [e.outbox_id for e in events(r, 1, "ack")] == [3, 1, 2]
    assert [m["text"] for m in network.lead_chat(LEAD, BUSINESS)] == ["x" * 200, "depois"]


def test_a_send_cut_off_by_a_broken_connection_is_delivered_exactly_once(r, network, monkeypatch):
    """The connection breaks after the delivery ran (first command) or before it (second): like WhatsApp, the
    sandbox knows a message by its id, so the sender asks and sends again only what did not arrive."""
    deliver = SandboxNetwork.deliver_from_business
    broken = {"after": 1, "before": 1}

    def flaky(self, business, deliveries):
        texts = [message["text"] for _, message in deliveries]
        if "chegou" in texts and broken["after"]:
            broken["after"] -= 1
            deliver(self, business, deliveries)
            raise redis_lib.ConnectionError("Connection closed by server.")
        if "não chegou" in texts and broken["before"]:
            broken["before"] -= 1
            raise redis_lib.ConnectionError("Error 111 connecting to Redis")
        deliver(self, business, deliveries)

    monkeypatch.setattr(SandboxNetwork, "deliver_from_business", flaky)
    with relay_thread(r, 1):
        pair(r, network, 1)
        send_command(r, 1, 1, "chegou")
        send_command(r, 1, 2, "não chegou")
        wait_until(lambda: len(acks(r, 1)) == 2, what="two acks")
    assert all(ack[0].ok for ack in acks(r, 1).values())
    assert [m["text"] for m in network.lead_chat(LEAD, BUSINESS)] == ["chegou", "não chegou"]


def test_an_already_sent_command_is_acknowledged_again_not_resent(r, network):
    claims = Claims(r, 1, get_settings().data_dir)
    assert claims.claim(5) is None
    claims.sent(5, "3EB0PREVIOUS")
    with relay_thread(r, 1):
        pair(r, network, 1)
        send_command(r, 1, 5, "de novo")
        ack = wait_until(lambda: acks(r, 1).get(5), what="the ack")
    assert (ack[0].ok, ack[0].wa_id) == (True, "3EB0PREVIOUS")
    assert network.lead_chat(LEAD, BUSINESS) == []


def test_a_refused_send_is_acknowledged_as_failed_and_released(r, network, servers):
    missing = contracts.MediaRef(sha256="0" * 64, mime="image/png", size=1)
    stored = store_media(servers["WORKBENCH_DATA_DIR"], PNG, "image/png", "a.png")
    with relay_thread(r, 1):
        pair(r, network, 1)
        send_command(r, 1, 1, "legenda", type="image", media=missing)
        send_command(r, 1, 2, "legenda", type="image", media=stored)
        wait_until(lambda: len(acks(r, 1)) == 2, what="two acks")
    by_id = acks(r, 1)
    assert not by_id[1][0].ok and "not in the store" in by_id[1][0].error
    assert by_id[2][0].ok
    assert 1 not in read_claims(get_settings().data_dir, 1), "nothing went out, so a retry may send it"
    [message] = network.lead_chat(LEAD, BUSINESS)
    assert (message["type"], message["media"]["sha256"]) == ("image", stored.sha256)


def test_a_poll_is_delivered_and_the_leads_vote_arrives_as_the_option_text(r, network):
    fallback = "Qual horário?\n\n1. Manhã\n2. Tarde"
    with relay_thread(r, 1):
        pair(r, network, 1)
        send_command(r, 1, 1, "Qual horário?", type="poll", poll_options=["Manhã", "Tarde"], fallback_text=fallback)
        send_command(r, 1, 2, "Qual horário?", type="poll", poll_options=["Manhã"], fallback_text="Qual?\n\n1. Manhã")
        wait_until(lambda: len(acks(r, 1)) == 2, what="two acks")
        poll, single = network.lead_chat(LEAD, BUSINESS)
        assert (poll["type"], poll["text"], poll["options"], poll["vote"]) == (
            "poll", "Qual horário?", ["Manhã", "Tarde"], None)
        assert (single["type"], single["text"]) == ("text", "Qual?\n\n1. Manhã"), "WhatsApp takes no 1-option poll"
        with pytest.raises(SandboxError, match="no option"):
            network.vote(LEAD, BUSINESS, poll["id"], "Noite")
        with pytest.raises(SandboxError, match="no poll"):
            network.vote(LEAD, BUSINESS, single["id"], "Manhã")
        vote_id = network.vote(LEAD, BUSINESS, poll["id"], "Tarde", push_name="Ana")
        [vote] = wait_until(lambda: events(r, 1, "message"), what="the vote")
    assert (vote.wa_id, vote.type, vote.text, vote.quoted_id, vote.push_name) == (
        vote_id, "text", "Tarde", poll["id"], "Ana")
    assert vote.raw == {"poll_vote": True, "poll_id": poll["id"]}
    chat = network.lead_chat(LEAD, BUSINESS)
    assert [m["id"] for m in chat] == [poll["id"], single["id"]], "a vote is not a chat bubble"
    assert chat[0]["vote"] == "Tarde"


def test_send_from_lead_refuses_an_unlinked_number_and_a_malformed_phone(network):
    with pytest.raises(SandboxError, match=BUSINESS):
        network.send_from_lead(LEAD, BUSINESS, text="oi")
    with pytest.raises(SandboxError, match="not a phone number"):
        network.send_from_lead("abc", BUSINESS, text="oi")


def test_transport_is_registered():
    from connector.transport import load_transport

    assert load_transport("sandbox") is SandboxTransport


def test_commands_read_together_go_out_in_one_batch_and_each_contact_keeps_its_order(r, network, monkeypatch):
    """An unpaced number sends what needs no typing delay at once, in one transaction; a contact's command that
    types waits for the batch, and a second copy of a batched command is acknowledged again, not sent."""
    other = "5511980000002"
    deliver = SandboxNetwork.deliver_from_business
    batches = []

    def recorded(self, business, deliveries):
        batches.append([message["text"] for _, message in deliveries])
        deliver(self, business, deliveries)

    monkeypatch.setattr(SandboxNetwork, "deliver_from_business", recorded)
    with relay_thread(r, 1, typing_ms_per_char=5):
        # written while the number is offline, so the first read after connecting takes them all
        send_command(r, 1, 1, "a1", typing=False)
        send_command(r, 1, 2, "b1", to_phone=other, typing=False)
        send_command(r, 1, 3, "a2", typing=True)
        send_command(r, 1, 4, "b2", to_phone=other, typing=False)
        send_command(r, 1, 1, "a1", typing=False)  # the sweep published it again
        pair(r, network, 1)
        wait_until(lambda: sum(len(found) for found in acks(r, 1).values()) == 5, what="five acks")
    assert batches[0] == ["a1", "b1", "b2"] and batches[1:] == [["a2"]], batches
    assert [m["text"] for m in network.lead_chat(LEAD, BUSINESS)] == ["a1", "a2"]
    assert [m["text"] for m in network.lead_chat(other, BUSINESS)] == ["b1", "b2"]
    first, again = acks(r, 1)[1]
    assert first.ok and again.ok and first.wa_id == again.wa_id
    assert all(ack.ok for found in acks(r, 1).values() for ack in found)


def test_a_batch_sent_at_once_leaves_the_stream_with_the_next_read(r, network, monkeypatch):
    """The outbound reader acknowledges and deletes what its read settled (a batch sent, a malformed entry) ahead
    of its next read, in the same round trip."""
    out = contracts.OUT_STREAM.format(1).encode()
    with round_trips(monkeypatch) as writes, relay_thread(r, 1):
        pair(r, network, 1)
        for n in range(3):
            send_command(r, 1, n + 1, f"resposta {n}", typing=False)
            wait_until(lambda n=n: len(acks(r, 1)) == n + 1, what="the ack")
        r.xadd(contracts.OUT_STREAM.format(1), {"c": "{not json"})
        wait_until(lambda: r.xlen(contracts.OUT_STREAM.format(1)) == 0, what="the stream emptied")
    deletes = [write for write in writes if b"XDEL" in write and out in write]
    assert len(deletes) >= 3
    assert all(b"XREADGROUP" in write for write in deletes), "each deletion rides on the next read"
    assert r.xpending(out, contracts.OUT_GROUP)["pending"] == 0
