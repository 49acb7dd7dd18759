"""The connector supervisor as a real process over real connector processes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from connector import contracts
from tests.test_connector_support import DEADLINE_S, Processes, events, status, wait_state, wait_until

FAST = ["--poll", "0.1", "--grace", "2", "--heartbeat-timeout", "2", "--backoff-base", "0.2",
        "--child-heartbeat", "0.2"]


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start child processes; none survives the test (grandchildren included)."""
    procs = Processes()
    yield procs
    for proc in procs.started:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
    procs.kill_all()


def _desire(r, **states: str) -> None:
    """Set ``wb:instances`` entries: instance id (as ``i<N>``) -> desired state, sandbox transport."""
    for name, desired in states.items():
        r.hset(contracts.INSTANCES_HASH, name[1:], json.dumps({"transport": "sandbox", "desired": desired}))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _child_pid(r, supervisor, instance_id: int, other_than: int | None = None) -> int:
    """Wait until the supervisor has a live connector child for the instance; return its pid."""
    def current() -> int | None:
        pid = int(status(r, instance_id).get("pid") or 0)
        children = {c.pid for c in psutil.Process(supervisor.pid).children()}
        return pid if pid in children and pid != other_than and _alive(pid) else None

    return wait_until(current, what=f"a connector for instance {instance_id}")


def test_children_follow_the_desired_state(r, processes):
    _desire(r, i1="running", i2="running", i3="stopped")
    supervisor = processes.start("supervise", *FAST)
    pid1, pid2 = _child_pid(r, supervisor, 1), _child_pid(r, supervisor, 2)
    wait_state(r, 1, "awaiting_qr")
    assert len(psutil.Process(supervisor.pid).children()) == 2
    assert "pid" not in status(r, 3)

    _desire(r, i2="stopped", i3="running")
    wait_until(lambda: not _alive(pid2), what="instance 2's connector to stop")
    wait_state(r, 2, "stopped")
    _child_pid(r, supervisor, 3)

    _desire(r, i1="removed")
    wait_until(lambda: not _alive(pid1), what="instance 1's connector to stop")
    pid3 = int(status(r, 3)["pid"])
    wait_until(lambda: [c.pid for c in psutil.Process(supervisor.pid).children()] == [pid3], what="only instance 3")


def test_a_killed_child_is_restarted_without_disturbing_the_others(r, processes):
    _desire(r, i1="running", i2="running")
    supervisor = processes.start("supervise", *FAST)
    pid1, pid2 = _child_pid(r, supervisor, 1), _child_pid(r, supervisor, 2)
    os.kill(pid1, signal.SIGKILL)
    _child_pid(r, supervisor, 1, other_than=pid1)
    restarted = status(r, 1)
    assert (restarted["restarts"], restarted["last_restart_reason"]) == ("1", "signal:9")
    assert int(restarted["last_restart_at"]) <= contracts.now_ms()
    assert _alive(pid2) and int(status(r, 2)["pid"]) == pid2
    assert "restarts" not in status(r, 2)


def test_a_child_with_a_stale_heartbeat_is_replaced(r, processes):
    _desire(r, i1="running")
    supervisor = processes.start("supervise", *FAST)
    pid = _child_pid(r, supervisor, 1)
    wait_until(lambda: status(r, 1).get("heartbeat"), what="a heartbeat")
    os.kill(pid, signal.SIGSTOP)  # alive but hung: only the heartbeat tells
    _child_pid(r, supervisor, 1, other_than=pid)
    assert status(r, 1)["last_restart_reason"] == "heartbeat"
    wait_until(lambda: not _alive(pid), what="the hung connector to be killed")


def test_a_child_over_the_memory_cap_is_restarted_until_the_budget_runs_out(r, processes):
    _desire(r, i1="running")
    supervisor = processes.start("supervise", *FAST, "--rss-cap-mb", "1", "--restart-budget", "2")
    wait_state(r, 1, "failed")
    final = status(r, 1)
    assert (final["reason"], final["restarts"], final["last_restart_reason"]) == (
        "restart_budget_exhausted", "2", "memory")
    wait_until(lambda: not psutil.Process(supervisor.pid).children(), what="no connector left")
    assert events(r, 1, "state")[-1].state == "failed", "the workers learn it too"


def test_an_unknown_transport_fails_without_a_crash_loop(r, processes):
    r.hset(contracts.INSTANCES_HASH, 4, json.dumps({"transport": "carrier-pigeon", "desired": "running"}))
    supervisor = processes.start("supervise", *FAST)
    assert wait_state(r, 4, "failed")["reason"] == "unknown_transport"
    assert psutil.Process(supervisor.pid).children() == []


def test_sigterm_stops_every_child_and_leaves_no_orphan(r, processes):
    _desire(r, i1="running", i2="running", i3="running")
    supervisor = processes.start("supervise", *FAST)
    pids = [_child_pid(r, supervisor, i) for i in (1, 2, 3)]
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(DEADLINE_S) == 0
    assert not any(_alive(pid) for pid in pids)
    assert {status(r, i)["state"] for i in (1, 2, 3)} == {"stopped"}
    assert r.get("wb:supervisor") is None, "the supervisor lock is released"


def test_children_exit_when_the_supervisor_is_killed(r, processes):
    _desire(r, i1="running", i2="running")
    supervisor = processes.start("supervise", *FAST)
    pids = [_child_pid(r, supervisor, i) for i in (1, 2)]
    supervisor.send_signal(signal.SIGKILL)  # no chance to stop them: they notice on their own
    supervisor.wait(DEADLINE_S)
    wait_until(lambda: not any(_alive(pid) for pid in pids), what="the orphaned connectors to exit")


def test_a_second_supervisor_waits_for_the_first(r, processes):
    _desire(r, i1="running")
    first = processes.start("supervise", *FAST)
    pid = _child_pid(r, first, 1)
    second = processes.start("supervise", *FAST)
    assert second.poll() is None and psutil.Process(second.pid).children() == []
    first.send_signal(signal.SIGTERM)
    assert first.wait(DEADLINE_S) == 0
    assert not _alive(pid)
    _child_pid(r, second, 1)  # it took over once the first let go


def test_a_desired_list_lost_with_redis_stops_nobody(r, processes):
    """Redis came back without ``wb:instances`` (the sweep mirrors it from PostgreSQL again later, maybe after an
    outage): the numbers keep running instead of all going offline until then. A mirrored list still rules."""
    _desire(r, i1="running")
    supervisor = processes.start("supervise", *FAST)
    pid = _child_pid(r, supervisor, 1)
    r.delete(contracts.INSTANCES_HASH)
    time.sleep(1)  # many of the supervisor's passes with no list
    assert _alive(pid)
    _desire(r, i1="stopped")
    wait_until(lambda: not _alive(pid), what="the connector to stop once the list says so")
