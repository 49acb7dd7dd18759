"""The neonize transport behind a real relay, with the neonize client faked (``tests/fake_neonize.py``).

Events are real neonize protobufs, fired at the handlers the transport registered; everything past the
client (relay, Redis streams, status hash, media store, claims) is real.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from neonize.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    PairStatusEv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import PairPhoneError, SendMessageError
from neonize.proto.Neonize_pb2 import MessageSource
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E
from neonize.utils import ffmpeg as neonize_ffmpeg
from neonize.utils.enum import ChatPresence, MediaType, Presence, ReceiptType

from connector import contracts
from connector.claims import read_claims
from connector.contracts import ControlCommand, OutboundCommand
from connector.media import media_path, store_media
from connector.neonize_transport import NeonizeTransport
from connector.relay import INTERRUPTED, Relay
from connector.transport import NotConnectedError, SendError, SendUncertainError, load_transport
from tests.fake_neonize import FakeClient, FakeWhatsApp, make_jid
from tests.test_connector_support import (
    BUSINESS,
    LEAD,
    ROOT,
    acks,
    clear_inbound,
    events,
    relay_thread,
    send_command,
    status,
    wait_qr,
    wait_state,
    wait_until,
)
from tests.test_wa_messages import LEAD_JID, MP4, OGG, PDF, PNG, message_event


@pytest.fixture
def wa() -> FakeWhatsApp:
    """WhatsApp's side, faked: QR codes every 0.3 s."""
    return FakeWhatsApp()


@contextmanager
def neonize_relay(r: Any, wa: FakeWhatsApp, data_dir: Path, instance_id: int = 1,
                  relay_options: dict[str, Any] | None = None, **transport_options: Any) -> Iterator[Relay]:
    """A relay with the neonize transport on the fake client, running in a thread; stopped on exit."""
    transport_options = {"client_factory": wa.factory, "backoff_base_s": 0.05, **transport_options}
    with relay_thread(r, instance_id, NeonizeTransport, data_dir=data_dir, transport_options=transport_options,
                      **(relay_options or {})) as relay:
        yield relay


def connect(r: Any, wa: FakeWhatsApp, instance_id: int = 1, phone: str = BUSINESS) -> FakeClient:
    """Scan the latest client's QR code with ``phone`` and wait until the instance is connected."""
    client = wa.client()
    wa.scan(client, phone)
    assert wait_state(r, instance_id, "connected")["phone"] == phone
    return client


def control(r: Any, instance_id: int, action: str, **fields: Any) -> None:
    r.rpush(contracts.CONTROL_LIST.format(instance_id), ControlCommand(action=action, **fields).model_dump_json())


def states(r: Any, instance_id: int = 1) -> list[tuple[str, str | None]]:
    return [(e.state, e.reason) for e in events(r, instance_id, "state")]


def wait_reason(r: Any, instance_id: int, state: str, reason: str) -> dict[str, str]:
    return wait_until(lambda: (s := status(r, instance_id)).get("state") == state and s.get("reason") == reason
                      and s, what=f"{state} ({reason})")


def inbound(r: Any, instance_id: int = 1) -> dict[str, Any]:
    """Inbound messages published so far, by WhatsApp id."""
    return {m.wa_id: m for m in events(r, instance_id, "message")}


# -- loading ---------------------------------------------------------------------------------------------------


def test_the_connector_loads_neonize_only_for_the_neonize_transport():
    code = ("import sys, connector.relay, connector.transport, connector.sandbox, connector.spool;"
            "assert not any(m.split('.')[0] == 'neonize' for m in sys.modules), 'neonize imported';"
            "from connector.transport import load_transport;"
            "cls = load_transport('neonize');"
            "assert cls.__name__ == 'NeonizeTransport' and 'neonize' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    assert load_transport("neonize") is NeonizeTransport


# -- pairing ---------------------------------------------------------------------------------------------------


def test_session_files_are_readable_by_their_owner_only(r, wa, tmp_path):
    """The session holds the device's keys: its directory is 0700, and files an older run (or the Go driver under
    a wider umask) left readable by others are narrowed to 0600 when the connector starts."""
    sessions = tmp_path / "sessions"
    sessions.mkdir(mode=0o755)
    left = [sessions / name for name in ("1.sqlite3", "1.sqlite3-wal", "1.sqlite3-shm", "1.jid.json")]
    for path in left:
        path.write_bytes(b"")
        path.chmod(0o644)
    with neonize_relay(r, wa, tmp_path, 1):
        wait_qr(r, 1)
        assert stat.S_IMODE(sessions.stat().st_mode) == 0o700
        assert [stat.S_IMODE(path.stat().st_mode) for path in left] == [0o600] * 4


def test_qr_codes_rotate_and_a_scan_connects_with_a_session_file_per_number(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path, 1), neonize_relay(r, wa, tmp_path, 2):
        first = wait_qr(r, 1)["qr"]
        assert int(status(r, 1)["qr_expires_at"]) > contracts.now_ms()
        wait_until(lambda: status(r, 1).get("qr") not in (None, first), what="a rotated QR code")
        wa.client(count=2)
        clients = {c.uuid: c for c in wa.clients}
        one, two = clients["wb-1"], clients["wb-2"]
        assert Path(one.name) == tmp_path / "sessions" / "1.sqlite3"
        assert Path(two.name) == tmp_path / "sessions" / "2.sqlite3"
        assert one.jid is None and two.jid is None  # nothing stored yet: a new device each

        wa.scan(one, BUSINESS, "Loja")
        connected = wait_state(r, 1, "connected")
        assert (connected["phone"], connected["push_name"]) == (BUSINESS, "Loja")
        assert "qr" not in connected
        wa.scan(two, "5511990000002", "Filial")
        assert wait_state(r, 2, "connected")["phone"] == "5511990000002"
        wait_until(lambda: wa.presences.count(Presence.AVAILABLE) == 2, what="presence after connecting")
    assert ("awaiting_qr", None) in states(r, 1)
    assert states(r, 1)[-2:] == [("connected", None), ("stopped", "shutdown")]
    assert (tmp_path / "sessions" / "1.jid.json").exists() and (tmp_path / "sessions" / "2.jid.json").exists()


def test_the_qr_series_expires_and_restart_pairing_starts_a_new_one(r, tmp_path):
    wa = FakeWhatsApp(qr_codes=2, qr_interval_s=0.2)
    with neonize_relay(r, wa, tmp_path, qr_ttl_s=0.2, qr_grace_s=0.3):
        wait_qr(r, 1)
        expired = wait_reason(r, 1, "awaiting_qr", "qr_expired")
        assert "qr" not in expired, "no code is offered once the series is over"
        first = wa.client()
        assert first.stopped.is_set(), "the dead client is stopped"
        assert len(wa.clients) == 1, "idle: no new client until the panel asks"

        control(r, 1, "restart_pairing")
        second = wa.client(count=2)
        assert second.jid is None
        wait_qr(r, 1)
        wa.scan(second, BUSINESS)
        wait_state(r, 1, "connected")


def test_pair_by_phone_code_waits_until_connect_runs(r, wa, tmp_path):
    wa.qr_gate.clear()  # connect() has not started yet: neonize's PairPhone would fail with "client is nil"
    with neonize_relay(r, wa, tmp_path) as relay:
        client = wa.client()
        control(r, 1, "pair_phone", phone="+55 11 99000-0001")
        wait_until(lambda: relay.transport._pair_phone == BUSINESS, what="the pairing request to be held")
        assert wa.pair_requests == []
        wa.qr_gate.set()
        wait_state(r, 1, "pairing")
        # the state and the code are two writes: wait for the code too
        shown = wait_until(lambda: status(r, 1) if status(r, 1).get("pair_code") else None, what="the code")
        code = shown["pair_code"]
        assert len(code.replace("-", "")) == 8
        assert int(shown["pair_code_expires_at"]) > contracts.now_ms()
        assert wa.pair_requests == [(BUSINESS, code)]
        assert "qr" not in status(r, 1), "the panel shows the code, not a QR code next to it"
        assert not wa.enter_pair_code(code, "5511990000009"), "a code only works on the phone it was asked for"
        assert wa.enter_pair_code(code, BUSINESS)
        assert "pair_code" not in wait_state(r, 1, "connected")
        assert client.qr_shown >= 1
    assert not [s for s in states(r) if s[1] == "pair_phone_failed"]


def test_a_refused_pairing_code_is_a_state_reason_and_a_new_request_works(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path):
        wait_qr(r, 1)
        wa.pair_phone_error = "rate-overlimit"
        control(r, 1, "pair_phone", phone=BUSINESS)
        wait_reason(r, 1, "awaiting_qr", "pair_phone_failed")
        control(r, 1, "pair_phone", phone="12")
        wait_reason(r, 1, "awaiting_qr", "pair_phone_invalid")
        wa.pair_phone_error = None
        control(r, 1, "pair_phone", phone=BUSINESS)
        wait_state(r, 1, "pairing")
        assert len(wait_until(lambda: status(r, 1).get("pair_code"), what="the code")) == 9


def test_the_fake_pair_phone_fails_before_connect_like_neonize(wa, tmp_path):
    client = wa.factory(str(tmp_path / "s.sqlite3"), uuid="wb-9")
    with pytest.raises(PairPhoneError, match="client is nil"):
        client.PairPhone(BUSINESS, True)


# -- life cycle ------------------------------------------------------------------------------------------------


def test_life_cycle_events_map_to_connection_states(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path):
        client = connect(r, wa)
        client.fire(DisconnectedEv(status=True))
        wait_reason(r, 1, "reconnecting", "disconnected")
        client.fire(ConnectedEv(status=True))  # whatsmeow's own reconnect
        wait_state(r, 1, "connected")
        client.fire(KeepAliveTimeoutEv(ErrorCount=2, LastSuccess=int(time.time())))
        wait_reason(r, 1, "reconnecting", "keepalive_timeout")
        client.fire(KeepAliveRestoredEv())
        assert wait_state(r, 1, "connected")["phone"] == BUSINESS

        client.fire(StreamReplacedEv())
        wait_reason(r, 1, "replaced", "stream_replaced")
        wait_until(client.stopped.is_set, what="the replaced client to stop")
        control(r, 1, "reconnect")
        client = wa.client(count=2)
        assert client.jid is not None and client.jid.User == BUSINESS  # the same device, resumed
        wait_state(r, 1, "connected")

        client.fire(TemporaryBanEv(Code=TemporaryBanEv.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600))
        banned = wait_state(r, 1, "banned")
        prefix, code, until = banned["reason"].split(":")
        assert (prefix, code) == ("temporary_ban", "sent_too_many_same_message")
        assert int(until.removeprefix("until=")) > contracts.now_ms() + 3500 * 1000
        control(r, 1, "reconnect")
        client = wa.client(count=3)
        wait_state(r, 1, "connected")

        client.fire(ClientOutdatedEv())
        wait_reason(r, 1, "outdated", "client_outdated")
        control(r, 1, "reconnect")
        wa.client(count=4)
        wait_state(r, 1, "connected")
    assert [s for s in states(r) if s[0] in ("replaced", "banned", "outdated")] == [
        ("replaced", "stream_replaced"), ("banned", banned["reason"]), ("outdated", "client_outdated")]


def test_logged_out_by_whatsapp_forgets_the_session_until_asked(r, wa, tmp_path):
    session = tmp_path / "sessions" / "1.sqlite3"
    with neonize_relay(r, wa, tmp_path):
        client = connect(r, wa)
        assert session.exists() and (tmp_path / "sessions" / "1.jid.json").exists()
        wa.devices.pop(client.name)  # whatsmeow deletes the device when WhatsApp logs it out
        client.fire(LoggedOutEv(OnConnect=False, Reason=LoggedOutEv.DESCRIPTOR.fields_by_name["Reason"]
                                .enum_type.values_by_name["MAIN_DEVICE_GONE"].number))
        gone = wait_reason(r, 1, "logged_out", "main_device_gone")
        assert "phone" not in gone
        wait_until(lambda: not session.exists(), what="the session file to be deleted")
        assert not (tmp_path / "sessions" / "1.jid.json").exists()
        assert len(wa.clients) == 1 and client.stopped.is_set(), "no new QR series until the panel asks"

        control(r, 1, "reconnect")
        fresh = wa.client(count=2)
        assert fresh.jid is None
        wait_qr(r, 1)


def test_a_pairing_error_fails_the_connector(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path) as relay:
        wait_qr(r, 1)
        wa.client().fire(PairStatusEv(Status=PairStatusEv.ERROR, Error="key mismatch"))
        wait_until(lambda: relay.exit_code.get("code") == 1, what="the relay to exit with an error")
    assert states(r)[-2:] == [("failed", "pair_error"), ("stopped", "transport_error")]


def test_a_connect_failure_fails_the_connector(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path) as relay:
        client = connect(r, wa)
        client.fire(ConnectFailureEv(Reason=10, Message="service unavailable"))
        wait_until(lambda: relay.exit_code.get("code") == 1, what="the relay to exit with an error")
    assert ("failed", "connect_failure:service_unavailable") in states(r)


def test_connect_errors_are_retried_with_backoff(r, wa, tmp_path):
    wa.connect_errors = 2  # as neonize without network: NeonizeError from connect()
    with neonize_relay(r, wa, tmp_path):
        wait_qr(r, 1)
        assert len(wa.clients) == 3
        assert all(c.stopped.is_set() for c in wa.clients[:2])
    assert states(r).count(("reconnecting", "connect_error")) >= 1


def test_a_restart_resumes_the_stored_device_without_a_qr_code(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path):
        first = connect(r, wa)
    clear_inbound(r, 1)
    with neonize_relay(r, wa, tmp_path):
        second = wa.client(count=2)
        assert wait_state(r, 1, "connected")["phone"] == BUSINESS
        assert second.name == first.name and second.uuid == "wb-1"
        assert (second.jid.User, second.jid.Device, second.jid.Server) == (BUSINESS, 7, "s.whatsapp.net")
        assert second.qr_shown == 0
    assert [s for s, _ in states(r)] == ["connecting", "connecting", "connected", "stopped"]
    assert states(r)[1] == ("connecting", "resuming")


# -- inbound ---------------------------------------------------------------------------------------------------


def test_messages_and_receipts_reach_the_relay(r, wa, tmp_path):
    """What each event becomes is tested without a transport (tests/test_wa_messages.py); here, that the
    transport maps with what it knows (its own number, its data dir) and hands the results over."""
    digest = wa.upload(PNG)
    lead = make_jid(LEAD)
    with neonize_relay(r, wa, tmp_path):
        client = connect(r, wa)
        assert client.fire(message_event(E.Message(conversation="Oi"), "T1"))
        assert client.fire(message_event(E.Message(imageMessage=E.ImageMessage(
            fileSHA256=digest, fileLength=len(PNG), mimetype="image/png", directPath=f"/v/t62/{digest.hex()}")),
            "IMG"))
        assert client.fire(message_event(E.Message(conversation="nota"), "NT1", sender=make_jid(BUSINESS),
                                         chat=make_jid(BUSINESS), from_me=True))
        assert client.fire(message_event(E.Message(conversation="no grupo"), "GR1",
                                         chat=make_jid("120363000000000001", "g.us"), group=True))
        assert client.fire(ReceiptEv(MessageSource=MessageSource(Chat=lead, Sender=lead), MessageIDs=["3EB0A"],
                                     Timestamp=1_760_000_000, Type=ReceiptEv.READ))
        got = inbound(r)
        [receipt] = events(r, 1, "receipt")
    assert sorted(got) == ["IMG", "T1"], "no note to the number itself, no group (off by default)"
    assert (got["T1"].instance_id, got["T1"].type, got["T1"].text, got["T1"].phone) == (1, "text", "Oi", LEAD)
    assert media_path(tmp_path, got["IMG"].media.sha256).read_bytes() == PNG, "stored in the relay's data dir"
    assert (receipt.status, receipt.wa_ids) == ("read", ["3EB0A"])


def test_groups_are_accepted_when_enabled(r, wa, tmp_path, settings_env):
    settings_env(WORKBENCH_WA_ACCEPT_GROUPS="1")
    with neonize_relay(r, wa, tmp_path):
        client = connect(r, wa)
        client.fire(message_event(E.Message(conversation="no grupo"), "GR1",
                                  chat=make_jid("120363000000000001", "g.us"), group=True))
        [message] = events(r, 1, "message")
    assert (message.chat_jid, message.sender_jid, message.phone) == (
        "120363000000000001@g.us", LEAD_JID, LEAD)


# -- outbound --------------------------------------------------------------------------------------------------


def test_sends_of_each_type_go_out_from_stored_bytes_with_typing(r, wa, tmp_path):
    refs = {
        "image": store_media(tmp_path, PNG, "image/png", "foto.png"),
        "audio": store_media(tmp_path, OGG, "audio/ogg; codecs=opus", "voz.ogg"),
        "video": store_media(tmp_path, MP4, "video/mp4"),
        "document": store_media(tmp_path, PDF, "application/pdf", "dir/proposta.pdf"),
    }
    relay_options = {"typing_ms_per_char": 1, "typing_max_ms": 1}
    with neonize_relay(r, wa, tmp_path, relay_options=relay_options):
        connect(r, wa)
        send_command(r, 1, 1, "Olá! Como posso ajudar?")
        send_command(r, 1, 2, "sobre isso", quoted_id="3EB0LEAD")
        send_command(r, 1, 3, "nossa loja", type="image", media=refs["image"])
        send_command(r, 1, 4, None, type="audio", media=refs["audio"])
        send_command(r, 1, 5, "tour", type="video", media=refs["video"])
        send_command(r, 1, 6, "a proposta", type="document", media=refs["document"])
        by_id = wait_until(lambda: len(a := acks(r, 1)) == 6 and a, what="six acks")
    assert all(ack.ok for [ack] in by_id.values()), by_id
    sent = {x["id"]: x for x in wa.sent}
    messages = [sent[by_id[n][0].wa_id]["message"] for n in range(1, 7)]
    assert all(sent[by_id[n][0].wa_id]["to"] == LEAD_JID for n in range(1, 7))
    assert messages[0].conversation == "Olá! Como posso ajudar?"
    assert (messages[1].extendedTextMessage.text, messages[1].extendedTextMessage.contextInfo.stanzaID) == (
        "sobre isso", "3EB0LEAD")
    assert messages[2].imageMessage.caption == "nossa loja"
    assert messages[2].imageMessage.fileSHA256 == hashlib.sha256(PNG).digest()
    audio, video = messages[3].audioMessage, messages[4].videoMessage
    assert (audio.PTT, audio.mimetype, audio.seconds) == (True, "audio/ogg; codecs=opus", 3), "a voice note"
    assert (video.caption, video.mimetype, video.seconds) == ("tour", "video/mp4", 2)
    for media, data in ((audio, OGG), (video, MP4)):
        assert (media.fileSHA256, media.fileLength) == (hashlib.sha256(data).digest(), len(data))
        assert media.URL and media.directPath and len(media.mediaKey) == 32 and media.fileEncSHA256
        assert wa.blobs[media.fileSHA256] == data, "uploaded to WhatsApp's media servers"
    assert not video.JPEGThumbnail, "no thumbnail without a video decoder"
    document = messages[5].documentMessage
    assert (document.fileName, document.mimetype, document.caption) == ("proposta.pdf", "application/pdf",
                                                                        "a proposta")
    assert wa.uploads == [(PNG, MediaType.MediaImage), (OGG, MediaType.MediaAudio), (MP4, MediaType.MediaVideo),
                          (PDF, MediaType.MediaDocument)], "media went to neonize as bytes from the store"
    presences = [state for to, state in wa.chat_presences if to == LEAD_JID]
    assert presences[:2] == [ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresence.CHAT_PRESENCE_PAUSED]
    assert presences.count(ChatPresence.CHAT_PRESENCE_COMPOSING) == 5, "typing for each message with text"


def test_no_misleading_ffmpeg_warning_at_connect(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no ffmpeg/ffprobe, whatever this machine has
    assert shutil.which("ffmpeg") is None
    monkeypatch.setattr(neonize_ffmpeg, "_ffmpeg_checked", False)
    with caplog.at_level(logging.WARNING):
        assert neonize_ffmpeg.check_ffmpeg_available() is False  # what neonize's connect() runs first
    assert caplog.records == [], "audio and video are built without ffmpeg (connector/wa_outbound.py)"


def test_polls_go_out_as_single_choice_polls_and_outside_2_to_12_options_as_their_fallback(r, wa, tmp_path):
    def poll(outbox_id: int, options: list[str]) -> OutboundCommand:
        fallback = "Qual horário?\n\n" + "\n".join(f"{i}. {o}" for i, o in enumerate(options, start=1))
        return OutboundCommand(outbox_id=outbox_id, instance_id=1, to_phone=LEAD, type="poll", text="Qual horário?",
                               poll_options=options, fallback_text=fallback)

    twelve = [f"{h}h" for h in range(8, 20)]
    commands = [poll(1, ["9h", "14h", "*18h*"]), poll(2, twelve), poll(3, ["9h"]), poll(4, [*twelve, "20h"]),
                poll(5, ["9h", "9h"])]
    with neonize_relay(r, wa, tmp_path):
        connect(r, wa)
        for command in commands:
            r.xadd(contracts.OUT_STREAM.format(1), contracts.encode(command))
        by_id = wait_until(lambda: len(a := acks(r, 1)) == 5 and a, what="five acks")
    assert all(ack.ok for [ack] in by_id.values()), by_id
    sent = {x["id"]: x["message"] for x in wa.sent}
    first, second = (sent[by_id[n][0].wa_id].pollCreationMessage for n in (1, 2))
    assert (first.name, [o.optionName for o in first.options], first.selectableOptionsCount) == (
        "Qual horário?", ["9h", "14h", "*18h*"], 1)
    assert [o.optionName for o in second.options] == twelve
    for n in (3, 4, 5):  # one option, thirteen, or two alike: WhatsApp takes no such poll
        assert sent[by_id[n][0].wa_id].conversation == commands[n - 1].fallback_text
    kept = {n: r.get(contracts.POLL_OPTIONS_KEY.format(1, by_id[n][0].wa_id)) for n in range(1, 6)}
    assert json.loads(kept[1]) == ["9h", "14h", "*18h*"] and json.loads(kept[2]) == twelve
    assert kept[3] is kept[4] is kept[5] is None
    assert 0 < r.ttl(contracts.POLL_OPTIONS_KEY.format(1, by_id[1][0].wa_id))


def test_a_vote_on_a_sent_poll_arrives_as_the_chosen_label(r, wa, tmp_path):
    command = OutboundCommand(outbox_id=1, instance_id=1, to_phone=LEAD, type="poll", text="Qual horário?",
                              poll_options=["Manhã", "Tarde"], fallback_text="Qual horário?\n\n1. Manhã\n2. Tarde")
    with neonize_relay(r, wa, tmp_path) as relay:
        client = connect(r, wa)
        poll_id = relay.transport.send(command)
        assert client.fire(message_event(wa.poll_vote(poll_id, ["Tarde"]), "V1"))
        assert client.fire(message_event(wa.poll_vote(poll_id, []), "V2"))  # the lead took the vote back
        got = inbound(r)
    assert sorted(got) == ["V1"], "a withdrawn vote is not a message"
    vote = got["V1"]
    assert (vote.type, vote.text, vote.quoted_id, vote.phone, vote.raw["poll_vote"]) == (
        "text", "Tarde", poll_id, LEAD, True)


def test_send_errors_are_classified(r, wa, tmp_path):
    command = OutboundCommand(outbox_id=1, instance_id=1, to_phone=LEAD, text="oi")
    with neonize_relay(r, wa, tmp_path) as relay:
        client = connect(r, wa)
        transport = relay.transport
        wa.send_errors = [
            SendMessageError("timed out waiting for message send response"),
            SendMessageError("server returned error 479"),
            SendMessageError("websocket not connected"),
            RuntimeError("unexpected"),
        ]
        with pytest.raises(SendUncertainError):
            transport.send(command)
        with pytest.raises(SendError):
            transport.send(command)
        with pytest.raises(NotConnectedError):
            transport.send(command)
        with pytest.raises(SendUncertainError):
            transport.send(command)
        with pytest.raises(SendError):
            transport.send(command.model_copy(update={"to_phone": "12"}))
        with pytest.raises(SendError):
            transport.send(command.model_copy(update={"text": ""}))
        assert transport.send(command).startswith("3EB0")
        client.fire(DisconnectedEv(status=True))
        wait_state(r, 1, "reconnecting")
        with pytest.raises(NotConnectedError):
            transport.send(command)
    assert len(wa.sent) == 1


def test_mark_read_and_presence(r, wa, tmp_path):
    with neonize_relay(r, wa, tmp_path) as relay:
        control(r, 1, "mark_read", phone=LEAD, wa_ids=["3EB0OLD"])  # not connected yet: dropped, not queued
        wait_until(lambda: r.llen(contracts.CONTROL_LIST.format(1)) == 0, what="the relay took the command")
        connect(r, wa)
        wait_until(lambda: wa.presences == [Presence.AVAILABLE], what="presence after connecting")
        control(r, 1, "mark_read", phone=LEAD, wa_ids=["3EB0A", "3EB0B"])
        wait_until(lambda: wa.reads, what="the read receipt")
        relay.transport.set_typing(LEAD, True)
    assert wa.reads == [{"ids": ["3EB0A", "3EB0B"], "chat": LEAD_JID, "sender": LEAD_JID,
                         "receipt": ReceiptType.READ}]
    assert wa.chat_presences == [(LEAD_JID, ChatPresence.CHAT_PRESENCE_COMPOSING)]


def test_read_receipts_taken_together_go_out_as_one_per_chat_in_order(r, wa, tmp_path):
    other = "5511977770002"
    with neonize_relay(r, wa, tmp_path) as relay:
        connect(r, wa)
        relay.carry_out([ControlCommand(action=action, **fields).model_dump_json().encode() for action, fields in [
            ("mark_read", {"phone": LEAD, "wa_ids": ["3EB0A"]}),
            ("mark_read", {"phone": other, "wa_ids": ["3EB0X"]}),
            ("mark_read", {"phone": LEAD, "wa_ids": ["3EB0B", "3EB0C"]}),
            ("mark_read", {"phone": LEAD}),  # nothing to mark: ignored
        ]] + [b"{not json"])
    assert [(read["chat"], read["ids"]) for read in wa.reads] == [
        (LEAD_JID, ["3EB0A", "3EB0B", "3EB0C"]), (f"{other}@s.whatsapp.net", ["3EB0X"])]


def test_logout_unlinks_the_device_and_deletes_the_session(r, wa, tmp_path):
    session = tmp_path / "sessions" / "1.sqlite3"
    with neonize_relay(r, wa, tmp_path):
        client = connect(r, wa)
        assert session.exists()
        wa.qr_gate.clear()  # hold the next client before it creates a new store, to look at the old one
        control(r, 1, "logout")
        fresh = wa.client(count=2)
        assert wa.logouts == [client.name]
        assert client.stopped.is_set()
        assert not session.exists() and not (tmp_path / "sessions" / "1.jid.json").exists()
        assert fresh.jid is None
        wa.qr_gate.set()
        shown = wait_qr(r, 1)
        assert "phone" not in shown
    assert ("logged_out", "logout") in states(r)


class _Killed(BaseException):
    """Stands in for SIGKILL: unwinds the sending thread past every ``except Exception``."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_send_cut_off_after_its_claim_is_failed_not_sent_twice(r, wa, tmp_path):
    relay_options = {"typing_ms_per_char": 1, "typing_max_ms": 1}
    with neonize_relay(r, wa, tmp_path, relay_options=relay_options):
        connect(r, wa)
        wa.send_errors = [_Killed()]  # the process dies inside the send: after the claim, nothing known sent
        send_command(r, 1, 1, "interrompida")
        wait_until(lambda: read_claims(tmp_path, 1).get(1) == "sending", what="the claim")
        wait_until(lambda: not wa.send_errors, what="the send to be cut off")
    assert wa.sent == []

    with neonize_relay(r, wa, tmp_path, relay_options=relay_options):
        wait_state(r, 1, "connected")  # the stored device, resumed
        [ack] = wait_until(lambda: acks(r, 1).get(1), what="the ack of the cut-off command")
        assert (ack.ok, ack.error) == (False, INTERRUPTED)
        send_command(r, 1, 2, "depois")
        wait_until(lambda: acks(r, 1).get(2), what="the next command's ack")
    assert [x["message"].conversation for x in wa.sent] == ["depois"], "the cut-off message never went out"
