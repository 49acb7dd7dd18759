"""Fuzzing inbound events from both transports down to the database.

- the sandbox: entries of a number's inbox on the simulated network, as ``SandboxTransport`` reads them;
- neonize: real neonize ``MessageEv`` protobufs through ``InboundMapper`` with the fake client's answers;
- the ``wb:in`` stream: whatever a stream entry holds, through ``decode_inbound``;
- and every event that decodes, stored by ``apply_events`` in a real transaction (the welcome funnels active, so
  the runtime answers fuzzed texts too).

An event is stored, ignored, or refused as ``failures.code.malformed`` (set aside at once, shown on the Falhas
page); nothing raises anything else. After each run the database is dumped and checked (``tests/fuzzing.py``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from neonize.events import MessageEv
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E
from pydantic import ValidationError

from connector.contracts import (
    MAX_TIMESTAMP_MS,
    InboundMessage,
    Receipt,
    SendAck,
    StateChange,
    decode_inbound,
    encode,
    now_ms,
)
from connector.sandbox import SandboxTransport, _Handed
from connector.wa_inbound import InboundMapper, to_ms
from engine.worker.inbound import apply_events
from tests import fuzzing
from tests.factories import inbound, make_instance, make_workspace
from tests.fake_neonize import FakeWhatsApp
from workbench.services import funnels, runs
from workbench.store.db import session_scope

NOW = now_ms()  # strategies draw times up to a fixed moment: Hypothesis replays a case exactly
LEAD = "5511987654321"
BUSINESS = "5511900000001"


class Collected:
    """A relay that keeps what a transport hands over (``connector.transport.TransportEvents``)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_message(self, message: InboundMessage) -> None:
        self.events.append(message)

    def on_receipt(self, receipt: Receipt) -> None:
        self.events.append(receipt)

    def on_events(self, events: list[InboundMessage | Receipt]) -> None:
        self.events.extend(events)

    def on_state(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_qr(self, *args: Any) -> None:
        pass

    def on_pair_code(self, *args: Any) -> None:
        pass


@pytest.fixture
def number(engine, r):
    """A sandbox number whose workspace has the example funnels published and active."""
    workspace = make_workspace()
    instance_id = make_instance(workspace)
    with session_scope() as session:
        funnels.install_examples(session, workspace)
    runs.clear_cache()
    return instance_id


def store(target: str, instance_id: int, event: Any) -> None:
    """Through the stream and into the database, as a drain does: encoded, decoded (or refused as malformed),
    applied in one transaction."""
    decoded, kind = fuzzing.refused(target, lambda: decode_inbound(encode(event)), ValidationError)
    if kind is None:
        with session_scope() as session:
            apply_events(session, instance_id, [decoded])


def assert_nothing_half_written() -> None:
    with session_scope() as session:
        assert fuzzing.broken_invariants(session.connection()) == {}


# -- the wb:in stream --------------------------------------------------------------------------------------------

def _event_dicts(instance_id: int) -> st.SearchStrategy[dict[str, Any]]:
    message = inbound(instance_id, phone=LEAD, media={"sha256": "0" * 64, "mime": "image/png", "size": 3},
                      quoted_id="Q1", target_id="T1", raw={"k": "v"}).model_dump(mode="json")
    seeds = [message,
             SendAck(instance_id=instance_id, outbox_id=1, ok=True, wa_id="W1", timestamp_ms=now_ms()).model_dump(),
             Receipt(instance_id=instance_id, wa_ids=["W1"], status="read", timestamp_ms=now_ms()).model_dump(),
             StateChange(instance_id=instance_id, state="connected", reason="r", phone=BUSINESS, push_name="Loja",
                         timestamp_ms=now_ms()).model_dump()]
    return st.sampled_from(seeds).flatmap(lambda seed: st.one_of(fuzzing.retexted(seed),
                                                                 fuzzing.mutated(seed, changes=2)))


# What WhatsApp sends (hex ids, digits, times up to now) with hostile texts everywhere; then up to two fields made
# hostile in ways the database cannot keep, so that most cases reach the database and the rest test the refusals.
WA_IDS = st.text("0123456789ABCDEF", min_size=1, max_size=32)
BAD_IDS = st.one_of(fuzzing.hostile_text, st.text(min_size=1, max_size=140), st.sampled_from(["", "x" * 128,
                                                                                               "x" * 129]))
DIGITS = st.text("0123456789", min_size=8, max_size=15)
ids = st.one_of(WA_IDS, WA_IDS, WA_IDS, BAD_IDS)
messages = fuzzing.some_fields(st.fixed_dictionaries({
    "kind": st.just("message"), "wa_id": WA_IDS, "chat_jid": DIGITS.map(lambda d: f"{d}@s.whatsapp.net"),
    "sender_jid": DIGITS.map(lambda d: f"{d}@s.whatsapp.net"), "quoted_id": st.none() | WA_IDS,
    "target_id": st.none() | WA_IDS, "phone": DIGITS, "push_name": st.none() | fuzzing.any_text,
    "timestamp_ms": st.integers(0, NOW), "text": st.none() | fuzzing.any_text, "from_me": st.booleans(),
    "type": st.sampled_from(["text", "image", "reaction", "edit", "revoke", "unsupported", "poll"]),
    "raw": st.dictionaries(fuzzing.any_text, fuzzing.json_values, max_size=3)}), {
    "wa_id": BAD_IDS, "chat_jid": BAD_IDS, "sender_jid": BAD_IDS, "quoted_id": BAD_IDS, "target_id": BAD_IDS,
    "phone": st.one_of(fuzzing.any_text, st.text("0123456789+-() ", max_size=40)), "timestamp_ms": fuzzing.big_ints})
"""Messages as a transport builds them, with hostile values."""


def test_stream_entries_are_stored_or_set_aside_as_malformed(number):
    with_number = messages.map(lambda m: {**m, "instance_id": number})

    @fuzzing.scaled(0.3)
    @given(event=st.one_of(_event_dicts(number), with_number, with_number, with_number),
           shape=st.sampled_from(["json", "json", "bytes", "other"]), junk=st.binary(max_size=40))
    @example(event={"kind": "message", "instance_id": 1, "wa_id": "W\x00", "chat_jid": "c", "sender_jid": "s",
                    "phone": "55", "timestamp_ms": 1, "type": "text"}, shape="json", junk=b"")
    @example(event={"kind": "message", "instance_id": 1, "wa_id": "W1", "chat_jid": "c", "sender_jid": "s",
                    "phone": "55", "timestamp_ms": 2**62, "type": "text"}, shape="json", junk=b"")
    @example(event={"kind": "ack", "instance_id": 1, "outbox_id": 2**64, "ok": True, "timestamp_ms": 1},
             shape="json", junk=b"")
    def one_entry(event, shape, junk):
        text = json.dumps(event)
        fields = {"json": {"e": text}, "bytes": {b"e": text.encode("utf-8", "surrogatepass") + junk},
                  "other": {b"x": junk}}[shape]
        decoded, kind = fuzzing.refused("wb:in entry", lambda: decode_inbound(fields), ValidationError)
        if kind is None:
            with session_scope() as session:
                apply_events(session, number, [decoded])

    one_entry()
    assert_nothing_half_written()


# -- the sandbox ---------------------------------------------------------------------------------------------------

def test_sandbox_inbox_entries_are_handed_over_or_dropped(number, r, tmp_path):
    transport = SandboxTransport(number, Collected(), redis_client=r, data_dir=tmp_path)
    seed = {"kind": "message", "lead": LEAD, "id": "3AB", "direction": "from_lead", "type": "text", "text": "oi",
            "media": None, "timestamp_ms": now_ms(), "quoted_id": None, "target_id": None, "push_name": "Ana",
            "raw": {}}
    receipt = {"kind": "receipt", "lead": LEAD, "status": "read", "wa_ids": ["3AB"], "timestamp_ms": now_ms()}
    as_entry = messages.map(lambda m: {**seed, **m, "id": m["wa_id"], "lead": m["phone"]})
    payloads = st.one_of(as_entry, as_entry, as_entry, st.sampled_from([seed, receipt]).flatmap(
        lambda p: fuzzing.mutated(p, changes=2)), fuzzing.json_values)

    @fuzzing.scaled(0.3)
    @given(payload=payloads, as_json=st.sampled_from([True, True, True, False]), junk=st.binary(max_size=20))
    @example(payload=[1], as_json=True, junk=b"")
    @example(payload={**seed, "media": "x"}, as_json=True, junk=b"")
    @example(payload={**seed, "raw": [[1, 2]]}, as_json=True, junk=b"")
    @example(payload={**seed, "id": "3A\ud800", "text": "\udfff"}, as_json=True, junk=b"")  # once never acked
    @example(payload={**seed, "lead": "55\ud80011987654321"}, as_json=True, junk=b"")
    @example(payload={**receipt, "wa_ids": []}, as_json=True, junk=b"")  # once failed its batch's transaction
    def one_entry(payload, as_json, junk):
        body = json.dumps(payload).encode("utf-8", "surrogatepass") if as_json else junk
        event = transport._event(b"1-1", {b"p": body})
        transport._acknowledge_now(BUSINESS, f"sandbox:inbox:{BUSINESS}",
                                   _Handed([b"1-1"], [event] if isinstance(event, InboundMessage) else []))
        fuzzing.count("sandbox inbox entry", None if event is not None else "dropped (logged)")
        if event is not None:
            store("sandbox event", number, event)

    one_entry()
    assert_nothing_half_written()


# -- neonize -------------------------------------------------------------------------------------------------------

# Protobuf strings are UTF-8: no lone surrogates reach the mapper.
texts = st.one_of(fuzzing.hostile_text.map(lambda x: x.encode("utf-8", "replace").decode()),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=60), st.just(""))


def _jid(user: str, server: str, device: int) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


jids = st.builds(_jid, user=st.one_of(*[DIGITS] * 8, texts),
                 server=st.sampled_from(["s.whatsapp.net", "s.whatsapp.net", "lid", "g.us", "broadcast", ""]),
                 device=st.integers(0, 99))
contents = st.one_of(
    texts.map(lambda x: E.Message(conversation=x)),
    st.builds(lambda x, q: E.Message(extendedTextMessage=E.ExtendedTextMessage(
        text=x, contextInfo=E.ContextInfo(stanzaID=q))), texts, texts),
    st.builds(lambda x, k: E.Message(reactionMessage=E.ReactionMessage(key=MessageKey(ID=k), text=x)), texts, texts),
    st.builds(lambda k, x, kind: E.Message(protocolMessage=E.ProtocolMessage(
        type=kind, key=MessageKey(ID=k), editedMessage=E.Message(conversation=x))), texts, texts,
        st.sampled_from([E.ProtocolMessage.REVOKE, E.ProtocolMessage.MESSAGE_EDIT,
                         E.ProtocolMessage.EPHEMERAL_SETTING])),
    st.builds(lambda n, a, lat: E.Message(locationMessage=E.LocationMessage(
        name=n, address=a, degreesLatitude=lat, degreesLongitude=-lat)), texts, texts,
        st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda n, v: E.Message(contactMessage=E.ContactMessage(displayName=n, vcard=v)), texts, texts),
    st.builds(lambda n, opts, k: E.Message(pollCreationMessageV3=E.PollCreationMessage(
        name=n, selectableOptionsCount=k, options=[E.PollCreationMessage.Option(optionName=o) for o in opts])),
        texts, st.lists(texts, max_size=4), st.integers(0, 2**31 - 1)),
    st.builds(lambda c, n, length, path: E.Message(documentMessage=E.DocumentMessage(
        caption=c, fileName=n, fileLength=length, directPath=path, mimetype="application/pdf")),
        texts, texts, st.integers(0, 2**64 - 1), st.sampled_from(["", "/v/x.enc", "//evil/x", "http://x"])),
    st.builds(lambda g: E.Message(groupInviteMessage=E.GroupInviteMessage(groupName=g)), texts),
    st.just(E.Message()),
)
"""Message contents of the kinds the mapper reads (and some it skips), with hostile text and numbers."""


@st.composite
def message_events(draw: st.DrawFn) -> MessageEv:
    sender = draw(jids)
    source = MessageSource(Chat=draw(st.one_of(st.just(sender), jids)), Sender=sender, IsFromMe=draw(st.booleans()),
                           IsGroup=draw(st.booleans()))
    if draw(st.booleans()):
        source.SenderAlt.CopyFrom(draw(jids))
    info = MessageInfo(ID=draw(st.one_of(*[WA_IDS] * 6, texts)), Pushname=draw(texts), MessageSource=source,
                       Timestamp=draw(st.one_of(st.integers(0, NOW), st.integers(-2**63, 2**63 - 1))))
    return MessageEv(Info=info, Message=draw(contents), IsViewOnce=draw(st.booleans()))


def test_neonize_messages_are_mapped_stored_or_set_aside(number, r, tmp_path):
    wa = FakeWhatsApp()
    client = wa.factory(str(tmp_path / "1.sqlite3"), uuid="wb-1")
    mapper = InboundMapper(number, redis_client=r, data_dir=tmp_path, accept_groups=True)

    @fuzzing.scaled(0.3)
    @given(event=message_events(), own=st.none() | jids)
    def one_event(event, own):
        message = mapper.message(client, event, own)
        fuzzing.count("neonize message", None if message is not None else "ignored (not a message)")
        if message is not None:
            store("neonize event", number, message)

    one_event()
    assert_nothing_half_written()


def test_a_neonize_time_past_the_year_9999_is_the_arrival_time():
    # it once went through as it was, and the workers set the message aside as malformed
    for timestamp in (2**62, 2**63 - 1, MAX_TIMESTAMP_MS + 1):
        assert NOW <= to_ms(timestamp) <= MAX_TIMESTAMP_MS
    assert to_ms(1_700_000_000) == 1_700_000_000_000 and to_ms(1_700_000_000_123) == 1_700_000_000_123
