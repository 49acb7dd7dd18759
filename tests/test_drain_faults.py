"""The inbound drain under faults: poison events, lost and stolen locks, a Redis that drops, duplicate replies.

Real PostgreSQL and Redis; the worker is RQ's SimpleWorker (as in production) or, where the event kills its
process, RQ's forking Worker, so that only the work horse dies. Every number here has one lane (lane 0), so the
contacts of a test share one drain unit, as they share a lane in production when their phones hash alike;
tests/test_lanes.py covers several lanes.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import psycopg
import pytest
from rq import Queue, Worker
from sqlalchemy import func, select, text
from sqlalchemy.exc import DataError

import connector.contracts as contracts
import engine.worker.inbound as inbound_mod
from connector.contracts import (
    DRAIN_FLAG,
    DRAIN_LOCK,
    IN_FAILED_STREAM,
    IN_STREAM,
    INBOUND_QUEUE,
    OUT_STREAM,
    wake_inbound_drain,
)
from engine.worker import jobs
from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from tests.test_connector_support import wait_until
from workbench.services.workspace_settings import save_setting
from workbench.store import bus, db
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Conversation, Message, Outbox


@pytest.fixture(autouse=True)
def _one_lane(monkeypatch):
    monkeypatch.setattr(contracts, "DEFAULT_LANES", 1)  # what a number without a recorded count uses


def _u(instance_id: int) -> str:
    """The drain unit of the number's only lane."""
    return contracts.drain_unit(instance_id, 0)


def _texts(instance_id: int) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Message.text).where(Message.instance_id == instance_id,
                                                         Message.direction == "in").order_by(Message.id)))


def _replies() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Outbox))


def _failed(r, instance_id: int) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in r.xrange(IN_FAILED_STREAM.format(instance_id))]


def _poison(monkeypatch, text_: str, action) -> None:
    """Make storing the message whose text is ``text_`` run ``action`` (raise, hang, kill) instead."""
    real = inbound_mod._store_message

    def store(session, instance, event, applied, *rest):
        if event.text == text_:
            action()
        return real(session, instance, event, applied, *rest)

    monkeypatch.setattr(inbound_mod, "_store_message", store)


def _wake_again(r, instance_id: int) -> None:
    """What the next wake-up does once a dead drain's lease lapsed (the connector's next event, or the sweep)."""
    r.delete(DRAIN_FLAG.format(_u(instance_id)), DRAIN_LOCK.format(_u(instance_id)))
    wake_inbound_drain(r, instance_id, 0)


def test_an_event_that_always_raises_is_set_aside_and_its_body_stays_out_of_the_log(engine, r, monkeypatch,
                                                                                    caplog):
    ws = make_workspace()
    inst = make_instance(ws)

    def fail():
        raise ValueError("cannot handle segredo do cliente")

    _poison(monkeypatch, "segredo do cliente", fail)
    caplog.set_level(logging.INFO)
    publish(inbound(inst, phone="551101", text="segredo do cliente"), inbound(inst, phone="551101", text="depois"),
            inbound(inst, phone="551102", text="outro contato"))
    run_jobs()
    assert _texts(inst) == ["outro contato"]  # 551101 waits behind its failing event, in order
    for _ in range(jobs.MAX_ATTEMPTS):
        _wake_again(r, inst)
        run_jobs()
    assert _texts(inst) == ["outro contato", "depois"]
    [failed] = _failed(r, inst)
    assert (failed["code"], failed["tries"]) == ("error", str(jobs.MAX_ATTEMPTS))
    assert failed["reason"] == "ValueError: cannot handle segredo do cliente"
    assert contracts.decode_inbound({"e": failed["e"]}).text == "segredo do cliente"
    assert r.xlen(IN_STREAM.format(_u(inst))) == 0 and not r.exists(f"wb:in-attempts:{inst}:0")
    assert "segredo" not in caplog.text, "message bodies never reach the log"


def test_an_event_that_hangs_is_cut_by_the_job_timeout_and_set_aside(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    monkeypatch.setattr(contracts, "DRAIN_JOB_TIMEOUT_S", 1)  # RQ's SIGALRM after one second
    _poison(monkeypatch, "trava", lambda: time.sleep(5))  # longer than the job may run
    publish(inbound(inst, phone="551101", text="trava"), inbound(inst, phone="551102", text="oi"),
            inbound(inst, phone="551103", text="olá"))
    run_jobs()  # each timed-out job hands the number to a new one at once, until the event is set aside
    assert sorted(_texts(inst)) == ["oi", "olá"]
    [failed] = _failed(r, inst)
    assert (failed["code"], failed["tries"]) == ("stuck", str(jobs.MAX_ATTEMPTS))
    assert r.xlen(IN_STREAM.format(_u(inst))) == 0
    publish(inbound(inst, phone="551101", text="de novo"))
    run_jobs()
    assert _texts(inst)[-1] == "de novo"  # the contact is not held back any more


def _forked_worker(r) -> None:
    """Run the inbound queue with RQ's forking worker: a job that kills its process kills only the work horse."""
    db.dispose_engines()  # the horse must open its own PostgreSQL connections, not share ours
    Worker([Queue(INBOUND_QUEUE, connection=r)], connection=r).work(burst=True)


def test_an_event_that_kills_its_worker_is_set_aside_and_the_number_is_drained_again_at_once(engine, r,
                                                                                           monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    _poison(monkeypatch, "mata", lambda: os._exit(1))
    publish(inbound(inst, phone="551101", text="mata"), inbound(inst, phone="551102", text="a"),
            inbound(inst, phone="551103", text="b"))
    _forked_worker(r)  # the whole batch dies with the horse
    assert _texts(inst) == []
    kills = 1
    while not _failed(r, inst):
        # the dead drain renews nothing: its lock and flag lapse within the lease, not a minute later
        assert 0 < r.pttl(DRAIN_LOCK.format(_u(inst))) <= jobs.LOCK_TTL_MS
        assert 0 < r.pttl(DRAIN_FLAG.format(_u(inst))) <= jobs.LOCK_TTL_MS
        if kills == 1:
            r.delete(DRAIN_FLAG.format(_u(inst)), DRAIN_LOCK.format(_u(inst)))  # the lease lapsed
            publish(inbound(inst, phone="551104", text="c"))  # the connector's next event queues the next drain
        else:
            _wake_again(r, inst)
        _forked_worker(r)
        kills += 1
        assert kills <= jobs.MAX_ATTEMPTS + 2, "set aside after its tries"
    assert sorted(_texts(inst)) == ["a", "b", "c"]
    [failed] = _failed(r, inst)
    assert (failed["code"], failed["tries"]) == ("stuck", str(jobs.MAX_ATTEMPTS))
    assert r.xlen(IN_STREAM.format(_u(inst))) == 0


def test_a_drain_keeps_its_lease_while_it_works(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    lock = DRAIN_LOCK.format(_u(inst))
    renewed = []

    def slow():
        r.pexpire(lock, 1500)  # far less than a full lease: only a renewal can push it up again
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not renewed:
            if r.pttl(lock) > 1500:
                renewed.append(r.pttl(lock))
            time.sleep(0.05)

    _poison(monkeypatch, "lento", slow)
    publish(inbound(inst, text="lento"))
    run_jobs()
    assert renewed and renewed[0] <= jobs.LOCK_TTL_MS, "the heartbeat renewed the lease while the batch ran"
    assert _texts(inst) == ["lento"] and not r.exists(lock)


def _bot_answers_every_message(ws: int) -> None:
    save_setting(make_actor(ws, "admin"), "default_reply", {"enabled": True, "mode": "every", "text": "Recebido!"})


def _waiting_on_a_lock(done: threading.Event) -> None:
    """Until the other drain finished or waits for a PostgreSQL row lock (it cannot go further then)."""
    deadline = time.monotonic() + 30
    with db.get_engine().connect() as conn:
        while not done.is_set() and time.monotonic() < deadline:
            if conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                return
            conn.rollback()
            time.sleep(0.02)


def test_a_drain_that_lost_its_lock_cannot_answer_a_second_time(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    _bot_answers_every_message(ws)
    real = inbound_mod._store_message
    other: dict = {}

    def store(session, instance, event, applied, *rest):
        if not other:  # the first drain is about to store: its lock is stolen and a second drain starts
            done = threading.Event()
            other["thread"] = threading.Thread(
                target=lambda: (other.update(totals=jobs.drain_inbound(inst, 0)), done.set()))
            r.delete(DRAIN_LOCK.format(_u(inst)))
            other["thread"].start()
            _waiting_on_a_lock(done)
        return real(session, instance, event, applied, *rest)

    monkeypatch.setattr(inbound_mod, "_store_message", store)
    publish(inbound(inst, text="quero comprar"))
    run_jobs()
    other["thread"].join()
    assert _texts(inst) == ["quero comprar"]
    assert _replies() == 1 and r.xlen(OUT_STREAM.format(inst)) == 1, "one answer, not two"
    with session_scope() as s:
        assert s.scalar(select(Conversation.unread_count)) == 1


def test_a_message_stored_meanwhile_by_another_writer_gets_no_second_answer(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="primeira"))
    run_jobs()
    _bot_answers_every_message(ws)
    event = inbound(inst, text="segunda")
    real = inbound_mod._prepare

    def prepare(instance, ev, k):
        if ev.wa_id == event.wa_id and not _texts(inst)[1:]:
            with session_scope() as other:  # committed after the drain read it, before it stores it
                conversation_id = other.scalar(select(Conversation.id))
                other.add(Message(workspace_id=ws, instance_id=inst, conversation_id=conversation_id,
                                  wa_id=ev.wa_id, direction="in", type="text", text="segunda", data={},
                                  status="received"))
        return real(instance, ev, k)

    monkeypatch.setattr(inbound_mod, "_prepare", prepare)
    publish(event)
    run_jobs()
    assert _texts(inst) == ["primeira", "segunda"]
    assert _replies() == 0, "the writer that stored it answers, not this drain"
    with session_scope() as s:
        assert s.scalar(select(Conversation.unread_count)) == 1, "counted once, by the first message"


def test_a_drain_ends_cleanly_when_redis_drops_and_its_events_stay_pending(engine, r, monkeypatch):
    ws = make_workspace()
    inst = make_instance(ws)
    _bot_answers_every_message(ws)
    pool = bus.get_redis().connection_pool
    saved = dict(pool.connection_kwargs)

    def redis_goes_away():  # every connection from here on finds no server (embedded: a socket; else TCP)
        if "path" in pool.connection_kwargs:
            pool.connection_kwargs["path"] = "/nonexistent/redis.sock"
        else:
            pool.connection_kwargs["port"] = 1  # nothing listens on port 1
        pool.reset()

    _poison(monkeypatch, "oi", redis_goes_away)
    publish(inbound(inst, text="oi"), inbound(inst, phone="551102", text="olá"))
    try:
        totals = jobs.drain_inbound(inst, 0)  # as a worker runs it; committed, but Redis is gone before the ack
    finally:
        pool.connection_kwargs.clear()
        pool.connection_kwargs.update(saved)
        pool.reset()
    assert totals["redis_down"] == 1
    assert r.xlen(IN_STREAM.format(_u(inst))) == 2, "nothing acknowledged: the events wait in the stream"
    monkeypatch.undo()
    _wake_again(r, inst)  # Redis is back; the lease of the cut-off drain lapsed
    run_jobs()
    assert sorted(_texts(inst)) == ["oi", "olá"] and r.xlen(IN_STREAM.format(_u(inst))) == 0
    assert _replies() == 2, "each stored once and answered once (the sweep publishes what was not sent)"


def test_database_errors_never_quote_the_values_of_their_statement(engine):
    with pytest.raises(DataError) as failed, session_scope() as s:
        s.execute(text("SELECT :body, 1 / 0"), {"body": "segredo do cliente"})
    assert "segredo" not in str(failed.value), "RQ logs and keeps this text with a failed job"


def test_a_failure_reason_carries_no_sql_or_parameters():
    # PostgreSQL's own message may quote the value too ('invalid input syntax for type integer: "segredo"')
    error = DataError("INSERT INTO messages (text) VALUES (%(text)s)", {"text": "segredo"},
                      psycopg.errors.StringDataRightTruncation('invalid input: "segredo"'))
    assert jobs._describe(error) == "DataError/StringDataRightTruncation sqlstate=22001"
    assert "segredo" not in jobs._where(error)


@pytest.fixture(autouse=True)
def _fresh_engines():
    """The forking worker's horses must not inherit pooled connections; give every test fresh ones after."""
    yield
    db.dispose_engines()


def test_the_leases_of_a_worker_known_dead_are_freed_at_once_and_their_drains_woken(engine, r):
    """The scheduler frees a dead worker's numbers (engine/worker/processes.py) instead of waiting for the lease."""
    ws = make_workspace()
    dead, alive = make_instance(ws, "morto"), make_instance(ws, "vivo")
    r.set(DRAIN_LOCK.format(_u(dead)), "maquina.4242|abc", px=jobs.LOCK_TTL_MS)
    r.set(DRAIN_FLAG.format(_u(dead)), "1", px=jobs.LOCK_TTL_MS)
    r.set(DRAIN_LOCK.format(_u(alive)), "maquina.42|def", px=jobs.LOCK_TTL_MS)  # a pid sharing the dead one's prefix
    assert jobs.release_drains_of(r, "maquina", 4242) == [_u(dead)]
    assert r.get(DRAIN_LOCK.format(_u(dead))) is None and r.get(DRAIN_LOCK.format(_u(alive))) == b"maquina.42|def"
    assert [job.args for job in Queue(INBOUND_QUEUE, connection=r).jobs] == [(dead, 0)]


def _send_and_receipt(instance_id: int, phone: str) -> tuple[int, contracts.SendAck, contracts.Receipt]:
    """The newest reply to ``phone`` (pending) and the connector's ack and "delivered" receipt for it."""
    with session_scope() as s:
        outbox_id = s.scalar(select(Outbox.id).where(Outbox.command["to_phone"].astext == phone)
                             .order_by(Outbox.id.desc()))
    wa_id = f"3EB0{outbox_id:012d}"
    ack = contracts.SendAck(instance_id=instance_id, outbox_id=outbox_id, ok=True, wa_id=wa_id,
                            timestamp_ms=contracts.now_ms(), chat=phone)
    receipt = contracts.Receipt(instance_id=instance_id, wa_ids=[wa_id], status="delivered",
                                timestamp_ms=contracts.now_ms(), chat=phone)
    return outbox_id, ack, receipt


def _status(outbox_id: int) -> tuple[str, str | None]:
    """The outbox row's status and its message's."""
    with session_scope() as s:
        row = s.get(Outbox, outbox_id)
        return row.status, s.scalar(select(Message.status).where(Message.id == row.message_id))


def _read_into(drain: jobs._Drain, r, unit: str, now: float) -> None:
    """What one turn of the drain's loop does with what the unit's stream holds now."""
    got = jobs._read(r, {IN_STREAM.format(unit): ">"}, 200)
    drain._process(unit, got.get(unit, []), now)


def _answered_and_held(r, phone: str) -> tuple[int, str, jobs._Drain]:
    """A number whose bot answered ``phone`` once (the reply pending), and a drain holding the number's lane:
    (instance id, unit, drain)."""
    ws = make_workspace()
    inst = make_instance(ws)
    _bot_answers_every_message(ws)
    publish(inbound(inst, phone=phone, text="oi"))
    run_jobs()
    unit = _u(inst)
    drain = jobs._Drain(r)
    assert drain.take(unit)
    return inst, unit, drain


def test_acks_and_receipts_wait_for_the_lanes_next_message_and_are_stored_in_its_transaction(engine, r,
                                                                                                monkeypatch):
    """A reply's ack and receipt are not worth a transaction of their own: they ride with the lane's next message,
    or are stored alone once they waited ``DEFER_MS``, and always before the drain leaves."""
    phone = "5511988887777"
    inst, unit, drain = _answered_and_held(r, phone)
    batches: list[list[str]] = []
    real = jobs._apply

    def apply(unit, events, *args):
        batches.append([event.kind for event in events])
        return real(unit, events, *args)

    monkeypatch.setattr(jobs, "_apply", apply)
    first, ack, receipt = _send_and_receipt(inst, phone)
    publish(ack, receipt)
    _read_into(drain, r, unit, now=100.0)
    assert batches == [] and _status(first) == ("pending", "pending")

    publish(inbound(inst, phone=phone, text="de novo"))
    _read_into(drain, r, unit, now=100.05)
    assert batches == [["ack", "receipt", "message"]]  # one transaction, in stream order
    assert _status(first) == ("sent", "delivered")

    second, ack, receipt = _send_and_receipt(inst, phone)
    publish(ack)
    _read_into(drain, r, unit, now=200.0)
    drain._process(unit, [], 200.0 + jobs.DEFER_MS / 2000)
    assert batches[1:] == [] and _status(second)[0] == "pending"
    drain._process(unit, [], 200.001 + jobs.DEFER_MS / 1000)  # waited long enough: alone
    assert batches[1:] == [["ack"]] and _status(second)[0] == "sent"

    publish(receipt)
    _read_into(drain, r, unit, now=300.0)
    drain.run()  # nothing more arrives: the drain stores what waits before it leaves
    drain.close()
    assert batches[2:] == [["receipt"]] and _status(second) == ("sent", "delivered")
    assert r.xlen(IN_STREAM.format(unit)) == 0 and not r.exists(DRAIN_LOCK.format(unit))


def test_a_drain_under_load_lets_events_gather_before_its_next_read(engine, r, monkeypatch):
    """A drain that reads messages faster than ``GATHER_RATE`` a second is busy: it pauses ``drain_gather_ms`` so
    that what arrives meanwhile makes one batch (one transaction) instead of a batch per read; a quiet number's
    message, even with acks or connection events beside it, is followed by the next read at once."""
    monkeypatch.setenv("WORKBENCH_DRAIN_LINGER_MS", "0")
    monkeypatch.setenv("WORKBENCH_DRAIN_GATHER_MS", "7")
    monkeypatch.setattr(jobs, "GATHER_RATE", 4)  # more than one message within RATE_WINDOW_S (0.25 s)
    get_settings.cache_clear()
    inst = make_instance(make_workspace())
    unit = _u(inst)
    batches: list[list[str]] = []
    pauses: list[float] = []
    real = jobs._apply

    def apply(unit, events, *args):
        batches.append([getattr(event, "text", event.kind) for event in events])
        return real(unit, events, *args)

    def pause(seconds: float) -> None:  # while the drain waits, three more messages arrive
        pauses.append(seconds)
        if len(pauses) == 1:
            publish(*(inbound(inst, phone=f"55119{k:08d}", text=f"depois {k}") for k in range(3)))

    monkeypatch.setattr(jobs, "_apply", apply)
    monkeypatch.setattr(jobs, "_pause", pause)
    drain = jobs._Drain(r)
    assert drain.take(unit)
    publish(inbound(inst, phone="5511900000001", text="um"), inbound(inst, phone="5511900000002", text="dois"))
    drain.run()
    drain.close()
    assert batches == [["um", "dois"], ["depois 0", "depois 1", "depois 2"]]
    assert pauses == [0.007, 0.007]  # after each read of several events, none after the empty read that ended it

    publish(inbound(inst, phone="5511900000003", text="só uma"),
            contracts.StateChange(instance_id=inst, state="connected", timestamp_ms=contracts.now_ms()))
    drain = jobs._Drain(r)
    assert drain.take(unit)
    drain.run()
    drain.close()
    assert batches[2:] == [["só uma", "state"]] and len(pauses) == 2  # one message: no pause


def test_a_paced_flow_never_makes_a_drain_pause_and_a_burst_does(r, monkeypatch):
    """100 messages a second (one every 10 ms, the bench's paced run) stay under ``GATHER_RATE``, whatever acks and
    receipts come beside them; 500 a second go over it once the window has seen enough of them."""
    monkeypatch.setenv("WORKBENCH_DRAIN_GATHER_MS", "5")
    get_settings.cache_clear()
    paced, burst = jobs._Drain(r), jobs._Drain(r)
    assert not any(paced._busy(k * 0.010, 1) or paced._busy(k * 0.010 + 0.002, 0) for k in range(500))
    busy = [burst._busy(k * 0.002, 1) for k in range(500)]
    enough = int(jobs.GATHER_RATE * jobs.RATE_WINDOW_S)  # messages the window must hold more of
    assert not any(busy[:enough]) and all(busy[enough:]), busy[:60]


def test_acks_a_dead_drain_held_back_are_stored_by_the_next_drain(engine, r):
    phone = "5511988886666"
    inst, unit, dead = _answered_and_held(r, phone)
    outbox_id, ack, receipt = _send_and_receipt(inst, phone)
    publish(ack, receipt)
    _read_into(dead, r, unit, now=100.0)  # held back in memory, pending in the stream; then the worker dies
    dead.close()
    assert _status(outbox_id) == ("pending", "pending")
    _wake_again(r, inst)
    run_jobs()
    assert _status(outbox_id) == ("sent", "delivered")
    assert r.xlen(IN_STREAM.format(unit)) == 0


def _epoch(instance_id: int) -> int:
    with session_scope() as s:
        return s.scalar(text("SELECT epoch FROM drain_lanes WHERE instance_id = :i AND lane = 0"), {"i": instance_id})


def test_a_drain_that_read_its_time_hands_its_lanes_to_the_next_job_which_goes_on_without_taking_them_again(
        engine, r, monkeypatch):
    """Under a steady flow a drain stops at MAX_RUN_S (RQ's job timeout must never cut it) and queues the
    next job at the front with its leases and fencing tokens: no new epoch, no unit left for a later wake-up."""
    monkeypatch.setattr(jobs, "MAX_RUN_S", 0.0)
    monkeypatch.setenv("WORKBENCH_DRAIN_LINGER_MS", "5000")
    get_settings.cache_clear()
    ws = make_workspace()
    inst = make_instance(ws)
    unit = _u(inst)
    publish(inbound(inst, text="primeira"))
    Queue(INBOUND_QUEUE, connection=r).empty()  # its wake-up: this test runs the job itself
    jobs.drain_inbound(inst, 0)  # as RQ runs it; stops after its first read, which had an event
    epoch = _epoch(inst)
    [job] = Queue(INBOUND_QUEUE, connection=r).jobs
    handed = job.args[2]
    assert job.args[:2] == (inst, 0) and list(handed) == [unit]
    assert job.retries_left == contracts.DRAIN_RETRIES  # PostgreSQL away: retried like any drain, taking anew
    token, handed_epoch = handed[unit]
    assert handed_epoch == epoch and r.get(DRAIN_LOCK.format(unit)) == token.encode()  # still held, not released
    publish(inbound(inst, text="segunda"))
    run_jobs()  # the next job goes on (and hands over once more while events came), then leaves once idle
    assert _texts(inst) == ["primeira", "segunda"]
    assert _epoch(inst) == epoch, "the lane was never taken again"
    assert not r.exists(DRAIN_LOCK.format(unit)) and r.xlen(IN_STREAM.format(unit)) == 0


def test_a_drain_whose_last_read_found_nothing_still_hands_over_when_events_came_within_the_linger(
        engine, r, monkeypatch):
    """A steady trickle (100 messages a second over a few lanes) leaves gaps of a few ms between reads: a drain
    that reached MAX_RUN_S in such a gap left its lanes, and taking them again stalled every answer ~100 ms."""
    monkeypatch.setattr(jobs, "MAX_RUN_S", 0.2)
    monkeypatch.setenv("WORKBENCH_DRAIN_LINGER_MS", "5000")
    get_settings.cache_clear()
    inst = make_instance(make_workspace())
    unit = _u(inst)
    publish(inbound(inst, text="primeira"))
    Queue(INBOUND_QUEUE, connection=r).empty()
    jobs.drain_inbound(inst, 0)  # its first read had the event, the reads after it (till MAX_RUN_S) nothing
    [job] = Queue(INBOUND_QUEUE, connection=r).jobs
    assert list(job.args[2]) == [unit] and r.exists(DRAIN_LOCK.format(unit)), "handed over, lease held"
    run_jobs()  # the successor reads nothing at all, so it leaves once MAX_RUN_S is over
    assert Queue(INBOUND_QUEUE, connection=r).jobs == [] and not r.exists(DRAIN_LOCK.format(unit))
    assert _texts(inst) == ["primeira"]


def test_a_handed_lane_whose_lease_lapsed_is_taken_anew_or_left_to_the_drain_that_took_it(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    unit = _u(inst)
    publish(inbound(inst, text="um"))
    stale = {unit: ("maquina.1|velho", 1)}  # the lease lapsed before the job ran: nobody holds the lock
    jobs.drain_inbound(inst, 0, stale)
    assert _texts(inst) == ["um"] and _epoch(inst) == 1  # taken anew (the first epoch of this lane)

    r.set(DRAIN_LOCK.format(unit), "outra.2|dono", px=jobs.LOCK_TTL_MS)  # another drain took it meanwhile
    publish(inbound(inst, text="dois"))
    assert jobs.drain_inbound(inst, 0, stale) == {"busy": 1}
    assert _texts(inst) == ["um"] and r.get(DRAIN_LOCK.format(unit)) == b"outra.2|dono"


def test_a_drain_leaves_instead_of_handing_over_while_jobs_wait_in_the_other_queue(engine, r, monkeypatch):
    """A successor at the front of the inbound queue would keep a worker under a steady flow from ever running the
    funnel timers or contact jobs waiting in its other queue."""
    monkeypatch.setattr(jobs, "MAX_RUN_S", 0.0)
    ws = make_workspace()
    inst = make_instance(ws)
    Queue("default", connection=r).enqueue("engine.worker.jobs.retention")
    publish(inbound(inst, text="primeira"))
    Queue(INBOUND_QUEUE, connection=r).empty()
    jobs.drain_inbound(inst, 0)
    assert _texts(inst) == ["primeira"]
    assert Queue(INBOUND_QUEUE, connection=r).jobs == [] and not r.exists(DRAIN_LOCK.format(_u(inst)))


def test_a_drain_under_a_steady_flow_keeps_its_lanes_until_jobs_wait_in_the_other_queue(engine, r, monkeypatch):
    """Between two checks for the other queue's jobs a drain goes on with its lanes, however often it checks: ending
    and starting a job at every check left a gap of about 35 ms in the answers each time. Once a job waits in the
    other queue, the drain leaves at its next check (a successor at the front would starve that job)."""
    monkeypatch.setattr(jobs, "YIELD_CHECK_S", 0.0)
    monkeypatch.setenv("WORKBENCH_DRAIN_LINGER_MS", "60000")  # only the other queue's job can end it in this test
    get_settings.cache_clear()
    inst = make_instance(make_workspace())
    unit = _u(inst)
    publish(inbound(inst, text="primeira"))
    Queue(INBOUND_QUEUE, connection=r).empty()  # its wake-up: this test runs the job itself
    drain = threading.Thread(target=jobs.drain_inbound, args=(inst, 0), daemon=True)
    drain.start()
    wait_until(lambda: _texts(inst) == ["primeira"], what="the first message stored")
    publish(inbound(inst, text="segunda"))
    wait_until(lambda: _texts(inst) == ["primeira", "segunda"], what="the second message, by the same job")
    assert drain.is_alive() and r.exists(DRAIN_LOCK.format(unit)), "checked many times, the drain holds its lane"
    assert Queue(INBOUND_QUEUE, connection=r).jobs == [], "no successor queued"
    Queue("default", connection=r).enqueue("engine.worker.jobs.retention")
    drain.join(20)
    assert not drain.is_alive(), "left for the other queue's job"
    assert Queue(INBOUND_QUEUE, connection=r).jobs == [] and not r.exists(DRAIN_LOCK.format(unit))


def test_a_lane_adopted_by_a_drain_that_postgresql_refused_is_adopted_again_by_its_retry(engine, r, monkeypatch):
    """A drain that adopted another number's lane (whose own job then found it busy and ended) and stopped on a
    PostgreSQL error puts that lane back up for adoption: its retry, or any running drain, takes it once PostgreSQL
    is back. Its flag alone said "a job is queued" when none was: the lane waited for the sweep (14 s in a run of
    bench/chaos.py)."""
    from sqlalchemy.exc import OperationalError

    monkeypatch.setenv("WORKBENCH_DRAIN_LINGER_MS", "300")
    get_settings.cache_clear()
    ws = make_workspace()
    first, second = make_instance(ws, "A"), make_instance(ws, "B")
    publish(inbound(first, text="para A"), inbound(second, text="para B"))
    Queue(INBOUND_QUEUE, connection=r).empty()  # B's own job ran and found B's lane held: no job is left for it
    r.zadd(contracts.DRAIN_QUEUED, {_u(second): 1})
    real_process = jobs._Drain._process

    def refused_for_b(self, unit, entries, now):
        if unit == _u(second):
            raise OperationalError("INSERT", {}, psycopg.OperationalError("the database system is shutting down"))
        return real_process(self, unit, entries, now)

    monkeypatch.setattr(jobs._Drain, "_process", refused_for_b)
    with pytest.raises(OperationalError):
        jobs.drain_inbound(first, 0)  # adopts B's lane, then PostgreSQL goes away
    assert _texts(first) == ["para A"] and _texts(second) == []
    monkeypatch.setattr(jobs._Drain, "_process", real_process)

    publish(inbound(first, text="de novo A"))
    Queue(INBOUND_QUEUE, connection=r).empty()
    jobs.drain_inbound(first, 0)  # RQ's retry of A's job, PostgreSQL back
    assert _texts(second) == ["para B"], "B's lane waited for the sweep"
    assert _texts(first) == ["para A", "de novo A"]
    get_settings.cache_clear()
