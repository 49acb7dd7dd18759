"""The calls pool: runs funnel steps' outside calls (models, webhooks, Odoo) away from the inbound drains.

Why a pool of its own (docs/architecture.md, "Outside calls"): a model answers in seconds. Run inside a drain it
would hold back every other contact of the number; run as RQ jobs on the drains' queue it would take the few
workers the drains need. Here one process (``python -m workbench calls``, supervised by ``workers`` like the RQ
workers) takes due call ids from the Redis sorted set ``runs.CALLS_QUEUE`` and runs each in a thread, at most
``WORKBENCH_OUTSIDE_CALLS_CONCURRENCY`` at once; the calls wait on the network, so threads are enough. Each try
claims its row in PostgreSQL first, so an id taken twice runs once, and an id lost with Redis or with this process
is put back by the sweep (``outside_calls.recover``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import redis

from workbench.services import outside_calls
from workbench.services.runs import CALLS_QUEUE
from workbench.store import db

log = logging.getLogger(__name__)

TICK_S = 0.02
"""How often the pool looks for due calls when it has a free slot and found none (a model takes seconds)."""

# Take up to ARGV[2] ids due by ARGV[1] (ms), atomically, so two pools never take the same entry.
_TAKE = """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('zrem', KEYS[1], unpack(ids)) end
return ids
"""


def take_due(client: redis.Redis, limit: int) -> list[int]:
    """Remove and return up to ``limit`` call ids whose try is due."""
    if limit <= 0:
        return []
    taken = client.eval(_TAKE, 1, CALLS_QUEUE, repr(time.time() * 1000 + 1), limit)
    return [int(x) for x in taken]


def run_one(client: redis.Redis, call_id: int) -> str:
    """Run one try of a call; never raises (a database or Redis outage leaves the row for the sweep)."""
    try:
        return outside_calls.run_call(call_id, client)
    except Exception:  # noqa: BLE001 - one call's failure must not stop the pool
        log.exception("outside call %s could not be settled; the sweep will take it again", call_id)
        return "error"


def run_due(client: redis.Redis) -> dict[str, int]:
    """Run every due call in this thread until none is due (tests and tools); returns outcomes counted."""
    counts: dict[str, int] = {}
    while ids := take_due(client, 100):
        for call_id in ids:
            outcome = run_one(client, call_id)
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def run_pool(client: redis.Redis, concurrency: int, stop: threading.Event) -> int:
    """Run due calls, ``concurrency`` at a time, until ``stop``; waits for Redis when it is away.

    The executors (the OpenAI SDK, httpx: about 40 MB) are imported by the first call, not here: a workspace that
    never calls out never pays for them."""
    db.reserve_connections(concurrency)  # every thread needs a connection around its call
    inflight: set[Future] = set()
    guard = threading.Lock()

    def done(future: Future) -> None:
        with guard:
            inflight.discard(future)

    with ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="call") as pool:
        while not stop.is_set():
            with guard:
                free = concurrency - len(inflight)
            try:
                ids = take_due(client, free)
            except redis.RedisError as exc:
                log.warning("calls pool: Redis unreachable (%s); trying again", type(exc).__name__)
                stop.wait(0.5)
                continue
            for call_id in ids:
                future = pool.submit(run_one, client, call_id)
                with guard:
                    inflight.add(future)
                future.add_done_callback(done)
            if not ids:
                stop.wait(TICK_S)
    return 0
