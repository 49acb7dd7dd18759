"""Inbound lanes: the contacts of one number drained by several workers at once, each conversation in order and by
one drain at a time (engine/worker/jobs.py, docs/architecture.md "Message paths and their guarantees").

Real PostgreSQL and Redis; "a worker" is ``drain_inbound`` called as RQ calls it, in a thread of its own.
"""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError
from rq import Queue
from sqlalchemy import func, select

import engine.worker.inbound as inbound_mod
from connector import contracts
from connector.contracts import (
    DRAIN_FLAG,
    DRAIN_JOB,
    IN_STREAM,
    INBOUND_QUEUE,
    OUT_STREAM,
    Receipt,
    SendAck,
    StateChange,
    drain_unit,
    encode,
    inbound_lanes,
    lane_of,
    now_ms,
)
from engine.worker import jobs
from engine.worker.inbound import LostDrain, apply_events
from tests.factories import contact_lane, inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from workbench.services.workspace_settings import save_setting
from workbench.store.config import load_settings
from workbench.store.db import session_scope
from workbench.store.models import Contact, Conversation, Message, Outbox


def _two_contacts_in_two_lanes(instance_id: int) -> tuple[str, str]:
    """Two phones whose conversations land in different lanes of the number."""
    phones = [f"55119876500{n:02d}" for n in range(40)]
    first = phones[0]
    second = next(p for p in phones if contact_lane(instance_id, p) != contact_lane(instance_id, first))
    return first, second


def _texts(instance_id: int, phone: str) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Message.text).join(Conversation, Conversation.id == Message.conversation_id)
                              .join(Contact, Contact.id == Conversation.contact_id)
                              .where(Message.instance_id == instance_id, Contact.phone == phone,
                                     Message.direction == "in").order_by(Message.id)))


def _replies(phone: str) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Outbox).where(Outbox.command["to_phone"].astext == phone))


def _bot_answers_every_message(ws: int) -> None:
    save_setting(make_actor(ws, "admin"), "default_reply", {"enabled": True, "mode": "every", "text": "Recebido!"})


def test_a_slow_contact_holds_back_only_its_own_lane(engine, r, monkeypatch):
    """Two contacts of one number, interleaved, one of them slow: two workers drain their lanes at once, the fast
    contact is stored and answered while the slow one's transaction is still open (both lanes commit in parallel),
    and each contact's messages are stored and answered in order, once."""
    ws = make_workspace()
    inst = make_instance(ws)
    _bot_answers_every_message(ws)
    slow, fast = _two_contacts_in_two_lanes(inst)
    inside, release = threading.Event(), threading.Event()
    real = inbound_mod._store_message

    def store(session, instance, event, applied, *rest):
        if event.text == "lento 1":  # a long step inside the drain's transaction, holding its lane's lock
            inside.set()
            assert release.wait(60)
        return real(session, instance, event, applied, *rest)

    monkeypatch.setattr(inbound_mod, "_store_message", store)
    publish(inbound(inst, phone=slow, text="lento 1"), inbound(inst, phone=fast, text="rápido 1"),
            inbound(inst, phone=slow, text="lento 2"), inbound(inst, phone=fast, text="rápido 2"))
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(jobs.drain_inbound(inst, contact_lane(inst, slow))))
    worker.start()
    try:
        assert inside.wait(60), "the first worker is inside the slow contact's transaction"
        second = jobs.drain_inbound(inst, contact_lane(inst, fast))  # the second worker, meanwhile
        assert second["stored"] == 2
        assert _texts(inst, fast) == ["rápido 1", "rápido 2"] and _replies(fast) == 2
        assert _texts(inst, slow) == [] and _replies(slow) == 0, "still in the slow transaction"
    finally:
        release.set()
        worker.join()
    assert first["stored"] == 2
    assert _texts(inst, slow) == ["lento 1", "lento 2"] and _replies(slow) == 2
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 4
        assert s.scalar(select(func.count()).select_from(Outbox)) == 4, "each message answered once"
    assert r.xlen(OUT_STREAM.format(inst)) == 4


def test_a_drain_that_lost_its_lane_cannot_commit_and_other_lanes_are_not_fenced(engine):
    ws = make_workspace()
    inst = make_instance(ws)
    a, b = _two_contacts_in_two_lanes(inst)
    lane_a, lane_b = contact_lane(inst, a), contact_lane(inst, b)
    stale = jobs._claim(inst, lane_a)
    other = jobs._claim(inst, lane_b)
    assert jobs._claim(inst, lane_a) == stale + 1  # the next drain took lane a
    with pytest.raises(LostDrain), session_scope() as s:
        apply_events(s, inst, [inbound(inst, phone=a, text="tarde demais")], stale, lane_a)
    with session_scope() as s:
        apply_events(s, inst, [inbound(inst, phone=b, text="outra fila")], other, lane_b)
    assert _texts(inst, a) == [] and _texts(inst, b) == ["outra fila"]
    assert jobs._claim(inst + 1000, 0) is None, "a number PostgreSQL does not know has no lanes"


def test_events_an_older_version_queued_are_drained_before_the_lanes(engine, r):
    """An upgrade with a backlog: the single stream of before lanes goes first, in order, then the lanes."""
    ws = make_workspace()
    inst = make_instance(ws)
    a, b = _two_contacts_in_two_lanes(inst)
    for event in (inbound(inst, phone=a, text="antiga 1"), inbound(inst, phone=b, text="antiga 2"),
                  inbound(inst, phone=a, text="antiga 3")):
        r.xadd(IN_STREAM.format(inst), encode(event))  # as an older connector appended them
    r.set(DRAIN_FLAG.format(inst), "1", ex=300)
    Queue(INBOUND_QUEUE, connection=r).enqueue(DRAIN_JOB, inst)  # the job it queued: the instance id alone
    publish(inbound(inst, phone=a, text="nova"))  # this version's connector, before any worker ran
    assert jobs.drain_inbound(inst, contact_lane(inst, a)) == {"busy": 1}, "the lane waits for the old stream"
    assert _texts(inst, a) == []
    run_jobs()
    assert _texts(inst, a) == ["antiga 1", "antiga 3", "nova"] and _texts(inst, b) == ["antiga 2"]
    assert not r.exists(IN_STREAM.format(inst)), "the old stream is removed once empty"
    assert contracts.inbound_backlog(r, inst) == 0
    assert jobs.drain_inbound(inst) == {"busy": 1}, "a late job of the old kind finds nothing to do"


def test_the_sweep_drains_an_old_stream_whose_job_was_lost_and_then_its_lanes(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    r.xadd(IN_STREAM.format(inst), encode(inbound(inst, text="antiga")))
    r.set(DRAIN_FLAG.format(inst), "1", ex=300)  # an older version's flag, whose job Redis lost
    publish(inbound(inst, text="nova"))
    lane = contact_lane(inst)
    Queue(INBOUND_QUEUE, connection=r).empty()  # the lane's job was lost too; its flag stays up
    assert r.exists(DRAIN_FLAG.format(drain_unit(inst, lane)))
    assert contracts.inbound_backlog(r, inst) == 2
    assert jobs.sweep()["drains_woken"] == 2
    run_jobs()
    assert _texts(inst, "5511999990001") == ["antiga", "nova"]
    assert contracts.inbound_backlog(r, inst) == 0 and not r.exists(IN_STREAM.format(inst))


def test_the_lane_count_changes_only_while_the_lanes_are_empty(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    assert inbound_lanes(r, inst, 4) == 4  # a connector starts: the count is recorded
    publish(inbound(inst, text="na fila"))
    assert inbound_lanes(r, inst, 8) == 4, "a contact's queued events keep their lane"
    assert inbound_lanes(r, inst) == 4, "other writers read the recorded count"
    run_jobs()
    assert inbound_lanes(r, inst, 8) == 8
    publish(inbound(inst, text="depois"))
    run_jobs()
    assert _texts(inst, "5511999990001") == ["na fila", "depois"]


def test_a_message_its_ack_and_its_receipts_share_a_lane_and_states_go_to_lane_0():
    phone = "5511987650011"
    lanes = 8
    message = inbound(1, phone=phone)
    ack = SendAck(instance_id=1, outbox_id=1, ok=True, wa_id="X", timestamp_ms=now_ms(),
                  chat=f"{phone}@s.whatsapp.net")
    receipt = Receipt(instance_id=1, wa_ids=["X"], status="read", timestamp_ms=now_ms(), chat=phone)
    assert lane_of(message, lanes) == lane_of(ack, lanes) == lane_of(receipt, lanes)
    assert lane_of(StateChange(instance_id=1, state="connected", timestamp_ms=now_ms()), lanes) == 0
    assert lane_of(Receipt(instance_id=1, wa_ids=["X"], status="read", timestamp_ms=now_ms()), lanes) == 0
    assert {lane_of(inbound(1, phone=f"55119876500{n:02d}"), lanes) for n in range(40)} == set(range(lanes))
    assert lane_of(message, 1) == 0
    assert lane_of(contracts.decode_inbound(encode(message)), lanes) == lane_of(
        {"kind": "message", "phone": phone}, lanes), "a spooled line goes where the event would"


@pytest.mark.parametrize("value", ["0", "65", "quatro"])
def test_a_bad_lane_setting_is_refused_clearly(value):
    with pytest.raises(ValidationError, match="inbound_lanes"):
        load_settings({"WORKBENCH_INBOUND_LANES": value})


def test_units_name_a_lane_or_the_stream_of_before_lanes():
    assert drain_unit(7, 2) == "7:2" and drain_unit(7, None) == "7"
    assert contracts.parse_unit("7:2") == (7, 2) and contracts.parse_unit(b"7") == (7, None)
    assert [contracts.parse_unit(bad) for bad in ("queued", "7:", "7:x", ":2", "7:2:1")] == [None] * 5
