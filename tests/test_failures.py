"""Set-aside inbound events (wb:in-failed): listed for admins and supervisors, reprocessed or discarded, and
sealed from agents and from other workspaces."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import engine.worker.inbound as inbound_mod
from connector.contracts import DRAIN_FLAG, DRAIN_LOCK, IN_FAILED_STREAM, drain_unit, wake_inbound_drain
from engine.worker import jobs
from tests.factories import (
    contact_lane,
    inbound,
    lane_stream,
    make_actor,
    make_instance,
    make_workspace,
    publish,
    run_jobs,
)
from workbench.base.errors import Conflict, NotFound, PermissionDenied
from workbench.services import failures
from workbench.store.db import session_scope
from workbench.store.models import Message


def set_aside(r, monkeypatch, instance_id: int, text: str, phone: str = "5511988887777") -> None:
    """Make a message from ``phone`` fail on every try until the drain sets it aside, then let storing work again."""
    real = inbound_mod._store_message

    def store(session, instance, event, applied, *rest):
        if event.text == text:
            raise RuntimeError("tabela indisponível")
        return real(session, instance, event, applied, *rest)

    monkeypatch.setattr(inbound_mod, "_store_message", store)
    publish(inbound(instance_id, phone=phone, text=text))
    run_jobs()
    lane = contact_lane(instance_id, phone)
    for _ in range(jobs.MAX_ATTEMPTS):  # the retries the drain schedules, run now
        r.delete(DRAIN_FLAG.format(drain_unit(instance_id, lane)), DRAIN_LOCK.format(drain_unit(instance_id, lane)))
        wake_inbound_drain(r, instance_id, lane)
        run_jobs()
    monkeypatch.setattr(inbound_mod, "_store_message", real)
    assert r.xlen(IN_FAILED_STREAM.format(instance_id))


def set_aside_malformed(r, instance_id: int) -> None:
    """An entry the connector could never have meant: set aside at once, unreadable."""
    r.xadd(lane_stream(instance_id), {"e": '{"kind": "message", "instance_id": 1}'})
    wake_inbound_drain(r, instance_id, contact_lane(instance_id))
    run_jobs()


def _texts(instance_id: int) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Message.text).where(Message.instance_id == instance_id).order_by(Message.id)))


@pytest.fixture
def number(engine, r):
    ws = make_workspace()
    return ws, make_instance(ws)


def test_managers_see_what_failed_and_why(number, r, monkeypatch):
    ws, inst = number
    set_aside(r, monkeypatch, inst, "quero **negrito** <b>")
    set_aside_malformed(r, inst)
    total, items = failures.list_failures(make_actor(ws, "supervisor"), inst)
    assert total == 2
    unreadable, message = items  # most recent first
    assert (message.kind, message.phone, message.preview) == ("text", "5511988887777", "quero **negrito** <b>")
    assert (message.code, message.reason, message.tries) == ("error", "RuntimeError: tabela indisponível",
                                                             jobs.MAX_ATTEMPTS)
    assert message.readable and message.received_at <= message.failed_at
    assert (unreadable.kind, unreadable.code, unreadable.tries, unreadable.readable) == (None, "malformed", 0, False)
    assert unreadable.preview.startswith('{"kind": "message"') and unreadable.reason


def test_reprocessing_sends_the_event_back_once_and_a_drain_stores_it(number, r, monkeypatch):
    ws, inst = number
    admin = make_actor(ws, "admin")
    set_aside(r, monkeypatch, inst, "pedido 123")
    [failure] = failures.list_failures(admin, inst)[1]
    failures.retry_failure(admin, inst, failure.id)
    with pytest.raises(NotFound):
        failures.retry_failure(admin, inst, failure.id)  # a second click finds nothing: queued once
    run_jobs()
    assert _texts(inst) == ["pedido 123"]
    assert failures.list_failures(admin, inst) == (0, [])
    assert not r.hlen(f"wb:in-attempts:{inst}:{contact_lane(inst, '5511988887777')}"), "tries start again from zero"


def test_an_unreadable_event_cannot_be_reprocessed_only_discarded(number, r):
    ws, inst = number
    admin = make_actor(ws, "admin")
    set_aside_malformed(r, inst)
    [failure] = failures.list_failures(admin, inst)[1]
    with pytest.raises(Conflict) as refused:
        failures.retry_failure(admin, inst, failure.id)
    assert refused.value.key == "error.failure_unreadable"
    failures.discard_failure(admin, inst, failure.id)
    assert failures.list_failures(admin, inst) == (0, [])
    with pytest.raises(NotFound):
        failures.discard_failure(admin, inst, failure.id)


@pytest.mark.parametrize("bogus", ["abc", "1-2-3", "0-0", "9" * 21 + "-0", "", "*"])
def test_ids_that_name_no_failure_are_not_found(number, r, bogus):
    ws, inst = number
    admin = make_actor(ws, "admin")
    set_aside_malformed(r, inst)
    for action in (failures.retry_failure, failures.discard_failure):
        with pytest.raises(NotFound):
            action(admin, inst, bogus)
    assert failures.list_failures(admin, inst)[0] == 1


def test_agents_and_other_workspaces_cannot_see_or_touch_failures(number, r):
    ws, inst = number
    set_aside_malformed(r, inst)
    [failure] = failures.list_failures(make_actor(ws, "admin"), inst)[1]
    agent = make_actor(ws, "agent")
    stranger = make_actor(make_workspace("Outra"), "admin")
    with pytest.raises(PermissionDenied):
        failures.list_failures(agent, inst)
    for action in (failures.retry_failure, failures.discard_failure):
        with pytest.raises(PermissionDenied):
            action(agent, inst, failure.id)
        with pytest.raises(NotFound):
            action(stranger, inst, failure.id)
    with pytest.raises(NotFound):
        failures.list_failures(stranger, inst)
    assert r.xlen(IN_FAILED_STREAM.format(inst)) == 1, "still there, untouched"


def test_the_list_is_bounded_and_previews_are_short(number, r):
    ws, inst = number
    for _ in range(failures.LIST_LIMIT + 5):
        r.xadd(IN_FAILED_STREAM.format(inst), {"e": "x" * 100_000, "code": "malformed", "reason": "bad"})
    total, items = failures.list_failures(make_actor(ws, "admin"), inst, limit=1000)
    assert (total, len(items)) == (failures.LIST_LIMIT + 5, failures.LIST_LIMIT)
    assert all(len(item.preview) <= failures.PREVIEW_CHARS for item in items)
