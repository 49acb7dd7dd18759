"""WhatsApp messages in and out without a transport: ``connector.wa_inbound`` and ``connector.wa_outbound``.

Events and messages are real neonize protobufs; the client they need (LIDs, media, votes, uploads) is the fake
of ``tests/fake_neonize.py``, not connected to anything. Redis (the options of sent polls) and the media store
are real. ``tests/test_neonize_transport.py`` runs the same modules behind a relay.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import struct
from typing import Any

import pytest
import redis
from neonize.events import MessageEv, ReceiptEv
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E
from neonize.utils import ffmpeg as neonize_ffmpeg
from neonize.utils.enum import MediaType

from connector import contracts
from connector.contracts import MediaRef, OutboundCommand
from connector.media import media_path, store_media
from connector.transport import NotConnectedError, SendError, SendUncertainError
from connector.wa_inbound import InboundMapper
from connector.wa_outbound import build_message, recipient, remember_poll, send_failure
from tests.fake_neonize import FakeClient, FakeWhatsApp, make_jid
from tests.test_connector_support import BUSINESS, LEAD

LEAD_JID = f"{LEAD}@s.whatsapp.net"



def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_page(packets: list[bytes], granule: int, sequence: int, flags: int) -> bytes:
    lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
    page = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 0x5EED, sequence, 0, len(lacing))
    page += lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg_opus(seconds: int) -> bytes:
    """A WhatsApp voice note: Ogg/Opus (RFC 7845), mono, ``seconds`` of silent 20 ms CELT frames, one page
    per second."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 0, 48000, 0, 0)  # version, mono, no pre-skip, 48 kHz
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    pages = [_ogg_page([head], 0, 0, 0x02), _ogg_page([tags], 0, 1, 0)]
    for second in range(1, seconds + 1):
        pages.append(_ogg_page([b"\xf8\xff\xfe"] * 50, second * 48000, second + 1, 0x04 if second == seconds else 0))
    return b"".join(pages)


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4(seconds: int, handler: bytes = b"vide") -> bytes:
    """An ISO-BMFF (MP4/M4A) file of ``seconds``: one track (``vide`` or ``soun``) with no samples."""
    scale, length = 1000, seconds * 1000
    matrix = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(b"mvhd", struct.pack(">I4I", 0, 0, 0, scale, length), struct.pack(">ih10x", 0x10000, 0x100), matrix,
                bytes(24), struct.pack(">I", 2))
    tkhd = _box(b"tkhd", struct.pack(">I3I4xI8x4h", 3, 0, 0, 1, length, 0, 0, 0x100 * (handler == b"soun"), 0),
                matrix, struct.pack(">2I", 16 << 16, 16 << 16))
    mdhd = _box(b"mdhd", struct.pack(">I4IHH", 0, 0, 0, scale, length, 0x55C4, 0))
    hdlr = _box(b"hdlr", struct.pack(">II4s12x", 0, 0, handler), b"test\x00")
    moov = _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr)))
    return _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2mp41") + moov + _box(b"mdat", bytes(64))


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
OGG = ogg_opus(3)
MP4 = mp4(2)
PDF = b"%PDF-1.4\n" + bytes(300)


def message_event(message: E.Message, wa_id: str, *, sender: JID | None = None, chat: JID | None = None,
                  from_me: bool = False, sender_alt: JID | None = None, recipient_alt: JID | None = None,
                  group: bool = False, push_name: str = "Ana", timestamp_ms: int | None = None) -> MessageEv:
    """A real neonize ``MessageEv`` (``Neonize_pb2.Message``) as whatsmeow delivers it."""
    sender = sender or make_jid(LEAD)
    source = MessageSource(Chat=chat or sender, Sender=sender, IsFromMe=from_me, IsGroup=group)
    if sender_alt is not None:
        source.SenderAlt.CopyFrom(sender_alt)
    if recipient_alt is not None:
        source.RecipientAlt.CopyFrom(recipient_alt)
    info = MessageInfo(ID=wa_id, Pushname=push_name, Timestamp=timestamp_ms or contracts.now_ms(),
                       MessageSource=source)
    return MessageEv(Info=info, Message=message)



@pytest.fixture
def wa() -> FakeWhatsApp:
    """WhatsApp's side, faked: it keeps media, poll secrets and LIDs."""
    return FakeWhatsApp()


@pytest.fixture
def client(wa, tmp_path) -> FakeClient:
    """A client of the fake WhatsApp, never connected: mapping and building only ask it questions."""
    return wa.factory(str(tmp_path / "sessions" / "1.sqlite3"), uuid="wb-1")


@pytest.fixture
def mapper(r, tmp_path) -> InboundMapper:
    """Instance 1's mapper: polls' options in the test Redis, media under ``tmp_path``, groups ignored."""
    return InboundMapper(1, redis_client=r, data_dir=tmp_path, accept_groups=False)


def mapped(mapper: InboundMapper, client: FakeClient, events: dict[str, MessageEv],
           own: JID | None = None) -> dict[str, Any]:
    """The messages the events become, by WhatsApp id (events the product ignores are left out)."""
    return {wa_id: m for wa_id, event in events.items() if (m := mapper.message(client, event, own)) is not None}


def command(**fields: Any) -> OutboundCommand:
    return OutboundCommand(**{"outbox_id": 1, "instance_id": 1, "to_phone": LEAD, **fields})


# -- inbound ---------------------------------------------------------------------------------------------------


def test_message_types_map_to_the_neutral_contract(mapper, client):
    poll = E.PollCreationMessage(name="Qual horário?", selectableOptionsCount=1,
                                 options=[E.PollCreationMessage.Option(optionName=x) for x in ("9h", "14h")])
    edit = E.ProtocolMessage(type=E.ProtocolMessage.MESSAGE_EDIT, key=MessageKey(ID="T1", fromMe=False),
                             editedMessage=E.Message(conversation="Oi, tudo bem?"))
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Bia\nTEL:+5511970000000\nEND:VCARD"
    cases = {
        "T1": E.Message(conversation="Oi"),
        "T2": E.Message(extendedTextMessage=E.ExtendedTextMessage(
            text="respondendo", contextInfo=E.ContextInfo(stanzaID="3EB0QUOTED", participant=LEAD_JID))),
        "T3": E.Message(ephemeralMessage=E.FutureProofMessage(message=E.Message(conversation="some em 24h"))),
        "L1": E.Message(locationMessage=E.LocationMessage(degreesLatitude=-23.561, degreesLongitude=-46.656,
                                                          name="Loja", address="Av. Paulista, 1000")),
        "L2": E.Message(liveLocationMessage=E.LiveLocationMessage(degreesLatitude=1.5, degreesLongitude=2.5)),
        "C1": E.Message(contactMessage=E.ContactMessage(displayName="Bia", vcard=vcard)),
        "C2": E.Message(contactsArrayMessage=E.ContactsArrayMessage(
            displayName="2 contatos", contacts=[E.ContactMessage(displayName="Bia", vcard=vcard),
                                                E.ContactMessage(displayName="Caio", vcard="BEGIN:VCARD")])),
        "R1": E.Message(reactionMessage=E.ReactionMessage(key=MessageKey(ID="3EB0SENT", fromMe=True), text="👍")),
        "R2": E.Message(reactionMessage=E.ReactionMessage(key=MessageKey(ID="3EB0SENT", fromMe=True), text="")),
        "E1": E.Message(protocolMessage=edit),
        "E2": E.Message(editedMessage=E.FutureProofMessage(message=E.Message(protocolMessage=edit))),
        "X1": E.Message(protocolMessage=E.ProtocolMessage(type=E.ProtocolMessage.REVOKE, key=MessageKey(ID="T2"))),
        "P1": E.Message(pollCreationMessageV3=poll),
        "U1": E.Message(groupInviteMessage=E.GroupInviteMessage(groupName="Promoções")),
        # not messages: protocol housekeeping and key exchanges
        "S1": E.Message(protocolMessage=E.ProtocolMessage(type=E.ProtocolMessage.HISTORY_SYNC_NOTIFICATION)),
        "S2": E.Message(senderKeyDistributionMessage=E.SenderKeyDistributionMessage(groupID="x")),
        "S3": E.Message(messageContextInfo=E.MessageContextInfo(messageSecret=b"k" * 32)),
    }
    at = contracts.now_ms() - 5000
    got = mapped(mapper, client, {wa_id: message_event(m, wa_id, timestamp_ms=at) for wa_id, m in cases.items()})
    assert sorted(got) == sorted(k for k in cases if not k.startswith("S"))
    text = got["T1"]
    assert (text.instance_id, text.type, text.text, text.phone, text.chat_jid, text.sender_jid, text.push_name,
            text.from_me, text.raw) == (1, "text", "Oi", LEAD, LEAD_JID, LEAD_JID, "Ana", False,
                                        {"wa_type": "conversation"})
    assert text.timestamp_ms == at
    assert (got["T2"].text, got["T2"].quoted_id) == ("respondendo", "3EB0QUOTED")
    assert (got["T3"].type, got["T3"].text) == ("text", "some em 24h")
    location = got["L1"]
    assert (location.type, location.text) == ("location", None)
    assert (location.raw["latitude"], location.raw["longitude"], location.raw["name"]) == (
        pytest.approx(-23.561), pytest.approx(-46.656), "Loja")
    assert got["L2"].type == "location" and got["L2"].raw["live"] is True
    assert (got["C1"].type, got["C1"].raw["vcard"], got["C1"].raw["display_name"]) == ("contact", vcard, "Bia")
    assert [c["display_name"] for c in got["C2"].raw["contacts"]] == ["Bia", "Caio"]
    assert (got["R1"].type, got["R1"].text, got["R1"].target_id) == ("reaction", "👍", "3EB0SENT")
    assert (got["R2"].text, got["R2"].raw["removed"]) == (None, True)
    for wa_id in ("E1", "E2"):
        assert (got[wa_id].type, got[wa_id].target_id, got[wa_id].text) == ("edit", "T1", "Oi, tudo bem?")
    assert (got["X1"].type, got["X1"].target_id, got["X1"].text) == ("revoke", "T2", None)
    assert (got["P1"].type, got["P1"].text, got["P1"].raw["options"]) == ("poll", "Qual horário?", ["9h", "14h"])
    assert (got["U1"].type, got["U1"].raw["type"]) == ("unsupported", "groupInviteMessage")


def media_message(wa: FakeWhatsApp, field: str, data: bytes | None, **fields: Any) -> E.Message:
    """A media message whose file is on the fake WhatsApp (``data`` None: expired), declaring its length and
    direct path as WhatsApp's do unless ``fields`` say otherwise."""
    digest = wa.upload(data) if data is not None else hashlib.sha256(b"expired").digest()
    fields = {"fileLength": len(data or b""), "directPath": f"/v/t62.7118-24/{digest.hex()}.enc", **fields}
    return E.Message(**{field: getattr(E, field[0].upper() + field[1:])(fileSHA256=digest, **fields)})


def test_media_is_downloaded_into_the_store(mapper, client, wa, tmp_path):
    def media(field: str, data: bytes | None, **fields: Any) -> E.Message:
        return media_message(wa, field, data, **fields)

    cases = {
        "IMG": media("imageMessage", PNG, mimetype="image/png", caption="olha a foto"),
        "PTT": media("audioMessage", OGG, mimetype="audio/ogg; codecs=opus", PTT=True, seconds=4),
        "VID": media("videoMessage", MP4, mimetype="video/mp4", caption="vídeo"),
        "DOC": media("documentMessage", PDF, mimetype="application/pdf", fileName="../../proposta.pdf",
                     caption="segue"),
        "STK": media("stickerMessage", PNG[:100], mimetype="image/webp"),
        "OLD": media("imageMessage", None, mimetype="image/jpeg", fileLength=5000),
        "BIG": media("videoMessage", MP4, mimetype="video/mp4", fileLength=10**12),
    }
    got = mapped(mapper, client, {wa_id: message_event(m, wa_id) for wa_id, m in cases.items()})

    def stored(wa_id: str, data: bytes) -> None:
        ref = got[wa_id].media
        assert ref is not None and ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size == len(data)
        assert media_path(tmp_path, ref.sha256).read_bytes() == data

    stored("IMG", PNG)
    assert (got["IMG"].type, got["IMG"].text, got["IMG"].media.mime) == ("image", "olha a foto", "image/png")
    stored("PTT", OGG)
    assert (got["PTT"].type, got["PTT"].raw["ptt"], got["PTT"].raw["seconds"]) == ("audio", True, 4)
    stored("VID", MP4)
    assert (got["VID"].type, got["VID"].text) == ("video", "vídeo")
    stored("DOC", PDF)
    assert (got["DOC"].type, got["DOC"].text, got["DOC"].media.filename, got["DOC"].media.mime) == (
        "document", "segue", "proposta.pdf", "application/pdf")
    stored("STK", PNG[:100])
    assert got["STK"].type == "sticker"
    assert (got["OLD"].type, got["OLD"].media, got["OLD"].raw["media_error"]) == ("image", None, "download_failed")
    assert (got["BIG"].media, got["BIG"].raw["media_error"]) == (None, "too_large")


def test_media_downloads_trust_neither_the_declared_length_nor_the_links(mapper, client, wa, tmp_path,
                                                                       settings_env):
    """The sender writes every field of a media message: what is fetched, and how much is kept, is bounded."""
    settings_env(WORKBENCH_MEDIA_MAX_MB="1")
    big = PDF + bytes(2 * 1024 * 1024)
    wa_path = "/v/t62.7118-24/19_2.enc?ccb=11-4&oh=01_Q5&oe=68&_nc_sid=5e03e0"
    cases = {
        # no declared length: nothing would bound whatsmeow's download, so it is not made
        "NOLEN": media_message(wa, "documentMessage", PDF, fileLength=0, mimetype="application/pdf"),
        # a small declared length and a big body: refused by its real size, nothing stored
        "LIAR": media_message(wa, "documentMessage", big, fileLength=len(PDF), mimetype="application/pdf"),
        # links into the connector's own network: the URL is dropped (the direct path goes to WhatsApp's hosts)
        "URL": media_message(wa, "imageMessage", PNG, URL="http://127.0.0.1:6379/", directPath=wa_path),
        "USERINFO": media_message(wa, "imageMessage", PNG, URL="https://mmg.whatsapp.net@evil.example/x",
                                  directPath=wa_path),
        # a direct path that would change the host whatsmeow joins it to: not downloaded at all
        "HOST": media_message(wa, "stickerMessage", PNG, directPath="@evil.example/x"),
        "OK": media_message(wa, "imageMessage", PNG, URL=f"https://mmg.whatsapp.net{wa_path}", directPath=wa_path),
    }
    got = mapped(mapper, client, {wa_id: message_event(m, wa_id) for wa_id, m in cases.items()})
    assert {wa_id: (m.media is not None, m.raw.get("media_error")) for wa_id, m in got.items()} == {
        "NOLEN": (False, "unknown_size"), "LIAR": (False, "too_large"), "URL": (True, None),
        "USERINFO": (True, None), "HOST": (False, "download_failed"), "OK": (True, None)}
    assert not media_path(tmp_path, hashlib.sha256(big).hexdigest()).exists()
    # What reached download_any: the media field alone, with only WhatsApp's links left in it.
    requests = [(field.name, value.URL, value.directPath) for m in wa.downloads for field, value in m.ListFields()]
    assert [(name, url) for name, url, _ in requests] == [
        ("documentMessage", ""), ("imageMessage", ""), ("imageMessage", ""),
        ("imageMessage", f"https://mmg.whatsapp.net{wa_path}")]
    assert all(path.startswith("/v/t62.7118-24/") for _, _, path in requests)


def test_own_phone_messages_broadcasts_groups_and_lids(r, mapper, client, wa, tmp_path):
    lid_with_alt, lid_known, lid_unknown = "201234567890123", "209876543210987", "205555555555555"
    wa.lids[lid_known] = make_jid("5511970000003")
    group = make_jid("120363000000000001", "g.us")
    text = E.Message(conversation="oi")
    events = {
        "ME1": message_event(text, "ME1", sender=make_jid(BUSINESS, device=3), chat=make_jid(LEAD), from_me=True,
                             push_name="Loja"),
        "ST1": message_event(text, "ST1", chat=make_jid("status", "broadcast")),
        "GR1": message_event(text, "GR1", chat=group, group=True),
        "NT1": message_event(text, "NT1", sender=make_jid(BUSINESS), chat=make_jid(BUSINESS), from_me=True),
        "LD1": message_event(text, "LD1", sender=make_jid(lid_with_alt, "lid"), sender_alt=make_jid("5511970000002")),
        "LD2": message_event(text, "LD2", sender=make_jid(lid_known, "lid")),
        "LD3": message_event(text, "LD3", sender=make_jid(lid_unknown, "lid")),
        "ME2": message_event(text, "ME2", sender=make_jid(BUSINESS), chat=make_jid(lid_with_alt, "lid"),
                             recipient_alt=make_jid("5511970000002"), from_me=True),
    }
    own = make_jid(BUSINESS, device=7)  # the number's own device, as get_me() reports it
    got = mapped(mapper, client, events, own)
    assert sorted(got) == ["LD1", "LD2", "LD3", "ME1", "ME2"]
    mine = got["ME1"]
    assert (mine.from_me, mine.phone, mine.chat_jid, mine.sender_jid, mine.push_name) == (
        True, LEAD, LEAD_JID, f"{BUSINESS}@s.whatsapp.net", None)
    assert (got["LD1"].phone, got["LD1"].chat_jid) == ("5511970000002", "5511970000002@s.whatsapp.net")
    assert got["LD2"].phone == "5511970000003"
    assert (got["LD3"].phone, got["LD3"].raw["lid"]) == (lid_unknown, True)
    assert (got["ME2"].phone, got["ME2"].from_me) == ("5511970000002", True), "one person, one contact"
    assert "NT1" in mapped(mapper, client, events, own=None), "a note to self needs to know who we are"

    groups = InboundMapper(1, redis_client=r, data_dir=tmp_path, accept_groups=True)
    in_group = groups.message(client, events["GR1"])
    assert (in_group.chat_jid, in_group.sender_jid, in_group.phone) == ("120363000000000001@g.us", LEAD_JID, LEAD)


def test_receipts_become_neutral_receipts(mapper):
    def receipt(kind: int, ids: list[str], from_me: bool = False) -> ReceiptEv:
        lead = make_jid(LEAD)
        return ReceiptEv(MessageSource=MessageSource(Chat=lead, Sender=lead, IsFromMe=from_me), MessageIDs=ids,
                         Timestamp=1_760_000_000, Type=kind)

    got = [mapper.receipt(receipt(kind, ids)) for kind, ids in (
        (ReceiptEv.DELIVERED, ["3EB0A", "3EB0B"]), (ReceiptEv.READ, ["3EB0A"]), (ReceiptEv.PLAYED, ["3EB0C"]))]
    assert [(x.instance_id, x.status, x.wa_ids, x.timestamp_ms) for x in got] == [
        (1, "delivered", ["3EB0A", "3EB0B"], 1_760_000_000_000), (1, "read", ["3EB0A"], 1_760_000_000_000),
        (1, "read", ["3EB0C"], 1_760_000_000_000)]
    assert mapper.receipt(receipt(ReceiptEv.READ_SELF, ["3EB0D"])) is None, "a kind the product does not show"
    assert mapper.receipt(receipt(ReceiptEv.DELIVERED, ["3EB0E"], from_me=True)) is None, "our own devices'"
    assert mapper.receipt(receipt(ReceiptEv.READ, [])) is None


def test_votes_are_read_back_through_the_options_kept_for_the_poll(r, mapper, client, wa, tmp_path, caplog):
    options = ["Manhã", "Tarde"]
    to = recipient(LEAD)
    poll_id = client.send_message(to, build_message(client, command(type="poll", text="Qual horário?",
                                                                    poll_options=options), to, tmp_path)).ID
    other_id = client.send_message(to, build_message(client, command(type="poll", text="Outra?",
                                                                     poll_options=options), to, tmp_path)).ID
    remember_poll(r, 1, poll_id, options)
    assert 0 < r.ttl(contracts.POLL_OPTIONS_KEY.format(1, poll_id))
    unknown = wa.poll_vote(poll_id, ["Manhã"])
    unknown.pollUpdateMessage.pollCreationMessageKey.ID = "3EB0NEVERSENT"  # a poll from another device
    votes = {
        "V1": wa.poll_vote(poll_id, ["Tarde"]),
        "V2": wa.poll_vote(poll_id, []),  # the lead took the vote back
        "V3": wa.poll_vote(poll_id, ["Tarde"], secret=b"x" * 32),  # not made with the poll's key
        "V4": wa.poll_vote(poll_id, ["Noite"]),  # an option the poll never had
        "V5": unknown,
        "V6": wa.poll_vote(other_id, ["Manhã"]),  # its options were never kept (or expired)
    }
    got = mapped(mapper, client, {wa_id: message_event(m, wa_id) for wa_id, m in votes.items()})
    assert sorted(got) == ["V1", "V3", "V4", "V5", "V6"], "a withdrawn vote is not a message"
    vote = got["V1"]
    assert (vote.type, vote.text, vote.quoted_id, vote.phone) == ("text", "Tarde", poll_id, LEAD)
    assert (vote.raw["poll_vote"], vote.raw["poll_id"]) == (True, poll_id)
    errors = {wa_id: (m.type, m.text, m.raw.get("poll_error"), m.quoted_id) for wa_id, m in got.items()
              if wa_id != "V1"}
    assert errors == {
        "V3": ("unsupported", None, "undecryptable", poll_id),
        "V4": ("unsupported", None, "unknown_option", poll_id),
        "V5": ("unsupported", None, "undecryptable", "3EB0NEVERSENT"),
        "V6": ("unsupported", None, "unknown_poll", other_id),
    }
    assert all(m.raw["type"] == "pollUpdateMessage" for wa_id, m in got.items() if wa_id != "V1")

    # Redis out of reach: the vote still arrives, unread, and the poll's options are lost, not the send
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    cut_off = InboundMapper(1, redis_client=down, data_dir=tmp_path, accept_groups=False)
    lost = cut_off.message(client, message_event(wa.poll_vote(poll_id, ["Tarde"]), "V7"))
    assert (lost.type, lost.raw["poll_error"]) == ("unsupported", "options_unavailable")
    with caplog.at_level(logging.WARNING):
        remember_poll(down, 1, other_id, options)
    assert "not kept" in caplog.text


# -- outbound --------------------------------------------------------------------------------------------------


def test_the_recipient_is_the_phone_or_an_accepted_group():
    assert recipient("+55 11 98000-0001") == make_jid(LEAD)
    group = "120363000000000001@g.us"
    assert recipient(LEAD, group) == make_jid(LEAD), "groups are off"
    assert recipient(LEAD, group, accept_groups=True) == make_jid("120363000000000001", "g.us")
    assert recipient(LEAD, "status@g.us", accept_groups=True) == make_jid(LEAD), "not a group id"
    with pytest.raises(SendError, match="not a phone number"):
        recipient("12")


def test_texts_quotes_polls_and_media_become_whatsapp_messages(client, wa, tmp_path):
    to = recipient(LEAD)

    def build(**fields: Any) -> E.Message:
        return build_message(client, command(**fields), to, tmp_path)

    assert build(text="Oi").conversation == "Oi"
    quoted = build(text="sobre isso", quoted_id="3EB0LEAD").extendedTextMessage
    assert (quoted.text, quoted.contextInfo.stanzaID, quoted.contextInfo.participant) == (
        "sobre isso", "3EB0LEAD", LEAD_JID)
    poll = build(type="poll", text="Qual horário?", poll_options=["9h", "14h"], quoted_id="3EB0LEAD")
    assert poll.messageContextInfo.messageSecret, "neonize's builder: the secret that opens the votes"
    poll = poll.pollCreationMessage
    assert (poll.name, [o.optionName for o in poll.options], poll.selectableOptionsCount) == (
        "Qual horário?", ["9h", "14h"], 1)
    assert poll.contextInfo.stanzaID == "3EB0LEAD"
    image = build(type="image", text="nossa loja", media=store_media(tmp_path, PNG, "image/png")).imageMessage
    assert (image.caption, image.fileSHA256) == ("nossa loja", hashlib.sha256(PNG).digest())
    pdf = store_media(tmp_path, PDF, "application/pdf")
    named = pdf.model_copy(update={"filename": "..\\dir/proposta.pdf"})
    document = build(type="document", text="a proposta", media=named, quoted_id="3EB0LEAD").documentMessage
    assert (document.fileName, document.title, document.mimetype, document.caption) == (
        "proposta.pdf", "proposta.pdf", "application/pdf", "a proposta"), "only a base name reaches the contact"
    assert document.contextInfo.stanzaID == "3EB0LEAD"
    assert build(type="document", media=pdf).documentMessage.fileName == "arquivo"
    assert wa.uploads == [(PNG, MediaType.MediaImage), (PDF, MediaType.MediaDocument), (PDF, MediaType.MediaDocument)]


def test_what_cannot_be_sent_is_refused_before_anything_is_uploaded(client, wa, tmp_path):
    (tmp_path / "secret.txt").write_text("not for leads")
    to = recipient(LEAD)
    refused = [
        (command(text=""), "without text"),
        (command(type="image"), "without media"),
        (command(type="image", media=MediaRef(sha256="0" * 64, mime="image/png", size=10)), "not in the store"),
    ]
    for name in ("../secret.txt", str(tmp_path / "secret.txt"), "https://example.com/x.png"):
        refused.append((command(type="image", media=MediaRef(sha256=name, mime="image/png", size=10)),
                        "not a sha256 digest"))
    for outbound, reason in refused:
        with pytest.raises(SendError, match=reason):
            build_message(client, outbound, to, tmp_path)
    assert wa.uploads == []


def test_audio_and_video_are_built_without_ffmpeg_and_with_0_s_when_the_duration_is_unreadable(
        client, wa, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no ffmpeg/ffprobe, whatever this machine has
    assert shutil.which("ffmpeg") is None and shutil.which("ffprobe") is None
    ffmpeg_calls: list[Any] = []
    monkeypatch.setattr(neonize_ffmpeg.FFmpeg, "__init__", lambda self, *args: ffmpeg_calls.append(args))
    truncated = OGG[:200]  # Ogg/Opus headers, then the audio pages cut off
    cases = [
        ("audio", OGG, "audio/ogg; codecs=opus", None, 3),  # a voice note
        ("audio", mp4(5, b"soun"), "audio/mp4", None, 5),  # an M4A: plain audio, not a voice note
        ("audio", b"OggS" + bytes(200), "audio/ogg; codecs=opus", None, 0),  # mutagen knows no such file
        ("audio", truncated, "audio/ogg", None, 0),
        ("video", MP4, "video/mp4", "tour", 2),
        ("video", b"\x00\x00\x00\x18ftypmp42" + bytes(200), "video/mp4", "sem moov", 0),  # mutagen raises
    ]
    built = []
    for kind, data, mime, caption, _ in cases:
        # the type a library item was given (store_media alone decides by content, where some of these are
        # ambiguous or unreadable on purpose)
        ref = store_media(tmp_path, data).model_copy(update={"mime": mime})
        outbound = command(type=kind, text=caption, media=ref)
        built.append(getattr(build_message(client, outbound, recipient(LEAD), tmp_path), f"{kind}Message"))
    assert [m.seconds for m in built] == [case[4] for case in cases]
    assert [m.mimetype for m in built] == [case[2] for case in cases]
    assert [m.PTT for m in built[:4]] == [True, False, True, True]
    assert [m.caption for m in built[4:]] == ["tour", "sem moov"]
    for message, (_, data, *_) in zip(built, cases, strict=True):
        assert (message.fileSHA256, message.fileLength) == (hashlib.sha256(data).digest(), len(data))
        assert message.URL and message.directPath and len(message.mediaKey) == 32 and message.fileEncSHA256
        assert wa.blobs[message.fileSHA256] == data, "uploaded to WhatsApp's media servers"
    assert not built[4].JPEGThumbnail, "no thumbnail without a video decoder"
    assert [media_type for _, media_type in wa.uploads] == [MediaType.MediaAudio] * 4 + [MediaType.MediaVideo] * 2
    assert ffmpeg_calls == []


@pytest.mark.parametrize(("error", "meaning"), [
    ("timed out waiting for message send response", SendUncertainError),
    ("failed to send message node: broken pipe", SendUncertainError),
    ("server returned error 479", SendError),
    ("websocket not connected", NotConnectedError),
    ("Client is nil", NotConnectedError),
])
def test_send_errors_say_whether_the_message_may_have_left(error, meaning):
    failure = send_failure(command(outbox_id=7), error)
    assert type(failure) is meaning
    assert str(failure) == f"outbox 7: {error}"
