"""Outside calls: a funnel step's call to a model, an HTTP endpoint or Odoo, run away from the drain.

A node returns ``CallOutside(service, request)`` with a ``Wait(kind="call")``; the runtime
(``workbench.services.runs``) stores an ``outside_calls`` row in the walk's transaction and hands its id to the
calls pool after commit (``runs.enqueue_calls``). The pool (``engine/worker/calls.py``, its own process beside the
RQ workers, at most ``WORKBENCH_OUTSIDE_CALLS_CONCURRENCY`` calls at once) runs ``run_call`` for each due id:

1. **claim** the row (``pending`` → ``running``, one more attempt counted *before* the try runs);
2. **run** the service's executor (``EXECUTORS``): it returns a JSON-able answer, final whether success or a
   definitive failure, or raises ``RetryLater`` (timeouts, 429, 5xx, connection refused) to be tried again after
   ``backoff(attempt)`` seconds, up to ``max_attempts`` tries; after the last one the answer is
   ``{"ok": False, "error": <reason>, "kind": <kind>}``;
3. **store** the answer on the row (``done`` / ``failed``) and commit, *first*;
4. **apply** it to the run in a new transaction that locks the call row and then the run's row, and checks the
   run still waits on that call's wait token (``runs.on_call_result``): a stale token marks the call ``stale``
   and applies nothing; ``applied_at`` is set in the transaction that applied it, so a retried job or the sweep
   never applies — never sends — a result twice.

The call id is the idempotency key an executor passes on (an ``Idempotency-Key`` header, a marker stored in
Odoo). Crash safety: ``recover`` (run by the periodic sweep) puts back ids whose entry in the pool's queue was
lost, turns tries whose process died (``running`` for longer than the executor's ``timeout_s`` plus a margin)
back into ``pending`` (or fails them after the last try), and applies results that were stored but not applied.

Executors live in ``workbench/services`` (one module per service) and register themselves with ``register``;
``EXECUTOR_MODULES`` lists the modules the pool imports.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.services import runs
from workbench.services.auth import Actor
from workbench.store.db import session_scope
from workbench.store.models import FunnelRun, OutsideCall
from workbench.store.text import clean_json

log = logging.getLogger(__name__)

EXECUTOR_MODULES: tuple[str, ...] = ("workbench.services.ai_step", "workbench.services.http_call",
                                     "workbench.services.odoo")
"""Modules that register an executor when imported (the calls pool, the sweep and tests import them all)."""
LOST_MARGIN_S = 30
"""A try still ``running`` this long after its executor's ``timeout_s`` lost its process; a pending call due this
long ago, or a result stored this long ago and not applied, lost its place in the queue."""
MAX_ERROR_CHARS = 300
KEEP_DAYS = 30
"""Finished calls are kept this long (their request and answer hold what the contact said), then pruned."""
PRUNE_BATCH = 5000


class RetryLater(Exception):  # noqa: N818 - it is an instruction, not an error kind
    """Raised by an executor for a failure worth another try (timeout, 429, 5xx, connection refused).

    ``reason`` is short plain text without secrets (it is stored and shown in the run's events); ``kind`` names
    the failure for the node (``timeout``, ``rate_limited``, ``server``, ``unreachable``...).
    """

    def __init__(self, reason: str, kind: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class OutsideCallView:
    """What an executor sees of a call: ``id`` is the idempotency key; ``attempt`` counts from 1."""

    id: int
    workspace_id: int
    run_id: int
    service: str
    request: Mapping[str, Any]
    attempt: int


class Executor(Protocol):
    """Runs one service's calls. ``run`` returns a JSON-able answer (no secrets) or raises ``RetryLater``."""

    max_attempts: int
    timeout_s: float

    def run(self, call: OutsideCallView) -> dict[str, Any]:
        """One try of ``call``."""
        ...

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (from 1) before the next one."""
        ...


@dataclass
class FunctionExecutor:
    """An ``Executor`` from a plain function: ``run``, with exponential backoff (``base_s`` × 2^(attempt-1),
    capped at ``max_backoff_s``)."""

    fn: Callable[[OutsideCallView], dict[str, Any]]
    max_attempts: int = 3
    timeout_s: float = 60.0
    base_s: float = 2.0
    max_backoff_s: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, call: OutsideCallView) -> dict[str, Any]:
        """Run the function."""
        return self.fn(call)

    def backoff(self, attempt: int) -> float:
        """``base_s`` doubled per failed try, capped."""
        return min(self.base_s * 2 ** max(attempt - 1, 0), self.max_backoff_s)


EXECUTORS: dict[str, Executor] = {}
"""service name -> its executor."""


def register(service: str, executor: Executor) -> None:
    """Make ``service`` callable from funnel steps (a later registration of the same name replaces it)."""
    EXECUTORS[service] = executor


def unregister(service: str) -> None:
    """Forget a service's executor (tests)."""
    EXECUTORS.pop(service, None)


def preview_call(actor: Actor, service: str, request: Mapping[str, Any],
                 history: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Run one call for the editor's test chat, now, in this process: a real call (the page says so), one try.

    ``history`` is the test chat's messages (``{"direction", "text"}``). Managers only (the editor is theirs). An
    executor takes part when it has ``preview(actor, request, history)``; a retryable failure is answered as the
    last try's would be.
    """
    actor.require("admin", "supervisor")
    executor = load_executors().get(service)
    preview = getattr(executor, "preview", None)
    if preview is None:
        return {"ok": False, "kind": "config", "error": f"no preview for {service}"}
    try:
        return preview(actor, request, history)
    except RetryLater as exc:
        return {"ok": False, "kind": exc.kind, "error": exc.reason[:MAX_ERROR_CHARS]}


def load_executors() -> dict[str, Executor]:
    """Import every module of ``EXECUTOR_MODULES`` (each registers its executor); returns the registry."""
    for name in EXECUTOR_MODULES:
        importlib.import_module(name)
    return EXECUTORS


# -- one try ------------------------------------------------------------------------------------------------------

def run_call(call_id: int, client: redis.Redis) -> str:
    """Run one try of a due call and settle it; returns what happened.

    ``retry`` (queued again after its backoff), ``applied``, ``stale``, ``held`` (its conversation is with a
    human: applied by the sweep later), or ``skipped`` (not pending nor due: another pool took it, or it is
    finished — then an unapplied result is applied now).
    """
    claimed = _claim(call_id)
    if claimed is None:
        return apply_result(call_id, client) if _unapplied(call_id) else "skipped"
    view, executor = claimed
    started = now()
    try:
        if executor is None:
            answer, status = {"ok": False, "error": f"no executor for {view.service}", "kind": "config"}, "failed"
        else:
            answer, status = executor.run(view), "done"
    except RetryLater as exc:
        answer, status = _retry_or_fail(view, executor, exc.reason, exc.kind, client)
    except Exception as exc:  # noqa: BLE001 - an executor's bug is retried like an outage, then fails the step
        log.warning("outside call %s (%s) try %s raised %s", view.id, view.service, view.attempt, type(exc).__name__)
        answer, status = _retry_or_fail(view, executor, type(exc).__name__, "failed", client)
    if answer is None:
        return "retry"
    _store(view.id, answer, status, started)
    return apply_result(view.id, client)


def _claim(call_id: int) -> tuple[OutsideCallView, Executor | None] | None:
    """pending and due -> running, counting the attempt before the try runs; None when not ours to run."""
    with session_scope() as session:
        row = session.execute(
            update(OutsideCall).where(OutsideCall.id == call_id, OutsideCall.status == "pending",
                                      OutsideCall.due_at <= now())
            .values(status="running", attempts=OutsideCall.attempts + 1, started_at=now())
            .returning(OutsideCall.id, OutsideCall.workspace_id, OutsideCall.run_id, OutsideCall.service,
                       OutsideCall.request, OutsideCall.attempts, OutsideCall.wait_token)).first()
        if row is None:
            return None
        waiting = session.scalar(select(FunnelRun.id).where(FunnelRun.id == row[2], FunnelRun.status == "waiting",
                                                            FunnelRun.wait_token == row[6]))
        if waiting is None:
            # the run moved on while the call waited for its turn: nobody needs its answer (nor its cost)
            session.execute(update(OutsideCall).where(OutsideCall.id == call_id)
                            .values(status="stale", finished_at=now()))
            return None
    view = OutsideCallView(id=row[0], workspace_id=row[1], run_id=row[2], service=row[3], request=row[4] or {},
                           attempt=row[5])
    return view, load_executors().get(view.service)


def _retry_or_fail(view: OutsideCallView, executor: Executor | None, reason: str, kind: str,
                   client: redis.Redis) -> tuple[dict[str, Any] | None, str]:
    """Queue the next try after the executor's backoff, or give the final failure after the last one."""
    reason = reason[:MAX_ERROR_CHARS]
    max_attempts = executor.max_attempts if executor is not None else 1
    if view.attempt < max_attempts:
        delay = executor.backoff(view.attempt) if executor is not None else 0.0
        with session_scope() as session:
            session.execute(update(OutsideCall).where(OutsideCall.id == view.id, OutsideCall.status == "running")
                            .values(status="pending", error=reason, due_at=now() + timedelta(seconds=delay)))
        runs.enqueue_calls(client, [view.id], delay_s=delay)
        return None, "pending"
    return {"ok": False, "error": reason, "kind": kind, "attempts": view.attempt}, "failed"


def _store(call_id: int, answer: dict[str, Any], status: str, started) -> None:
    """Keep the answer on the row before applying it (step 3): a crash after this applies it from the sweep."""
    answer = clean_json(dict(answer))
    answer.setdefault("latency_ms", int((now() - started).total_seconds() * 1000))
    with session_scope() as session:
        session.execute(update(OutsideCall).where(OutsideCall.id == call_id, OutsideCall.status == "running")
                        .values(status=status, result=answer, finished_at=now(),
                                error=str(answer.get("error"))[:MAX_ERROR_CHARS] if answer.get("ok") is False
                                else None))


def _unapplied(call_id: int) -> bool:
    with session_scope() as session:
        return session.scalar(select(OutsideCall.id).where(
            OutsideCall.id == call_id, OutsideCall.status.in_(("done", "failed")),
            OutsideCall.applied_at.is_(None))) is not None


def apply_result(call_id: int, client: redis.Redis) -> str:
    """Apply a stored result to its run once (step 4); returns ``applied``, ``stale``, ``held`` or ``skipped``.

    The call's row is locked first, then the run's: two appliers of one call wait for each other and the second
    finds ``applied_at`` set.
    """
    with session_scope() as session:
        call = session.scalars(select(OutsideCall).where(OutsideCall.id == call_id).with_for_update()).first()
        if call is None or call.applied_at is not None or call.status not in ("done", "failed"):
            return "skipped"
        outcome, effects = runs.on_call_result(session, call, {"call": call_event(call)})
        if outcome == "stale":
            call.status = "stale"
            log.info("outside call %s: run %s moved on; result not applied", call.id, call.run_id)
        elif outcome == "applied":
            call.applied_at = now()
        workspace_id = call.workspace_id
    runs.publish_effects(client, effects, [workspace_id] if outcome == "applied" else ())
    return outcome


def call_event(call: OutsideCall) -> dict[str, Any]:
    """The call's figures for the funnel event: service, attempts, latency, outcome, and what the executor put in
    ``meta`` (for AI: model, tokens, cost estimate). Never the request or secrets."""
    result = call.result or {}
    meta = result.get("meta") if isinstance(result.get("meta"), Mapping) else {}
    outcome = "ok" if result.get("ok", True) is not False else str(result.get("kind") or "failed")
    return {"id": call.id, "service": call.service, "attempts": call.attempts, "outcome": outcome,
            "latency_ms": result.get("latency_ms"), **meta}


# -- recovery ----------------------------------------------------------------------------------------------------

def recover(session: Session) -> list[int]:
    """The sweep's part (``engine.worker.jobs.sweep``): the ids to hand to the calls pool again after commit.

    - ``pending`` calls due more than ``LOST_MARGIN_S`` ago: their queue entry was lost (Redis restarted); a
      duplicate entry is harmless: only one try claims the row;
    - ``running`` tries older than their executor's ``timeout_s`` + ``LOST_MARGIN_S``: their process died; the
      try was counted, so the call goes back to ``pending`` or, after the last try, fails;
    - results stored but not applied for ``LOST_MARGIN_S`` (the process died between storing and applying, or the
      conversation was with a human): the pool applies them (``run_call`` on a finished call applies it).
    """
    cutoff = now() - timedelta(seconds=LOST_MARGIN_S)
    ids = list(session.scalars(select(OutsideCall.id).where(OutsideCall.status == "pending",
                                                            OutsideCall.due_at < cutoff)
                               .order_by(OutsideCall.due_at).limit(1000)))
    running = session.execute(select(OutsideCall.id, OutsideCall.service, OutsideCall.attempts, OutsideCall.started_at)
                              .where(OutsideCall.status == "running").order_by(OutsideCall.started_at)
                              .limit(1000)).all()
    # the executors' limits, only when needed: importing them (model and HTTP clients) costs about 0.4 s of CPU
    # and their memory in the scheduler process, whose sweep thread runs this
    executors = load_executors() if running else {}
    for call_id, service, attempts, started_at in running:
        executor = executors.get(service)
        timeout = executor.timeout_s if executor is not None else 60.0
        if started_at is not None and started_at > now() - timedelta(seconds=timeout + LOST_MARGIN_S):
            continue
        if executor is not None and attempts < executor.max_attempts:
            session.execute(update(OutsideCall).where(OutsideCall.id == call_id, OutsideCall.status == "running")
                            .values(status="pending", due_at=now(), error="lost"))
        else:
            answer = {"ok": False, "error": "lost", "kind": "timeout", "attempts": attempts}
            session.execute(update(OutsideCall).where(OutsideCall.id == call_id, OutsideCall.status == "running")
                            .values(status="failed", result=answer, error="lost", finished_at=now()))
        ids.append(call_id)
    ids.extend(session.scalars(select(OutsideCall.id).where(
        OutsideCall.status.in_(("done", "failed")), OutsideCall.applied_at.is_(None),
        OutsideCall.finished_at < cutoff).order_by(OutsideCall.finished_at).limit(1000)))
    return ids


def prune(session: Session, keep_days: int = KEEP_DAYS) -> int:
    """Delete finished calls (applied, stale, or failed and applied) older than ``keep_days``; returns how many.

    Their figures stay in the funnel events; the rows themselves hold the contact's words. A batch per sweep.
    """
    cutoff = now() - timedelta(days=keep_days)
    old = select(OutsideCall.id).where(
        OutsideCall.finished_at < cutoff,
        (OutsideCall.status == "stale") | OutsideCall.applied_at.is_not(None),
    ).limit(PRUNE_BATCH)
    return session.execute(delete(OutsideCall).where(OutsideCall.id.in_(old))).rowcount
