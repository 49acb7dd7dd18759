"""Outside calls on real PostgreSQL and Redis, with a trivial executor: pending -> done -> applied, retries with
backoff, stale tokens, lost jobs recovered by the sweep, and a result never applied (sent) twice."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, Literal

import pytest
from pydantic import Field
from sqlalchemy import select, update

from engine.core import nodes
from engine.core.nodes.base import (
    CallOutside,
    NodeBase,
    NodeData,
    NodeResult,
    NodeSpec,
    SendText,
    SetVariable,
    Wait,
)
from engine.worker import calls, jobs
from engine.worker.inbound import apply_events
from tests.factories import inbound
from tests.test_connector_support import wait_until
from tests.test_funnel_runtime import LEAD, bot_texts, say, setup_workspace, the_run
from workbench.base.clock import now
from workbench.services import outside_calls, runs
from workbench.store.db import session_scope
from workbench.store.models import FunnelEvent, OutsideCall

# -- a trivial node and executor ---------------------------------------------------------------------------------


class EchoData(NodeData):
    limit_s: int = 600


class EchoNode(NodeBase):
    type: Literal["echo_call"]
    data: EchoData = Field(default_factory=EchoData)


def _execute(node, ctx):
    return NodeResult(actions=(CallOutside("echo", {"text": ctx.trigger_message or ""}),),
                      wait=Wait(kind="call", timeout_s=node.data.limit_s))


def _resume(node, ctx, reply):
    # a reply while the call is pending: kept for the next turn, still waiting on the same call
    folded = [*ctx.variables.get("folded", []), reply]
    return NodeResult(actions=(SetVariable("folded", folded),), wait=Wait(kind="call", timeout_s=node.data.limit_s))


def _on_result(node, ctx, result):
    if not result.get("ok"):
        return NodeResult(actions=(SendText(f"falhou: {result.get('kind')} {result.get('error')}"),), output="failure")
    folded = " + ".join(ctx.variables.get("folded", []))
    return NodeResult(actions=(SendText(f"eco: {result['text']}" + (f" (+ {folded})" if folded else "")),),
                      output="success", data={"echoed": True})


def _on_timeout(node, ctx):
    return NodeResult(actions=(SendText("demorou"),), output="failure")


SPEC = NodeSpec(type="echo_call", schema=EchoNode, execute=_execute, resume=_resume, on_result=_on_result,
                on_timeout=_on_timeout, outputs=lambda data: ["success", "failure"],
                waits=lambda data: True)


class Echo:
    """Answers ``{"ok": True, "text": ...}``; ``failures`` first tries raise ``RetryLater``."""

    def __init__(self, failures: int = 0, max_attempts: int = 3, backoff_s: float = 0.0) -> None:
        self.failures, self.max_attempts, self.backoff_s, self.timeout_s = failures, max_attempts, backoff_s, 10.0
        self.seen: list[outside_calls.OutsideCallView] = []

    def run(self, call):
        self.seen.append(call)
        if len(self.seen) <= self.failures:
            raise outside_calls.RetryLater("HTTP 503", "server")
        return {"ok": True, "text": call.request["text"], "meta": {"model": "eco-1", "total_tokens": 7}}

    def backoff(self, attempt: int) -> float:
        return self.backoff_s


def echo_funnel() -> dict[str, Any]:
    return {"nodes": [
        {"id": "inicio", "type": "trigger", "data": {"kind": "keyword", "mode": "contains", "words": ["eco"]}},
        {"id": "chama", "type": "echo_call", "data": {}},
        {"id": "fim", "type": "end", "data": {}},
    ], "edges": [
        {"id": "e1", "source": "inicio", "target": "chama", "label": "next"},
        {"id": "e2", "source": "chama", "target": "fim", "label": "success"},
    ]}


@pytest.fixture
def echo():
    nodes.register(SPEC)
    executor = Echo()
    outside_calls.register("echo", executor)
    yield executor
    outside_calls.unregister("echo")
    nodes.unregister("echo_call")


def the_call() -> OutsideCall:
    with session_scope() as s:
        return s.scalars(select(OutsideCall).order_by(OutsideCall.id.desc())).first()


def queued(r) -> list[int]:
    return [int(x) for x in r.zrange(runs.CALLS_QUEUE, 0, -1)]


def test_new_leads_of_one_batch_each_get_their_call(engine, r, echo):
    """The second new lead's run is held with the batch's rows (a reserved id): it is written before its call,
    which refers to it."""
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    leads = ["5521900000001", "5521900000002", "5521900000003"]
    with session_scope() as s:
        applied = apply_events(s, inst, [inbound(inst, phone=lead, text=f"eco {lead}") for lead in leads])
    assert len(applied.effects.calls) == 3
    with session_scope() as s:
        requests = s.scalars(select(OutsideCall.request).order_by(OutsideCall.id)).all()
    assert [request["text"] for request in requests] == [f"eco {lead}" for lead in leads]


def test_a_call_goes_pending_done_applied_outside_the_drain(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco olá")
    call, run = the_call(), the_run()
    assert (call.status, call.attempts, call.service, call.request) == ("pending", 0, "echo", {"text": "eco olá"})
    assert (run.status, run.current_node, call.wait_token) == ("waiting", "chama", run.wait_token)
    assert bot_texts() == [] and queued(r) == [call.id], "the drain only stored the call"

    assert calls.run_due(r) == {"applied": 1}
    call = the_call()
    assert (call.status, call.attempts, call.applied_at is not None) == ("done", 1, True)
    assert bot_texts() == ["eco: eco olá"]
    assert the_run().status == "completed"
    with session_scope() as s:
        data = s.scalars(select(FunnelEvent.data).where(FunnelEvent.node_id == "chama")
                         .order_by(FunnelEvent.id.desc())).first()
    assert data["echoed"] and data["call"]["service"] == "echo" and data["call"]["outcome"] == "ok"
    assert data["call"]["model"] == "eco-1" and data["call"]["attempts"] == 1


def test_retryable_failures_are_tried_again_after_their_backoff(engine, r, echo):
    echo.failures, echo.backoff_s = 2, 60.0
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    assert calls.run_due(r) == {"retry": 1}
    call = the_call()
    assert (call.status, call.attempts, call.error) == ("pending", 1, "HTTP 503")
    assert call.due_at > now() + timedelta(seconds=50), "the next try waits for the executor's backoff"
    score = r.zscore(runs.CALLS_QUEUE, str(call.id))
    assert score is not None and score > (now() + timedelta(seconds=50)).timestamp() * 1000
    assert calls.run_due(r) == {}, "not due yet"
    echo.backoff_s = 0.0
    with session_scope() as s:
        s.execute(update(OutsideCall).values(due_at=now()))
    runs.enqueue_calls(r, [call.id])
    assert calls.run_due(r) == {"retry": 1, "applied": 1}
    assert (the_call().status, the_call().attempts) == ("done", 3)
    assert bot_texts() == ["eco: eco"]


def test_the_last_failed_try_gives_the_node_its_failure(engine, r, echo):
    echo.failures, echo.max_attempts = 5, 2
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    assert calls.run_due(r) == {"retry": 1, "applied": 1}
    call = the_call()
    assert (call.status, call.attempts, call.result["ok"], call.result["kind"]) == ("failed", 2, False, "server")
    assert bot_texts() == ["falhou: server HTTP 503"]


def test_a_reply_while_the_call_is_pending_is_folded_in_and_keeps_the_call(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco um")
    token = the_run().wait_token
    say(inst, "dois")
    assert the_run().wait_token == token and the_run().variables["folded"] == ["dois"]
    assert calls.run_due(r) == {"applied": 1}
    assert bot_texts() == ["eco: eco um (+ dois)"]


def test_a_stale_token_applies_nothing(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    call = the_call()
    # the executor answered and its answer was stored, then the run moved on before it was applied
    view, _ = outside_calls._claim(call.id)
    outside_calls._store(call.id, echo.run(view), "done", now())
    with session_scope() as s:
        runs.stop_run(s, the_run().id, "test")
    assert outside_calls.apply_result(call.id, r) == "stale"
    assert the_call().status == "stale" and bot_texts() == []


def test_a_call_whose_run_moved_on_before_its_turn_is_not_run(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    with session_scope() as s:
        runs.stop_run(s, the_run().id, "test")
    assert calls.run_due(r) == {"skipped": 1}
    assert the_call().status == "stale" and echo.seen == []


def test_the_steps_deadline_makes_the_late_result_stale(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    run = the_run()
    call = the_call()
    view, _ = outside_calls._claim(call.id)
    jobs.funnel_timer(run.id, run.wait_token)  # the step's overall limit passed while the model was thinking
    assert bot_texts() == ["demorou"]
    outside_calls._store(call.id, echo.run(view), "done", now())
    assert outside_calls.apply_result(call.id, r) == "stale"
    assert bot_texts() == ["demorou"]


def test_a_lost_queue_entry_and_a_dead_try_are_recovered_by_the_sweep(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    r.delete(runs.CALLS_QUEUE)  # Redis lost the queue
    with session_scope() as s:
        s.execute(update(OutsideCall).values(due_at=now() - timedelta(minutes=5)))
    assert jobs.sweep()["outside_calls"] == 1
    # the pool took it and died mid-try: the row says running, the queue has nothing
    call_id = calls.take_due(r, 10)[0]
    outside_calls._claim(call_id)
    assert the_call().status == "running"
    assert jobs.sweep()["outside_calls"] == 0, "a try within its timeout is left alone"
    with session_scope() as s:
        s.execute(update(OutsideCall).values(started_at=now() - timedelta(minutes=5)))
    assert jobs.sweep()["outside_calls"] == 1
    assert (the_call().status, the_call().attempts) == ("pending", 1)
    assert calls.run_due(r) == {"applied": 1}
    assert (the_call().attempts, bot_texts()) == (2, ["eco: eco"])


def test_a_result_is_never_applied_twice(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    call = the_call()
    # the process died after storing the answer and before applying it
    view, _ = outside_calls._claim(call.id)
    outside_calls._store(call.id, echo.run(view), "done", now() - timedelta(minutes=5))
    with session_scope() as s:
        s.execute(update(OutsideCall).values(finished_at=now() - timedelta(minutes=5)))
    assert jobs.sweep()["outside_calls"] == 1
    assert calls.run_due(r) == {"applied": 1}
    assert bot_texts() == ["eco: eco"]
    # a duplicate queue entry, a retried job and another sweep all find it applied
    runs.enqueue_calls(r, [call.id])
    assert calls.run_due(r) == {"skipped": 1}
    assert outside_calls.apply_result(call.id, r) == "skipped"
    assert outside_calls.run_call(call.id, r) == "skipped"
    assert jobs.sweep()["outside_calls"] == 0
    assert bot_texts() == ["eco: eco"] and len(echo.seen) == 1


def test_a_service_without_executor_fails_the_step(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    outside_calls.unregister("echo")
    say(inst, "eco")
    assert calls.run_due(r) == {"applied": 1}
    assert the_call().status == "failed" and bot_texts() == ["falhou: config no executor for echo"]


def test_a_phone_of_another_contact_is_answered_while_a_call_is_pending(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    say(inst, "eco também", phone="5521900000002")
    assert bot_texts() == [] and len(queued(r)) == 2
    assert calls.run_due(r) == {"applied": 2}
    assert bot_texts() == ["eco: eco"] and bot_texts("5521900000002") == ["eco: eco também"]
    assert LEAD


def test_finished_calls_are_pruned_after_a_month(engine, r, echo):
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    say(inst, "eco")
    calls.run_due(r)
    say(inst, "eco de novo", phone="5521900000003")  # still pending: never pruned
    assert jobs.sweep()["outside_calls_pruned"] == 0
    with session_scope() as s:
        month_ago = now() - timedelta(days=31)
        s.execute(update(OutsideCall).values(finished_at=month_ago, created_at=month_ago))
    assert jobs.sweep()["outside_calls_pruned"] == 1
    with session_scope() as s:
        assert [c.status for c in s.scalars(select(OutsideCall))] == ["pending"]


def _commands(r, *names: str) -> int:
    stats = r.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in names)


def test_the_pool_sleeps_between_calls_and_a_queued_call_wakes_it(engine, r, echo):
    """The pool blocks on the wake-up list instead of polling: idle, it looks for due calls about once a second
    (every 20 ms before); a call queued meanwhile, and a retry due later, still run."""
    ws, inst, admin, _ = setup_workspace(("Eco", echo_funnel))
    stop = threading.Event()
    pool = threading.Thread(target=calls.run_pool, args=(r, 2, stop), daemon=True)
    pool.start()
    try:
        time.sleep(0.3)  # the pool is asleep on the empty queue
        before = _commands(r, "evalsha", "eval")
        time.sleep(1.5)
        assert _commands(r, "evalsha", "eval") - before <= 5, "the idle pool polls Redis (a take every 20 ms: 75)"

        echo.failures, echo.backoff_s = 1, 0.3
        say(inst, "eco acorda")  # the drain queues the call and pushes the wake-up
        wait_until(lambda: bot_texts() == ["eco: eco acorda"], what="the call, retried after its backoff, to answer")
        assert (the_call().attempts, len(echo.seen)) == (2, 2)
    finally:
        stop.set()
        pool.join(10)
    assert not pool.is_alive()
