"""Losing a part never loses a message: PostgreSQL down, Redis emptied, jobs lost."""

from __future__ import annotations

import json
import os
from datetime import timedelta

from rq import Queue
from sqlalchemy import func, select, text

from connector.claims import Claims, read_claims
from connector.contracts import INSTANCES_HASH, OUT_STREAM, STATUS_HASH, decode_outbound, inbound_backlog, now_ms
from connector.sandbox import SandboxNetwork
from engine.worker import jobs
from tests.factories import inbound, inbox_with_one_conversation, make_instance, make_workspace, publish, run_jobs
from tests.test_connector_support import BUSINESS, acks, pair, relay_thread, status, wait_until
from workbench.base.clock import now
from workbench.services import conversations
from workbench.store import db
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Conversation, Instance, Message, Outbox


def _texts() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Message.text).order_by(Message.id)))


def test_events_wait_in_redis_while_postgres_is_down(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/down")  # nothing listens
    get_settings.cache_clear()
    db.dispose_engines()
    publish(inbound(inst, text="primeira"), inbound(inst, text="segunda"))
    run_jobs()  # the drain job fails: connection refused
    assert inbound_backlog(r, inst) == 2
    monkeypatch.undo()
    get_settings.cache_clear()
    db.dispose_engines()
    assert os.environ["DATABASE_URL"] != "postgresql+psycopg://postgres@127.0.0.1:1/down"
    jobs.sweep()  # wakes a drain for every stream that still holds events
    run_jobs()
    assert _texts() == ["primeira", "segunda"]


def test_outbox_is_republished_after_redis_loses_everything(engine, r):
    inst, agent, conv_id = inbox_with_one_conversation()
    conversations.send_text(agent, conv_id, "resposta que não pode se perder")
    r.flushdb()  # Redis restarted without its data
    r.hset(STATUS_HASH.format(inst), "state", "connected")  # the connector came back
    with session_scope() as s:
        s.execute(Outbox.__table__.update().values(created_at=Outbox.created_at - timedelta(
            minutes=5), published_at=Outbox.published_at - timedelta(minutes=5)))
    result = jobs.sweep()
    assert result["republished"] == 1
    command = decode_outbound(r.xrange(OUT_STREAM.format(inst))[0][1])
    assert command.text == "resposta que não pode se perder"
    assert json.loads(r.hget(INSTANCES_HASH, str(inst)))["desired"] == "running"  # desired states mirrored again
    assert jobs.sweep()["republished"] == 0  # backoff: not re-published on every sweep


def test_sweep_does_not_republish_for_a_disconnected_number(engine, r):
    inst, agent, conv_id = inbox_with_one_conversation()
    conversations.send_text(agent, conv_id, "oi")
    r.delete(OUT_STREAM.format(inst))
    with session_scope() as s:
        s.execute(Outbox.__table__.update().values(created_at=Outbox.created_at - timedelta(
            minutes=5)))
    assert jobs.sweep()["republished"] == 0  # the connector is not connected: the command waits in PostgreSQL


def test_lost_drain_job_is_recovered_by_the_sweep(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="perdida"))
    Queue("inbound", connection=r).empty()  # the job vanished; the flag still says one is queued
    run_jobs()
    assert _texts() == []
    jobs.sweep()
    run_jobs()
    assert _texts() == ["perdida"]


def test_connectors_forget_send_claims_the_sweep_saw_finished_a_day_before(engine, r, tmp_path):
    inst, agent, conv_id = inbox_with_one_conversation()
    for body in ("antiga", "recente", "pendente"):
        conversations.send_text(agent, conv_id, body)
    with session_scope() as s:
        old, young, pending = s.scalars(select(Outbox.id).order_by(Outbox.id)).all()
        s.execute(Outbox.__table__.update().where(Outbox.id.in_([old, young])).values(status="sent", done_at=now()))
    clock = [now_ms() - 2 * 24 * 3600 * 1000]
    claims = Claims(r, inst, tmp_path, clock_ms=lambda: clock[0])
    for outbox_id in (old, pending):  # claimed two days ago
        assert claims.claim(outbox_id) is None
        claims.sent(outbox_id, f"WA{outbox_id}")
    clock[0] = now_ms()
    assert claims.claim(young) is None
    claims.sent(young, "WA-young")

    assert claims.prune() == 0, "no horizon yet: nothing is forgotten"
    assert jobs.sweep()["claims_pruned"] == 1  # one number told its horizon
    assert claims.prune() == 1
    # the old finished one goes; the young one stays a day; the pending one stays while its row is pending
    assert read_claims(tmp_path, inst) == {young: "sent:WA-young", pending: f"sent:WA{pending}"}

    with session_scope() as s:
        s.execute(Outbox.__table__.update().where(Outbox.id == pending).values(status="sent", done_at=now()))
    jobs.sweep()
    assert claims.prune() == 1
    assert read_claims(tmp_path, inst) == {young: "sent:WA-young"}


def _lose_redis(r) -> None:
    """Redis restarts empty: every key of the product is gone (the sandbox's keys stand for WhatsApp's servers,
    which keep the message that went out)."""
    for key in r.scan_iter(match="wb:*", count=1000):
        if not key.startswith(b"wb:sbx:"):
            r.delete(key)


def test_a_message_sent_before_redis_lost_its_ack_is_not_sent_again(engine, r):
    network = SandboxNetwork(r)
    inst, agent, conv_id = inbox_with_one_conversation()
    lead = "5511999990001"
    with relay_thread(r, inst):
        pair(r, network, inst)
        conversations.send_text(agent, conv_id, "só uma vez")
        wait_until(lambda: acks(r, inst), what="the ack in the inbound stream")
        _lose_redis(r)  # after the send, before a worker stored the ack
        wait_until(lambda: status(r, inst).get("state") == "connected", what="the connector to show its state again")
        with session_scope() as s:
            s.execute(Outbox.__table__.update().values(created_at=Outbox.created_at - timedelta(minutes=5),
                                                       published_at=Outbox.published_at - timedelta(minutes=5)))
        assert jobs.sweep()["republished"] == 1  # the row is still pending: the sweep hands it over again
        again = wait_until(lambda: acks(r, inst).get(1), what="the ack of the re-published command")
    run_jobs()
    sent = [m for m in network.lead_chat(lead, BUSINESS) if m["direction"] == "from_business"]
    assert [m["text"] for m in sent] == ["só uma vez"]
    assert {(ack.ok, ack.wa_id) for ack in again} == {(True, sent[0]["id"])}
    with session_scope() as s:
        message = s.scalars(select(Message).where(Message.direction == "out")).one()
        # the first ack and the sandbox's delivery receipt, lost with Redis, came back from the connector's journal
        assert (message.status, message.wa_id) == ("delivered", sent[0]["id"])
        assert s.scalars(select(Outbox.status)).one() == "sent"


_STUCK = text("""
WITH m AS (
    INSERT INTO messages (workspace_id, instance_id, conversation_id, direction, type, text, data, status, created_at)
    SELECT :ws, :inst, :conv, 'out', 'text', 'presa', '{}', 'pending', now() - interval '1 hour'
    FROM generate_series(1, :n)
    RETURNING id
)
INSERT INTO outbox (workspace_id, instance_id, message_id, command, publish_count, published_at, created_at)
SELECT :ws, :inst, id, '{"to_phone": "5511999990001", "text": "presa"}', 1, now() - interval '1 hour',
       now() - interval '1 hour'
FROM m
""")


def test_rows_that_cannot_go_out_do_not_hold_back_the_ones_that_can(engine, r):
    inst, agent, conv_id = inbox_with_one_conversation()
    with session_scope() as s:
        ws = s.get(Instance, inst).workspace_id
    removed, quiet = make_instance(ws, "Antigo"), make_instance(ws, "Desligado")
    publish(inbound(removed), inbound(quiet))
    run_jobs()
    with session_scope() as s:
        for number in (removed, quiet):  # older than the reply below, so first in line
            conv = s.scalars(select(Conversation.id).where(Conversation.instance_id == number)).one()
            s.execute(_STUCK, {"ws": ws, "inst": number, "conv": conv, "n": 600})
        s.execute(Instance.__table__.update().where(Instance.id == removed).values(desired_state="removed"))
    conversations.send_text(agent, conv_id, "a que pode sair")
    with session_scope() as s:
        s.execute(Outbox.__table__.update().where(Outbox.instance_id == inst).values(
            created_at=Outbox.created_at - timedelta(minutes=5),
            published_at=Outbox.published_at - timedelta(minutes=5)))
    r.delete(OUT_STREAM.format(inst))
    r.hset(STATUS_HASH.format(inst), "state", "connected")
    r.hset(STATUS_HASH.format(quiet), "state", "disconnected")

    assert jobs.sweep()["republished"] == 1
    [(_, fields)] = r.xrange(OUT_STREAM.format(inst))
    assert decode_outbound(fields).text == "a que pode sair"
    with session_scope() as s:
        by_number = dict(s.execute(select(Outbox.instance_id, func.array_agg(func.distinct(Outbox.status)))
                                   .group_by(Outbox.instance_id)).all())
        assert by_number == {inst: ["pending"], removed: ["failed"], quiet: ["pending"]}
        failed = s.execute(select(Message.status, Message.error).where(Message.instance_id == removed,
                                                                       Message.direction == "out")).all()
        assert set(failed) == {("failed", "o número foi removido antes do envio")} and len(failed) == 600
