"""The RQ processes ``python -m workbench workers`` supervises: workers, the one scheduler, and reaping.

We run our own mains rather than ``rq worker --with-scheduler`` because of how RQ behaves under faults
(docs/architecture.md, "Processes under faults"):

- RQ's scheduler is a forked child of one worker. SIGKILL of that worker orphans it (it keeps its lock and
  outlives everything), a Redis restart ends it, and no other worker takes over for up to ten minutes. Here the
  scheduler is a process of its own, supervised like the workers, and it holds RQ's scheduler locks as a
  ``SCHEDULER_LEASE_S`` lease renewed every second: a replacement takes over within seconds of a crash, and two
  schedulers never move the same jobs.
- RQ's worker loop quits on any exception that escapes a job's bookkeeping (Redis restarted in the middle of
  it). Here the same process waits for Redis and works again, settling what it had in hand first.
- A worker killed by SIGKILL leaves its job listed as started until RQ's maintenance notices, minutes later,
  and its drain leases in place for a few seconds. The scheduler process notices the death within a second
  (``reap_dead_workers``): it frees the dead worker's drain leases and wakes their drains, and settles its job
  (retried when it has retries left, failed otherwise).

- RQ has no periodic jobs, and the sweep (``engine.worker.jobs.sweep``, every 15 s) and the daily retention were
  jobs: a job needs a worker, and a worker's drain leaves its lanes for a job waiting in the other queue, so with
  one worker each of them stopped the answers for its length plus taking the lanes again (``bench/pipeline.py``'s
  paced p99 showed it; a retention over a long history takes far longer). Here they run in a thread of the
  scheduler process (``run_sweeps``), beside the drains rather than in their place, once per period across
  machines.

Every process here also ends with its parent (``die_with_parent``), so a supervisor killed by SIGKILL leaves
no orphan holding a lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable

import psutil
import redis
import setproctitle
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry, clean_registries
from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock
from rq.worker_registration import clean_worker_registry

from engine.worker.jobs import release_drains_of, retention, sweep

log = logging.getLogger(__name__)

SCHEDULER_LEASE_S = 5  # how long a dead scheduler's locks keep a replacement waiting
SCHEDULER_TICK_S = 1.0  # how often due jobs are moved to their queues (RQ's own interval)
REGISTRY_CLEANUP_S = 60  # how often the scheduler cleans RQ's registries (RQ's workers do it every 10 minutes)
REDIS_RETRY_S = 0.5  # how often a process out of Redis's reach tries again
SWEEP_EVERY_S = 15
RETENTION_EVERY_S = 24 * 3600
# set for the period by the machine whose scheduler ran the task in it
SWEEP_TICK = "wb:sweep-tick"
RETENTION_TICK = "wb:retention-tick"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Have the kernel send us SIGTERM when our parent dies (Linux); exit now if it already has."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent == 1 or os.getppid() != parent:
        raise SystemExit(0)


def _wait_for_redis(client: redis.Redis, stop: threading.Event | None = None) -> bool:
    """Block until Redis answers; False when ``stop`` was set meanwhile."""
    while stop is None or not stop.is_set():
        try:
            client.ping()
            return True
        except redis.RedisError:
            time.sleep(REDIS_RETRY_S)
    return False


# --- workers -----------------------------------------------------------------------------------------------------


class ResilientWorker(SimpleWorker):
    """A ``SimpleWorker`` that tells a requested stop from a crash, and waits briefly for a Redis that is away."""

    # RQ waits 1 s, 2 s, 4 s ... up to 60 s between dequeue attempts while Redis is away; a restart takes seconds.
    max_connection_wait_time = 2.0
    stop_requested_by_signal = False
    _title: str | None = None

    def procline(self, message: str) -> None:
        """Keep the process's own title (``python -m workbench worker``, which `ps` and supervisors read) and
        show RQ's state after it, where RQ would replace the whole title."""
        if ResilientWorker._title is None:  # once per process: later workers of this process keep the same title
            ResilientWorker._title = setproctitle.getproctitle()
        setproctitle.setproctitle(f"{ResilientWorker._title} [{message}]")

    def request_stop(self, signum, frame) -> None:
        """Warm shutdown (SIGTERM/SIGINT): finish the job in hand, then return from ``work``."""
        self.stop_requested_by_signal = True
        try:
            super().request_stop(signum, frame)
        except redis.RedisError:
            # RQ asks Redis whether we are busy; unreachable, stop now (a job in hand is reaped and retried).
            raise SystemExit(0) from None


def run_worker(redis_url: str, queues: Iterable[str]) -> int:
    """Work ``queues`` until SIGTERM, starting over in this process whenever RQ's loop ends on an error."""
    client = redis.Redis.from_url(redis_url, health_check_interval=30)
    queue_names = list(queues)
    while True:
        worker = None
        try:
            worker = ResilientWorker(queue_names, connection=client,
                                     name=f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
            worker.work(logging_level="WARNING", with_scheduler=False)
        except redis.RedisError as exc:  # raised by RQ's setup or teardown when Redis is away
            log.warning("worker: Redis unreachable (%s)", type(exc).__name__)
        if worker is not None and worker.stop_requested_by_signal:
            return 0
        # RQ's loop ended on an error it logged (usually Redis went away mid-job): start over once Redis is back,
        # after settling the job this incarnation had in hand.
        _wait_for_redis(client)
        if worker is not None:
            with contextlib.suppress(redis.RedisError):
                reap_worker(client, worker.name)
        time.sleep(REDIS_RETRY_S)  # never spin on an error that is not Redis's


def reap_worker(client: redis.Redis, name: str) -> int:
    """Settle the jobs a dead worker had started and unregister it; returns how many jobs it had."""
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=client)
    if worker is None:
        return 0
    executions = worker.get_current_executions(refresh=True)
    registries: dict[str, StartedJobRegistry] = {}
    for execution in executions:
        try:
            job = Job.fetch(execution.job_id, connection=client)
        except NoSuchJobError:
            continue
        registry = registries.setdefault(job.origin, StartedJobRegistry(job.origin, connection=client))
        # Mark the entry as expired, then let RQ's own cleanup retry or fail it exactly as it would minutes later.
        client.zadd(registry.key, {execution.composite_key: 0}, xx=True)
    for registry in registries.values():
        registry.cleanup(timestamp=0)
    worker.register_death()
    return len(executions)


def reap_dead_workers(client: redis.Redis) -> int:
    """Reap the registered workers of this machine whose process is gone; returns how many jobs they had."""
    host = socket.gethostname()
    jobs = 0
    for worker in Worker.all(connection=client):
        if worker.hostname == host and worker.pid and not psutil.pid_exists(worker.pid):
            log.warning("worker %s (pid %s) died; settling its jobs", worker.name, worker.pid)
            release_drains_of(client, host, worker.pid)
            jobs += reap_worker(client, worker.name)
    return jobs


# --- the scheduler -----------------------------------------------------------------------------------------------


class LeasedScheduler(RQScheduler):
    """RQ's scheduler (moves due jobs of ``enqueue_at``/``enqueue_in`` and delayed retries to their queues), with
    its locks held as a short lease instead of RQ's 61 s, so a killed scheduler is replaced within seconds."""

    def hold(self, lease_s: int = SCHEDULER_LEASE_S) -> set[str]:
        """Take or renew the lock of each queue; returns the queues this scheduler now owns."""
        owned = {name for name in self._queue_names
                 if acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name, lease_s) != "taken"}
        if owned != self._acquired_locks:
            if owned - self._acquired_locks:
                log.info("scheduler %s: scheduling %s", self.name, ", ".join(sorted(owned)))
            self._acquired_locks = owned
            self._scheduled_job_registries = []  # rebuilt for the owned queues by enqueue_scheduled_jobs
        self.register_birth()  # (re)writes its metadata hash (name, pid, heartbeat) with a TTL, for `rq info`
        return owned


def run_scheduler(redis_url: str, queues: Iterable[str], stop: threading.Event) -> int:
    """Move due jobs to their queues every second until ``stop``; rides out Redis restarts."""
    client = redis.Redis.from_url(redis_url, health_check_interval=30)
    queue_names = list(queues)
    scheduler = LeasedScheduler(queue_names, connection=client, name=f"{socket.gethostname()}.{os.getpid()}")
    next_cleanup = 0.0
    threading.Thread(target=run_sweeps, args=(client, stop), name="sweep", daemon=True).start()
    while not stop.is_set():
        try:
            _reap(client)
            if scheduler.hold():
                scheduler.enqueue_scheduled_jobs()
                if time.monotonic() >= next_cleanup:
                    _clean_registries(client, queue_names)
                    next_cleanup = time.monotonic() + REGISTRY_CLEANUP_S
        except redis.RedisError as exc:
            log.warning("scheduler: Redis unreachable (%s); trying again", type(exc).__name__)
            _wait_for_redis(client, stop)
            continue
        stop.wait(SCHEDULER_TICK_S)
    with contextlib.suppress(redis.RedisError):
        scheduler.release_locks()
        scheduler.register_death()
    return 0


def run_sweeps(client: redis.Redis, stop: threading.Event, sweep=sweep, retention=retention) -> None:
    """Every ``SWEEP_EVERY_S`` until ``stop``: sweep, and once a day apply the workspaces' retention (LGPD), each
    unless another machine did in that period. A failure (PostgreSQL or Redis away) is logged, and the next period
    tries again."""
    tasks = (("sweep", sweep, SWEEP_TICK, SWEEP_EVERY_S), ("retention", retention, RETENTION_TICK, RETENTION_EVERY_S))
    while not stop.wait(SWEEP_EVERY_S):
        for name, task, tick, every_s in tasks:
            try:
                if client.set(tick, "1", nx=True, px=max(1, int(every_s * 900))):  # most of the period
                    done = task()
                    if any(count for key, count in done.items() if key not in ("running", "claims_pruned")):
                        log.info("%s: %s", name, done)  # only when it did something: every 15 s would bury the log
            except Exception as exc:  # noqa: BLE001 - a task's own trouble must not end the scheduler
                log.warning("%s failed (%s); the next period tries again", name, type(exc).__name__)


def _reap(client: redis.Redis) -> None:
    """Every machine's scheduler reaps its own machine's dead workers (only one of them schedules)."""
    try:
        reap_dead_workers(client)
    except redis.RedisError:
        raise
    except Exception:  # noqa: BLE001 - a bug here must not stop the scheduling
        log.exception("could not settle dead workers' jobs")


def _clean_registries(client: redis.Redis, queue_names: Iterable[str]) -> None:
    """RQ's periodic maintenance for our queues: expired registry entries, workers whose key expired."""
    for name in queue_names:
        queue = Queue(name, connection=client)
        clean_registries(queue)
        clean_worker_registry(queue)
