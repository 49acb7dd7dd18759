"""The calls pool: runs funnel steps' outside calls (models, webhooks, Odoo) away from the inbound drains.

Why a pool of its own (docs/architecture.md, "Outside calls"): a model answers in seconds. Run inside a drain it
would hold back every other contact of the number; run as RQ jobs on the drains' queue it would take the few
workers the drains need. Here one process (``python -m workbench calls``, supervised by ``workers`` like the RQ
workers) takes due call ids from the Redis sorted set ``runs.CALLS_QUEUE`` and runs each in a thread, at most
``WORKBENCH_OUTSIDE_CALLS_CONCURRENCY`` at once; the calls wait on the network, so threads are enough. Between
calls it sleeps on ``runs.CALLS_WAKE`` until the next try is due or a new call is queued, instead of polling
(which cost Redis and this process a round trip every 20 ms, all day, for a workspace that never calls out). Each try
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
from workbench.services.runs import CALLS_QUEUE, CALLS_WAKE
from workbench.store import db

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0
"""The longest the pool sleeps with nothing due: a queued call wakes it at once (``runs.CALLS_WAKE``), so this only
bounds how late it notices an entry queued without a wake, and how long a stop waits."""

# Take up to ARGV[2] ids due by ARGV[1] (ms), atomically, so two pools never take the same entry; clear the wake-up
# list (what it announced is in the set, seen here) and return the next due time of what is left.
_TAKE = """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('zrem', KEYS[1], unpack(ids)) end
redis.call('del', KEYS[2])
local nxt = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
return {ids, nxt[2] or false}
"""


def _take(client: redis.Redis, limit: int) -> tuple[list[int], float | None]:
    """Remove up to ``limit`` due call ids; returns them and when (epoch ms) the next one left is due."""
    ids, next_due = client.register_script(_TAKE)(keys=[CALLS_QUEUE, CALLS_WAKE],
                                                  args=[repr(time.time() * 1000 + 1), limit])
    return [int(x) for x in ids], float(next_due) if next_due else None


def take_due(client: redis.Redis, limit: int) -> list[int]:
    """Remove and return up to ``limit`` call ids whose try is due."""
    return _take(client, limit)[0] if limit > 0 else []


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

    slot_freed = threading.Event()

    def done(future: Future) -> None:
        with guard:
            inflight.discard(future)
        slot_freed.set()

    with ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="call") as pool:
        while not stop.is_set():
            with guard:
                free = concurrency - len(inflight)
            if free <= 0:
                slot_freed.wait(IDLE_WAIT_S)
                slot_freed.clear()
                continue
            try:
                ids, next_due = _take(client, free)
                if not ids:
                    # sleep until the next try is due or a queued call wakes the pool, not in a polling loop
                    wait = IDLE_WAIT_S if next_due is None else (next_due - time.time() * 1000) / 1000
                    client.blpop([CALLS_WAKE], timeout=min(max(wait, 0.001), IDLE_WAIT_S))
            except redis.RedisError as exc:
                log.warning("calls pool: Redis unreachable (%s); trying again", type(exc).__name__)
                stop.wait(0.5)
                continue
            for call_id in ids:
                future = pool.submit(run_one, client, call_id)
                with guard:
                    inflight.add(future)
                future.add_done_callback(done)
    return 0
