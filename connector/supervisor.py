"""The connector supervisor: one child process per number whose desired state is "running".

Every ``poll_s`` it reads ``wb:instances`` and reconciles:

- a wanted number without a child gets one (``python -m connector run``), unless it is waiting out a
  restart back-off or has used up its restart budget;
- a child whose number is no longer wanted (stopped, removed, transport changed) gets SIGTERM, then
  SIGKILL after ``grace_s``; a missing ``wb:instances`` (Redis lost it) stops nobody;
- a child that exited on its own, stopped writing its heartbeat for ``heartbeat_timeout_s``, or grew past
  ``rss_cap_mb`` is restarted after a back-off (``backoff_base_s`` doubling up to ``backoff_max_s``, back to
  the base once a child stays up ``stable_s``). More than ``restart_budget`` restarts within
  ``budget_window_s`` and the number is left ``failed`` until its desired state changes.

Restarts are recorded in the number's status hash (``restarts``, ``last_restart_reason``,
``last_restart_at``). Children are separate processes and every check is per child, so one bad number never
disturbs the others. A Redis key (``wb:supervisor``, with a TTL) keeps a second supervisor on the same Redis
from starting a second connector for the same number.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from connector import contracts
from connector.contracts import StateChange, now_ms
from connector.transport import TRANSPORTS

log = logging.getLogger(__name__)

LOCK_KEY = "wb:supervisor"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class _Child:
    """What the supervisor knows about one number."""

    instance_id: int
    transport: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0  # monotonic
    started_ms: int = 0
    stopping_since: float | None = None
    stop_reason: str | None = None  # "desired", or the reason of a restart the supervisor forced
    backoff_s: float = 0.0
    next_start: float = 0.0
    restarts: deque = field(default_factory=deque)  # monotonic times within the budget window
    gave_up: bool = False


class Supervisor:
    """Keep the connector children in line with ``wb:instances`` (see the module docstring for the rules).

    Args:
        redis_client: a redis-py client.
        python: interpreter for the children (default: this one).
        child_args: extra arguments for ``python -m connector run`` (tests use it for small intervals).
    """

    def __init__(
        self,
        redis_client: Any,
        *,
        poll_s: float = 1.0,
        grace_s: float = 10.0,
        heartbeat_timeout_s: float = 30.0,
        rss_cap_mb: float = 512.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        stable_s: float = 60.0,
        restart_budget: int = 20,
        budget_window_s: float = 600.0,
        python: str = sys.executable,
        child_args: list[str] | None = None,
    ) -> None:
        self.redis = redis_client
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.rss_cap_bytes = int(rss_cap_mb * 1024 * 1024)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self.restart_budget = restart_budget
        self.budget_window_s = budget_window_s
        self.python = python
        self.child_args = child_args or []
        self.children: dict[int, _Child] = {}
        self._stop = threading.Event()
        self._token = f"{os.getpid()}:{secrets.token_hex(4)}"
        self._lock_ttl_s = max(5, int(poll_s * 10))

    # -- life cycle ------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Reconcile every ``poll_s`` until ``stop()``; then stop every child and return."""
        log.info("supervisor %s running", os.getpid())
        waiting_logged = False
        try:
            while not self._stop.is_set():
                try:
                    if self._hold_lock():
                        waiting_logged = False
                        self.reconcile()
                    else:
                        if not waiting_logged:
                            log.warning("another supervisor holds %s; waiting", LOCK_KEY)
                            waiting_logged = True
                        self._stop_all()
                except redis.RedisError as exc:
                    # Children keep running: they have their own Redis retries, and killing them helps nobody.
                    log.warning("supervisor: Redis unreachable (%s)", type(exc).__name__)
                self._stop.wait(self.poll_s)
        finally:
            self._stop_all()
            self._release_lock()
            log.info("supervisor %s stopped", os.getpid())

    def stop(self) -> None:
        """Ask ``run()`` to stop every child and return."""
        self._stop.set()

    def _hold_lock(self) -> bool:
        if self.redis.set(LOCK_KEY, self._token, nx=True, ex=self._lock_ttl_s):
            return True
        owner = self.redis.get(LOCK_KEY)
        if (owner.decode() if isinstance(owner, bytes) else owner) == self._token:
            self.redis.expire(LOCK_KEY, self._lock_ttl_s)
            return True
        return False

    def _release_lock(self) -> None:
        try:
            owner = self.redis.get(LOCK_KEY)
            if (owner.decode() if isinstance(owner, bytes) else owner) == self._token:
                self.redis.delete(LOCK_KEY)
        except redis.RedisError:
            pass  # it expires on its own

    def _stop_all(self) -> None:
        """SIGTERM every child, wait up to ``grace_s`` for all of them together, SIGKILL the rest."""
        running = [c for c in self.children.values() if c.proc is not None]
        for child in running:
            self._terminate(child, "desired")
        deadline = time.monotonic() + self.grace_s
        for child in running:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("instance %s: no exit after SIGTERM; killing", child.instance_id)
                child.proc.kill()
                child.proc.wait()
            child.proc = None
        self.children.clear()

    # -- reconciliation --------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass: start, stop, check and restart children to match ``wb:instances``."""
        try:
            desired = contracts.desired_instances(self.redis)
        except ValueError:
            # Leave every child as it is rather than act on a half-read list.
            log.error("supervisor: %s holds malformed JSON; skipping this pass", contracts.INSTANCES_HASH)
            return
        if desired is None:
            # Redis lost the list (it is mirrored from PostgreSQL by the sweep): stopping every number until the
            # sweep runs again, possibly after PostgreSQL is back, would take them all offline. Keep the children
            # and keep checking them.
            desired = {i: {"transport": child.transport, "desired": "running"} for i, child in self.children.items()}
        wanted = {i: spec.get("transport", "sandbox") for i, spec in desired.items()
                  if spec.get("desired") == "running"}
        for instance_id, transport in wanted.items():
            child = self.children.get(instance_id)
            if child is None or (child.transport != transport and child.proc is None):
                child = self.children[instance_id] = _Child(instance_id, transport, backoff_s=self.backoff_base_s)
                if transport not in TRANSPORTS:
                    child.gave_up = True  # a child could only exit at once, again and again
                    self._report(instance_id, "failed", "unknown_transport")
        for instance_id, child in list(self.children.items()):
            wanted_here = wanted.get(instance_id) == child.transport
            if child.proc is not None and not wanted_here and child.stop_reason != "desired":
                self._terminate(child, "desired")
            if child.proc is not None:
                self._check(child)
            if child.proc is None:
                if not wanted_here:
                    del self.children[instance_id]
                elif not child.gave_up and time.monotonic() >= child.next_start:
                    self._start(child)

    def _start(self, child: _Child) -> None:
        env = os.environ.copy()
        # The child imports `connector` whatever the supervisor's working directory is.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
        args = [
            self.python, "-m", "connector", "run", "--instance", str(child.instance_id),
            "--transport", child.transport, "--parent-pid", str(os.getpid()), *self.child_args,
        ]
        child.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL)
        child.started_at, child.started_ms = time.monotonic(), now_ms()
        child.stopping_since = child.stop_reason = None
        log.info("instance %s: started connector pid %s (%s)", child.instance_id, child.proc.pid, child.transport)

    def _terminate(self, child: _Child, reason: str) -> None:
        if child.stopping_since is None:
            child.stopping_since, child.stop_reason = time.monotonic(), reason
            log.info("instance %s: stopping pid %s (%s)", child.instance_id, child.proc.pid, reason)
            child.proc.terminate()  # a child that already exited is simply reaped by the next poll()

    def _check(self, child: _Child) -> None:
        """Reap an exited child, enforce the stop grace period, or run the liveness and memory checks."""
        code = child.proc.poll()
        if code is not None:
            child.proc = None
            if child.stop_reason == "desired":
                self._report(child.instance_id, "stopped", "stopped_by_supervisor")
            else:
                reason = child.stop_reason or (f"exit:{code}" if code >= 0 else f"signal:{-code}")
                self._schedule_restart(child, reason)
            return
        if child.stopping_since is not None:
            if time.monotonic() - child.stopping_since > self.grace_s:
                log.warning("instance %s: no exit after SIGTERM; killing", child.instance_id)
                child.proc.kill()
            return
        reason = self._unhealthy(child)
        if reason:
            self._terminate(child, reason)

    def _unhealthy(self, child: _Child) -> str | None:
        raw = self.redis.hget(contracts.STATUS_HASH.format(child.instance_id), "heartbeat")
        # a heartbeat older than the child is its predecessor's: count from the child's start instead
        last = max(int(raw or 0), child.started_ms)
        if now_ms() - last > self.heartbeat_timeout_s * 1000:
            return "heartbeat"
        try:
            if psutil.Process(child.proc.pid).memory_info().rss > self.rss_cap_bytes:
                return "memory"
        except psutil.Error:
            pass  # exiting; the next poll() reaps it
        return None

    def _schedule_restart(self, child: _Child, reason: str) -> None:
        now = time.monotonic()
        if now - child.started_at >= self.stable_s:
            child.backoff_s = self.backoff_base_s  # it had been fine for a while: this is a fresh failure
        child.restarts.append(now)
        while child.restarts and now - child.restarts[0] > self.budget_window_s:
            child.restarts.popleft()
        if len(child.restarts) > self.restart_budget:
            child.gave_up = True
            log.error("instance %s: %s restarts within %ss; giving up until its desired state changes",
                      child.instance_id, len(child.restarts) - 1, self.budget_window_s)
            self._report(child.instance_id, "failed", "restart_budget_exhausted")
            return
        key = contracts.STATUS_HASH.format(child.instance_id)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, "restarts", 1)
            pipe.hset(key, mapping={"last_restart_reason": reason, "last_restart_at": now_ms()})
            pipe.execute()
        log.warning("instance %s: connector ended (%s); restarting in %.1fs", child.instance_id, reason,
                    child.backoff_s)
        self._report(child.instance_id, "disconnected", reason)
        child.next_start = now + child.backoff_s
        child.backoff_s = min(child.backoff_s * 2, self.backoff_max_s)

    def _report(self, instance_id: int, state: str, reason: str) -> None:
        """Record a state the child could not record itself (it is gone), unless it already did."""
        key = contracts.STATUS_HASH.format(instance_id)
        current = self.redis.hget(key, "state")
        if (current.decode() if isinstance(current, bytes) else current) == state:
            return
        self.redis.hset(key, mapping={"state": state, "reason": reason})
        self.redis.hdel(key, "qr", "qr_expires_at", "pair_code", "pair_code_expires_at")
        contracts.publish_inbound(self.redis, StateChange(instance_id=instance_id, state=state, reason=reason,
                                                          timestamp_ms=now_ms()))
