"""Losing a part never loses a message: PostgreSQL down, Redis emptied, jobs lost."""

from __future__ import annotations

import json
import os
from datetime import timedelta

from rq import Queue
from sqlalchemy import select

from connector.contracts import INSTANCES_HASH, OUT_STREAM, STATUS_HASH, decode_outbound
from engine.worker import jobs
from tests.factories import inbound, inbox_with_one_conversation, make_instance, make_workspace, publish, run_jobs
from workbench.services import conversations
from workbench.store import db
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Message, Outbox


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
    assert r.xlen(f"wb:in:{inst}") == 2
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


def test_sweep_prunes_send_claims_of_commands_finished_a_day_ago(engine, r):
    inst, agent, conv_id = inbox_with_one_conversation()
    conversations.send_text(agent, conv_id, "antiga")
    conversations.send_text(agent, conv_id, "recente")
    with session_scope() as s:
        old, new = s.scalars(select(Outbox.id).order_by(Outbox.id)).all()
        s.execute(Outbox.__table__.update().where(Outbox.id == old).values(
            status="sent", done_at=Outbox.created_at - timedelta(days=2)))
        s.execute(Outbox.__table__.update().where(Outbox.id == new).values(status="sent", done_at=Outbox.created_at))
    r.hset(f"wb:sent:{inst}", mapping={str(old): "sent:A", str(new): "sent:B"})
    assert jobs.sweep()["claims_pruned"] == 1
    assert r.hkeys(f"wb:sent:{inst}") == [str(new).encode()]
    assert jobs.sweep()["claims_pruned"] == 0  # the watermark moved on
