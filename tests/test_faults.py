"""The product's own processes under faults: SIGKILLed workers, scheduler and connector, Redis restarted with
and without its data, PostgreSQL stopped.

Each test runs ``python -m workbench`` processes against a Redis of its own (``own_redis``), and the fault runs
(``tests/faultrun.py``) against a PostgreSQL of their own too, so restarting them disturbs nothing else. The
full-size version is ``bench/chaos.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from tests import faultrun
from workbench.launcher import MAX_BACKOFF_S, QUICK_RESTART_S, Child
from workbench.store.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """An embedded Redis for one test, which the test may stop and start."""
    server = EmbeddedRedis(Path(f"/tmp/wbt-f-{uuid.uuid4().hex[:8]}"))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


def _wait(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (redis.RedisError, psutil.Error):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _children(proc: subprocess.Popen, marker: str) -> list[int]:
    found = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if f" {marker} " in f" {' '.join(child.cmdline())} " and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child.pid)
        except psutil.Error:
            continue
    return sorted(found)


def _lock_owner(client: redis.Redis) -> str | None:
    owner = client.get("rq:scheduler-lock:default")
    return owner.decode() if owner else None


@pytest.fixture
def workers(servers, own_redis, tmp_path) -> Iterator[tuple[subprocess.Popen, redis.Redis]]:
    """``python -m workbench workers --count 1`` on ``own_redis``, stopped (and checked for leftovers) after."""
    env = dict(os.environ) | {"REDIS_URL": own_redis.url(), "WORKBENCH_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "workers", "--count", "1"], cwd=ROOT, env=env,
                            stdout=(tmp_path / "workers.log").open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    client = redis.Redis.from_url(own_redis.url())
    try:
        _wait(lambda: _children(proc, "workbench worker") and _lock_owner(client), 60, "a worker and a scheduler")
        yield proc, client
    finally:
        started = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        _wait(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started), 20,
              "the workers and the scheduler to end with their supervisor")


def test_a_killed_scheduler_is_replaced_within_seconds_and_delays_still_fire(workers):
    proc, client = workers
    [first] = _children(proc, "workbench scheduler")
    assert _lock_owner(client) == f"{socket.gethostname()}.{first}"
    os.kill(first, signal.SIGKILL)
    job = Queue("default", connection=client).enqueue_in(
        timedelta(seconds=1), "os.getpid", result_ttl=60)
    second = _wait(lambda: [p for p in _children(proc, "workbench scheduler") if p != first], 10, "a new scheduler")
    assert len(second) == 1  # exactly one, never two
    _wait(lambda: _lock_owner(client) == f"{socket.gethostname()}.{second[0]}", 10, "the lease to pass on")
    _wait(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 20, "the delayed job to run")


def test_workers_and_scheduler_ride_out_a_redis_restart(workers, own_redis):
    proc, client = workers
    before = _children(proc, "workbench worker") + _children(proc, "workbench scheduler")
    own_redis.stop()
    time.sleep(1.5)
    own_redis.start()
    job = Queue("default", connection=client).enqueue("os.getpid", result_ttl=60)
    delayed = Queue("default", connection=client).enqueue_in(
        timedelta(seconds=1), "os.getpid", result_ttl=60)
    _wait(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 30, "a job after the restart")
    _wait(lambda: delayed.get_status(refresh=True) == JobStatus.FINISHED, 30, "a delayed job after the restart")
    # the same processes: nobody exited and waited for a restart
    assert _children(proc, "workbench worker") + _children(proc, "workbench scheduler") == before


def test_a_killed_workers_job_is_settled_at_once_and_the_worker_is_back(workers):
    proc, client = workers
    queue = Queue("default", connection=client)
    job = queue.enqueue("time.sleep", 300, job_timeout=600)
    _wait(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 30, "the job to start")
    [worker] = _children(proc, "workbench worker")
    os.kill(worker, signal.SIGKILL)
    # RQ alone keeps it listed as started until its timeout (here 10 minutes)
    _wait(lambda: job.get_status(refresh=True) == JobStatus.FAILED, 15, "the dead worker's job to be settled")
    assert StartedJobRegistry("default", connection=client).get_job_ids() == []
    assert "AbandonedJobError" in (Job.fetch(job.id, connection=client).latest_result().exc_string or "")
    back = _wait(lambda: [p for p in _children(proc, "workbench worker") if p != worker], 5, "a new worker")
    assert len(back) == 1


def _fault_run(tmp_path: Path, **faults) -> faultrun.Report:
    """600 messages from 60 leads at 40/s over two numbers, the welcome funnel active (30 leads answer the
    menu, 30 wait for its 30 s timeout and go on chatting), under ``faults``."""
    plan = faultrun.Plan(messages=600, rate=40, leads=60, menu_timeout_s=30, workers=2, pg_down_s=10,
                         settle_timeout_s=150, **faults)
    work = Path(f"/tmp/wbt-c-{uuid.uuid4().hex[:8]}")
    try:
        report = faultrun.run(plan, work, log_path=tmp_path / "up.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report.lines()))  # the stall figures: printed, not asserted (no timed assertions)
    assert (report.sent, report.replies_expected, report.timers_due) == (600, 450, 30)
    assert report.failures == {}
    assert (report.stored, report.replies_delivered, report.timers_fired) == (600, 450, 30)
    return report


def test_nothing_lost_or_duplicated_under_kills_restarts_and_a_postgresql_outage(tmp_path):
    """Workers SIGKILLed every 3 s, a connector SIGKILLed, Redis restarted (keeping its data) and PostgreSQL
    stopped for 10 s while leads talk to the welcome funnel."""
    report = _fault_run(tmp_path, worker_kills=[3.0, 6.0, 9.0, 12.0, 15.0], connector_kills=[4.0],
                        redis_restarts=[7.0], pg_stops=[9.0])
    assert report.scheduler_processes == 1
    assert report.scheduler_lock_owners == report.scheduler_names


def test_nothing_lost_or_duplicated_when_redis_comes_back_without_its_data(tmp_path):
    """PostgreSQL stops, events pile up in Redis, and Redis restarts empty: the connectors' journals publish
    the events again, the sweep re-publishes the replies and re-schedules the timers Redis held."""
    _fault_run(tmp_path, pg_stops=[5.0], redis_wipes=[10.0])


def test_a_crashed_child_is_back_at_once_and_only_a_crash_loop_backs_off():
    child = Child("breve", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    delays = []
    for _ in range(6):
        child.start()
        child.proc.wait()
        before = time.monotonic()
        child.check()
        delays.append(round(child.next_start - before, 1))
    assert delays[:2] == [QUICK_RESTART_S, QUICK_RESTART_S]  # a one-off crash: back within a second
    # three runs in a row that died in their start-up: a crash loop, which backs off
    assert delays[2:] == sorted(delays[2:]) and delays[2] > QUICK_RESTART_S and delays[-1] <= MAX_BACKOFF_S
    assert child.restarts == 6
    # a process killed after it ran a while (a worker SIGKILLed every few seconds) is back at once, every time
    for _ in range(3):
        child.start()
        child.proc.wait()
        child.started_at -= 10
        before = time.monotonic()
        child.check()
        assert round(child.next_start - before, 1) == QUICK_RESTART_S
