"""The inbound path: connector stream -> drain job -> PostgreSQL, idempotent and in order."""

from __future__ import annotations

from rq import Queue
from sqlalchemy import func, select

from connector.contracts import (
    CONTROL_LIST,
    DRAIN_QUEUED,
    IN_FAILED_STREAM,
    INBOUND_QUEUE,
    OUT_STREAM,
    ControlCommand,
    Receipt,
    SendAck,
    StateChange,
    decode_outbound,
    drain_unit,
    encode,
    now_ms,
    wake_inbound_drain,
)
from engine.worker.inbound import apply_events
from tests.factories import (
    contact_lane,
    inbound,
    inbox_with_one_conversation,
    lane_stream,
    make_actor,
    make_instance,
    make_workspace,
    publish,
    run_jobs,
)
from tests.sql_count import statements_run
from tests.test_connector_support import round_trips
from workbench.services import conversations
from workbench.services.conversation_ref import ConversationRef
from workbench.services.outbox import Draft, queue_messages
from workbench.services.workspace_settings import save_setting
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation, Instance, Message, Outbox


def _messages(instance_id: int) -> list[Message]:
    with session_scope() as s:
        return list(s.scalars(select(Message).where(Message.instance_id == instance_id).order_by(Message.id)))


def test_message_creates_contact_and_conversation(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Quero saber o preço", push_name="Ana"))
    run_jobs()
    with session_scope() as s:
        contact = s.scalars(select(Contact)).one()
        conv = s.scalars(select(Conversation)).one()
        assert (contact.phone, contact.push_name, contact.workspace_id) == ("5511999990001", "Ana", ws)
        assert conv.unread_count == 1 and conv.status == "open"
        assert conv.last_message_preview == "Quero saber o preço"
    assert [m.text for m in _messages(inst)] == ["Quero saber o preço"]
    assert r.xlen(lane_stream(inst)) == 0  # drained entries are removed


def test_same_whatsapp_id_twice_is_one_row(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    event = inbound(inst, wa_id="DUP1")
    publish(event, event)
    run_jobs()
    publish(event)  # redelivered after a reconnect, in a later batch
    run_jobs()
    assert len(_messages(inst)) == 1
    with session_scope() as s:
        assert s.scalar(select(Conversation.unread_count)) == 1


def test_messages_keep_arrival_order_per_conversation(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    texts = [f"m{i}" for i in range(50)]
    # timestamps deliberately not increasing: arrival order decides, not the phone's clock
    publish(*[inbound(inst, phone=f"55119{i % 3}", text=t, timestamp_ms=now_ms() - i) for i, t in enumerate(texts)])
    run_jobs()
    for p in range(3):
        stored = [m.text for m in _messages(inst) if m.conversation_id == _conv_of(f"55119{p}")]
        assert stored == [t for i, t in enumerate(texts) if i % 3 == p]


def _conv_of(phone: str) -> int:
    with session_scope() as s:
        return s.scalar(select(Conversation.id).join(Contact, Contact.id == Conversation.contact_id)
                        .where(Contact.phone == phone))


def test_hostile_text_is_stored_verbatim(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    big = "ç" * 65536
    weird = "**negrito** <script>alert(1)</script> [x](http://e.vil) :red[oi] $x^2$ \u202eRTL 👩‍👩‍👧"
    publish(inbound(inst, text=big), inbound(inst, text=weird), inbound(inst, text="a\x00b"),
            inbound(inst, text="x" * 70000))
    run_jobs()
    stored = _messages(inst)
    assert stored[0].text == big and "truncated" not in stored[0].data
    assert stored[1].text == weird
    assert stored[2].text == "a\ufffdb" and stored[2].data["nul_replaced"] is True
    assert len(stored[3].text) == 65536 and stored[3].data["truncated"] is True


def test_unsupported_types_are_stored_with_their_type(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    first = inbound(inst, text="original", wa_id="T1")
    publish(first,
            inbound(inst, type="sticker", text=None),
            inbound(inst, type="location", text=None, raw={"lat": -23.5, "lng": -46.6}),
            inbound(inst, type="poll", text="Qual horário?"),
            inbound(inst, type="reaction", text="👍", target_id="T1"),
            inbound(inst, type="edit", text="corrigido", target_id="T1"),
            inbound(inst, type="revoke", text=None, target_id="T1"))
    run_jobs()
    stored = _messages(inst)
    assert [m.type for m in stored] == ["text", "sticker", "location", "poll", "reaction", "edit", "revoke"]
    assert stored[0].data["edited_text"] == "corrigido" and stored[0].data["revoked"] is True
    assert stored[0].data["reaction"] == "👍"
    with session_scope() as s:
        assert s.scalar(select(Conversation.unread_count)) == 4  # reactions/edits/revokes add no badge


def test_malformed_event_is_kept_aside_and_others_go_on(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    r.xadd(lane_stream(inst), {"e": '{"kind": "message", "instance_id": 1}'})
    publish(inbound(inst, text="depois"))
    run_jobs()
    assert [m.text for m in _messages(inst)] == ["depois"]
    assert r.xlen(f"wb:in-failed:{inst}") == 1


def test_failing_event_is_retried_without_blocking_other_contacts(engine, r, monkeypatch):
    import engine.worker.inbound as inbound_mod

    ws = make_workspace()
    inst = make_instance(ws)
    real = inbound_mod._store_message
    calls = {"n": 0}

    def flaky(session, instance, event, applied, *rest):
        if event.text == "quebra" and calls["n"] < 2:  # the batch and its one-by-one retry
            calls["n"] += 1
            raise ValueError("transient failure")
        return real(session, instance, event, applied, *rest)

    monkeypatch.setattr(inbound_mod, "_store_message", flaky)
    publish(inbound(inst, phone="551101", text="quebra"), inbound(inst, phone="551101", text="seguinte"),
            inbound(inst, phone="551102", text="outro contato"))
    run_jobs()
    assert [m.text for m in _messages(inst)] == ["outro contato"]  # 551101 waits, in order
    lane = contact_lane(inst, "551101")
    r.delete(f"wb:drain:{inst}:{lane}")

    wake_inbound_drain(r, inst, lane)
    run_jobs()
    assert [m.text for m in _messages(inst)] == ["outro contato", "quebra", "seguinte"]


def test_agent_reply_goes_to_outbox_and_stream_then_acks_and_receipts(engine, r):
    inst, agent, conv_id = inbox_with_one_conversation()
    message_id = conversations.send_text(agent, conv_id, "Oi, Maria! Como posso ajudar?")
    entries = r.xrange(OUT_STREAM.format(inst))
    command = decode_outbound(entries[0][1])
    assert command.text == "Oi, Maria! Como posso ajudar?" and command.to_phone == "5511999990001"
    with session_scope() as s:
        assert s.get(Message, message_id).status == "pending"
        assert s.get(Outbox, command.outbox_id).status == "pending"
        assert s.get(Conversation, conv_id).bot_paused  # an agent reply pauses the bot
    publish(SendAck(instance_id=inst, outbox_id=command.outbox_id, ok=True, wa_id="OUT1", timestamp_ms=now_ms()))
    publish(Receipt(instance_id=inst, wa_ids=["OUT1"], status="delivered", timestamp_ms=now_ms()))
    run_jobs()
    with session_scope() as s:
        assert (s.get(Message, message_id).status, s.get(Message, message_id).wa_id) == ("delivered", "OUT1")
        assert s.get(Outbox, command.outbox_id).status == "sent"
    publish(Receipt(instance_id=inst, wa_ids=["OUT1"], status="read", timestamp_ms=now_ms()),
            Receipt(instance_id=inst, wa_ids=["OUT1"], status="delivered", timestamp_ms=now_ms()))
    run_jobs()
    with session_scope() as s:
        assert s.get(Message, message_id).status == "read"  # a late 'delivered' never goes backwards


def test_a_batch_of_acks_and_receipts_is_stored_in_one_statement_each(engine, r):
    inst, agent, conv_id = inbox_with_one_conversation()
    ids = [conversations.send_text(agent, conv_id, f"mensagem {n}") for n in range(3)]
    commands = [decode_outbound(fields) for _, fields in r.xrange(OUT_STREAM.format(inst))]
    at = now_ms()
    publish(SendAck(instance_id=inst, outbox_id=commands[0].outbox_id, ok=True, wa_id="OUT1", timestamp_ms=at),
            SendAck(instance_id=inst, outbox_id=commands[1].outbox_id, ok=True, wa_id="OUT2", timestamp_ms=at),
            Receipt(instance_id=inst, wa_ids=["OUT2", "OUT1"], status="read", timestamp_ms=at + 2),
            Receipt(instance_id=inst, wa_ids=["OUT1"], status="delivered", timestamp_ms=at + 1),
            SendAck(instance_id=inst, outbox_id=commands[2].outbox_id, ok=False, error="número inválido",
                    timestamp_ms=at),
            SendAck(instance_id=inst, outbox_id=commands[1].outbox_id, ok=True, wa_id="OTHER", timestamp_ms=at),
            Receipt(instance_id=inst, wa_ids=["OUT3"], status="delivered", timestamp_ms=at))
    with statements_run() as run:
        run_jobs()
    statements = [s for s in run if "UPDATE outbox" in s or "UPDATE messages SET status" in s]
    assert len(statements) == 3, "the acks, then one per receipt status"
    with session_scope() as s:
        stored = [s.get(Message, i) for i in ids]
        assert [(m.status, m.wa_id) for m in stored] == [("read", "OUT1"), ("read", "OUT2"), ("failed", None)]
        assert stored[2].error == "número inválido"
        assert [s.get(Outbox, c.outbox_id).status for c in commands] == ["sent", "sent", "failed"]


def test_a_receipt_that_names_no_message_changes_nothing_and_spoils_nothing(engine, r):
    """A receipt with an empty id list (a network may send one) is a no-op: the acks, receipts and messages of its
    batch are stored as if it were not there (it once failed the batch's transaction, so every try of it)."""
    inst, agent, conv_id = inbox_with_one_conversation()
    message_id = conversations.send_text(agent, conv_id, "Oi!")
    command = decode_outbound(r.xrange(OUT_STREAM.format(inst))[0][1])
    publish(SendAck(instance_id=inst, outbox_id=command.outbox_id, ok=True, wa_id="OUT1", timestamp_ms=now_ms()),
            Receipt(instance_id=inst, wa_ids=[], status="read", timestamp_ms=now_ms()),
            Receipt(instance_id=inst, wa_ids=["OUT1"], status="delivered", timestamp_ms=now_ms()),
            inbound(inst, "5511999990001", "ainda aí?"))
    run_jobs()
    with session_scope() as s:
        assert (s.get(Message, message_id).status, s.get(Message, message_id).wa_id) == ("delivered", "OUT1")
    assert [m.text for m in _messages(inst) if m.direction == "in"][-1] == "ainda aí?"
    assert not r.xlen(IN_FAILED_STREAM.format(inst))


def test_our_message_echoed_from_the_phone_after_its_ack_in_one_batch_is_a_duplicate(engine, r, caplog):
    inst, agent, conv_id = inbox_with_one_conversation()
    message_id = conversations.send_text(agent, conv_id, "Oi, Maria!")
    command = decode_outbound(r.xrange(OUT_STREAM.format(inst))[0][1])
    publish(SendAck(instance_id=inst, outbox_id=command.outbox_id, ok=True, wa_id="OUT1", timestamp_ms=now_ms(),
                    chat="5511999990001@s.whatsapp.net"),
            inbound(inst, text="Oi, Maria!", wa_id="OUT1", from_me=True))
    run_jobs()
    assert [(m.id, m.wa_id) for m in _messages(inst) if m.direction == "out"] == [(message_id, "OUT1")]
    assert r.xlen(lane_stream(inst)) == 0 and not r.exists(f"wb:in-failed:{inst}")
    assert "one at a time" not in caplog.text, "the batch stored its ack before the echo, and did not fail"


def test_outbound_messages_update_the_conversation_and_only_humans_set_first_reply(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Resposta automática"})
    publish(inbound(inst, text="oi"))
    run_jobs()
    conv_id = conversations.list_conversations(admin)[0]["id"]
    with session_scope() as s:
        conv = s.get(Conversation, conv_id)
        assert (conv.last_message_direction, conv.last_message_preview) == ("out", "Resposta automática")
        assert conv.first_reply_at is None, "the bot's answer is not a first response"
    conversations.send_text(admin, conv_id, "Olá, sou a Ana")
    with session_scope() as s:
        first = s.get(Conversation, conv_id).first_reply_at
        assert first is not None and s.get(Conversation, conv_id).last_message_preview == "Olá, sou a Ana"
    conversations.send_text(admin, conv_id, "Posso ajudar?")
    with session_scope() as s:
        assert s.get(Conversation, conv_id).first_reply_at == first, "kept from the first human reply"
        assert [m.text for m in s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))] \
            == ["Resposta automática", "Olá, sou a Ana", "Posso ajudar?"]
        assert s.scalar(select(func.count()).select_from(Outbox)) == 3


def test_messages_queued_together_keep_their_order_and_each_outbox_row_sends_its_own(engine, r):
    """A funnel step's messages go in one statement: each takes its id in the drafts' order, and each outbox row
    (what the connector sends, and what the sweep publishes again after a Redis loss) carries its own message."""
    inst, agent, conv_id = inbox_with_one_conversation()
    with session_scope() as s:
        ref = ConversationRef.of(s.get(Conversation, conv_id), s.get(Contact, s.get(Conversation, conv_id).contact_id))
        queued = queue_messages(s, ref, [Draft("Olá!"), Draft("Escolha:", "poll", poll=("Escolha:", ["A", "B"])),
                                         Draft("sem digitar", typing=False)])
    with session_scope() as s:
        assert [message_id for message_id, _ in queued] == sorted(message_id for message_id, _ in queued)
        for message_id, command in queued:
            row = s.get(Outbox, command.outbox_id)
            assert row.message_id == message_id
            assert (row.command.get("text"), row.command["typing"]) == (command.text, command.typing)
        assert [s.get(Message, message_id).text for message_id, _ in queued] == ["Olá!", "Escolha:", "sem digitar"]
        assert [c.poll_options for _, c in queued] == [None, ["A", "B"], None]
        assert [c.typing for _, c in queued] == [True, True, False]
        assert s.get(Conversation, conv_id).last_message_preview == "sem digitar"
        assert queue_messages(s, ref, []) == []


def test_a_batchs_bot_replies_are_written_together_and_each_contact_keeps_its_order(engine, r):
    """The bot's replies to a batch's messages are held and written in one statement (``db.hold_rows``), except
    that a contact's next message is stored only after the reply to its previous one: each chat reads in order,
    every command carries its own outbox row, and each conversation ends on its own last message."""
    ws = make_workspace()
    inst = make_instance(ws)
    save_setting(make_actor(ws, "admin"), "default_reply", {"enabled": True, "mode": "every", "text": "Já vamos!"})
    ana, bia, caio = "5511999990001", "5511999990002", "5511999990003"
    events = [inbound(inst, phone=ana, text="oi", wa_id="A1"), inbound(inst, phone=bia, text="olá", wa_id="B1"),
              inbound(inst, phone=caio, text="bom dia", wa_id="C1"), inbound(inst, phone=ana, text="e aí?", wa_id="A2")]
    with statements_run() as executed, session_scope() as s:
        applied = apply_events(s, inst, events)
    assert sum("INSERT INTO outbox" in sql for sql in executed) == 2, "the first three replies, then Ana's second"
    commands = applied.effects.commands
    assert sorted(c.to_phone for c in commands) == [ana, ana, bia, caio]
    with session_scope() as s:
        for command in commands:
            row = s.get(Outbox, command.outbox_id)
            message = s.get(Message, row.message_id)
            contact = s.get(Contact, s.get(Conversation, message.conversation_id).contact_id)
            assert (contact.phone, message.text, row.command["to_phone"]) == (command.to_phone, "Já vamos!",
                                                                                command.to_phone)
        chat = [(m.direction, m.text) for m in _messages(inst)
                if s.get(Contact, s.get(Conversation, m.conversation_id).contact_id).phone == ana]
        assert chat == [("in", "oi"), ("out", "Já vamos!"), ("in", "e aí?"), ("out", "Já vamos!")]
        for conversation in s.scalars(select(Conversation)):
            assert (conversation.last_message_direction, conversation.last_message_preview) == ("out", "Já vamos!")


def test_state_change_updates_instance(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(StateChange(instance_id=inst, state="connected", phone="5511888887777:12@s.whatsapp.net",
                        push_name="Loja", timestamp_ms=now_ms()))
    run_jobs()
    with session_scope() as s:
        row = s.get(Instance, inst)
        assert (row.state, row.phone, row.push_name) == ("connected", "5511888887777", "Loja")


def test_default_reply_once_per_day(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "once_24h", "text": "Já respondemos!"})
    publish(inbound(inst, text="1"), inbound(inst, text="2"))
    run_jobs()
    assert r.xlen(OUT_STREAM.format(inst)) == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Outbox)) == 1


def _read_receipts(r, instance_id: int) -> list[ControlCommand]:
    return [ControlCommand.model_validate_json(raw) for raw in r.lrange(CONTROL_LIST.format(instance_id), 0, -1)]


def test_messages_the_bot_answers_get_a_read_receipt_others_do_not(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    publish(inbound(inst, text="ninguém responde", wa_id="W1"))
    run_jobs()
    assert _read_receipts(r, inst) == [], "left to the agents: stays unread for the contact"
    save_setting(admin, "default_reply", {"enabled": True, "mode": "once_24h", "text": "Já respondemos!"})
    publish(inbound(inst, text="agora sim", wa_id="W2"), inbound(inst, text="de novo", wa_id="W3"))
    run_jobs()
    assert [(c.action, c.phone, c.wa_ids) for c in _read_receipts(r, inst)] == [
        ("mark_read", "5511999990001", ["W2"])], "W3 got no answer (once a day), so no blue ticks"


def test_a_batchs_read_receipts_are_one_command_per_chat(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Já respondemos!"})
    other = "5511999990002"
    publish(inbound(inst, text="oi", wa_id="W1"), inbound(inst, phone=other, text="olá", wa_id="W2"),
            inbound(inst, text="tem alguém?", wa_id="W3"))
    run_jobs()
    assert [(c.action, c.phone, c.wa_ids) for c in _read_receipts(r, inst)] == [
        ("mark_read", "5511999990001", ["W1", "W3"]), ("mark_read", other, ["W2"])]


def test_read_receipts_can_be_switched_off(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "Já respondemos!"})
    save_setting(admin, "bot", {"read_receipts": False})
    publish(inbound(inst, text="oi", wa_id="W1"))
    run_jobs()
    assert r.xlen(OUT_STREAM.format(inst)) == 1 and _read_receipts(r, inst) == []


def test_a_busy_drain_adopts_lanes_whose_job_waits(engine, r, monkeypatch):
    from engine.worker import jobs
    from workbench.store.config import get_settings

    monkeypatch.setenv("WORKBENCH_DRAIN_LINGER_MS", "300")
    get_settings.cache_clear()
    ws = make_workspace()
    first, second = make_instance(ws, "A"), make_instance(ws, "B")
    publish(inbound(first, text="para A"), inbound(second, text="para B"))
    lane = contact_lane(first)  # the same contact on both numbers: the same lane
    r.zadd("wb:drain:queued", {f"{second}:{lane}": 1})  # B's job has waited long: every worker is busy
    totals = jobs.drain_inbound(first, lane)  # one job, run here as a worker would
    assert totals["lanes"] == 2 and totals["stored"] == 2
    assert sorted(m.text for m in _messages(first) + _messages(second)) == ["para A", "para B"]
    run_jobs()  # B's own job finds nothing left to do
    assert len(_messages(second)) == 1
    get_settings.cache_clear()


def test_a_drain_that_postgresql_refused_is_tried_again_at_a_steady_pace(r):
    """Retries never back off beyond a couple of seconds, and last through a long outage: a back-off to a minute
    answered leads up to a minute after PostgreSQL was back, and their answers lost the race with the timers."""
    wake_inbound_drain(r, 42)
    [job] = Queue(INBOUND_QUEUE, connection=r).get_jobs()
    assert max(job.retry_intervals) <= 2
    assert sum(job.retry_intervals[min(k, len(job.retry_intervals) - 1)] for k in range(job.retries_left)) >= 180


def test_waking_a_drain_takes_two_round_trips_and_its_job_runs(engine, r, monkeypatch):
    """The flag, then the job with its "queued since" mark in one transaction: a paced flow wakes a drain for nearly
    every event (the message, its reply's ack, the receipts), so each round trip more is one more per event."""
    inst = make_instance(make_workspace())
    event = inbound(inst, text="olá")
    lane = contact_lane(inst, event.phone)
    r.xadd(lane_stream(inst, event.phone), encode(event))
    Queue(INBOUND_QUEUE, connection=r).get_redis_server_version()  # RQ asks for it once per client
    with round_trips(monkeypatch, this_thread_only=True) as writes:
        wake_inbound_drain(r, inst, lane)
        wake_inbound_drain(r, inst, lane)  # the flag is up: nothing more to queue
    assert len(writes) == 3, "SET NX and one pipeline for the job, then one SET NX"
    [job] = Queue(INBOUND_QUEUE, connection=r).get_jobs()
    assert job.args == (inst, lane) and job.retries_left
    assert r.zscore(DRAIN_QUEUED, drain_unit(inst, lane)) is not None
    run_jobs()
    assert [m.text for m in _messages(inst)] == ["olá"]
