"""RQ entry points. Jobs take ids, open their own sessions and publish only after commit.

Ordering (DESIGN.md "Ordering"): one number's inbound stream is drained by one job at a time (a Redis
lock per number), in stream order, so one conversation is never handled by two workers at once and its
messages are handled in arrival order. Different numbers drain in parallel on different workers.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from pydantic import ValidationError
from rq import Queue
from sqlalchemy.exc import OperationalError

from connector.contracts import (
    DRAIN_FLAG,
    DRAIN_JOB,
    IN_GROUP,
    IN_STREAM,
    INBOUND_QUEUE,
    InboundMessage,
    decode_inbound,
    wake_inbound_drain,
)
from engine.inbound import Applied, apply_events
from workbench import live, outbox
from workbench.bus import get_redis
from workbench.config import get_settings
from workbench.db import session_scope

log = logging.getLogger(__name__)

CONSUMER = "drain"
LOCK_KEY = "wb:lock:in:{}"
LOCK_TTL_S = 60
FLAG_TTL_S = 300
BLOCK_MS = 20
MAX_RUN_S = 10.0
RETRY_AFTER_S = 5
MAX_ATTEMPTS = 5
FAILED_STREAM = "wb:in-failed:{}"
ATTEMPTS_HASH = "wb:in-attempts:{}"


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, IN_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_inbound(instance_id: int) -> dict[str, int]:
    """Store the pending events of one number's inbound stream; returns counts for the job result.

    The job stays a little after the stream runs dry (``WORKBENCH_DRAIN_LINGER_MS``) so that a steady flow of
    messages is handled as it arrives instead of paying one RQ job per message, but it yields its worker
    as soon as another job waits in the queue, and after ``MAX_RUN_S`` in any case.
    """
    client = get_redis()
    lock = client.lock(LOCK_KEY.format(instance_id), timeout=LOCK_TTL_S, blocking=False)
    if not lock.acquire():
        # Another drain of this number is running; it re-checks the stream when it stops (see _leave).
        return {"busy": 1}
    try:
        return _drain(client, instance_id, lock)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("drain lock of instance %s expired before release", instance_id)


def _drain(client: redis.Redis, instance_id: int, lock) -> dict[str, int]:
    stream = IN_STREAM.format(instance_id)
    flag = DRAIN_FLAG.format(instance_id)
    _ensure_group(client, stream)
    settings = get_settings()
    batch, linger_s = settings.inbound_batch, settings.drain_linger_ms / 1000
    queue = Queue(INBOUND_QUEUE, connection=client)
    totals = {"stored": 0, "duplicates": 0, "events": 0, "held": 0, "failed": 0}
    held: set[str] = set()  # contacts whose earlier event failed: later ones wait, keeping their order
    # First our own unacknowledged entries (a crashed or failed earlier pass), by id.
    start = "0"
    while entries := _read(client, stream, start, batch):
        _process(client, instance_id, entries, held, totals)
        start = entries[-1][0].decode()
    began = idle_since = time.monotonic()
    while True:
        entries = _read(client, stream, ">", batch, block_ms=BLOCK_MS)
        now = time.monotonic()
        if entries:
            _process(client, instance_id, entries, held, totals)
            idle_since = now
        # queue.count: another number's drain is waiting for a worker, so give this one back
        if now - idle_since > linger_s or now - began > MAX_RUN_S or queue.count:
            break
        client.expire(flag, FLAG_TTL_S)
        lock.extend(LOCK_TTL_S, replace_ttl=True)
    _leave(client, instance_id, held)
    return totals


def _read(client: redis.Redis, stream: str, start: str, batch: int, block_ms: int | None = None) -> list:
    reply = client.xreadgroup(IN_GROUP, CONSUMER, {stream: start}, count=batch, block=block_ms)
    entries = reply[0][1] if reply else []
    gone = [entry_id for entry_id, fields in entries if not fields]  # pending but deleted from the stream
    if gone:
        client.xack(stream, IN_GROUP, *gone)
    return [e for e in entries if e[1]] if gone else entries


def _leave(client: redis.Redis, instance_id: int, held: set[str]) -> None:
    """Hand the stream back: clear the flag, then queue a new drain for anything not yet delivered.

    Clearing the flag first closes the race with a connector that appended an event just before: either
    its SET NX saw no flag and queued a job itself, or its event is already in the stream and seen here.
    """
    stream = IN_STREAM.format(instance_id)
    client.delete(DRAIN_FLAG.format(instance_id))
    info = client.xinfo_stream(stream)
    group = next((g for g in client.xinfo_groups(stream) if g["name"] in (IN_GROUP, IN_GROUP.encode())), None)
    if group and info["last-generated-id"] != group["last-delivered-id"] and info["length"]:
        wake_inbound_drain(client, instance_id)
    if held:
        # events that failed wait for a later try; their attempts are counted until they are set aside
        Queue(INBOUND_QUEUE, connection=client).enqueue_in(timedelta(seconds=RETRY_AFTER_S), DRAIN_JOB,
                                                           instance_id)


def _process(client: redis.Redis, instance_id: int, entries: list, held: set[str], totals: dict[str, int]) -> None:
    stream = IN_STREAM.format(instance_id)
    parsed, malformed = [], []
    for entry_id, fields in entries:
        try:
            parsed.append((entry_id, decode_inbound(fields)))
        except ValidationError as exc:
            malformed.append((entry_id, fields, f"malformed event: {exc.errors()[0]['msg']}"))
    for entry_id, fields, reason in malformed:
        _bury(client, instance_id, entry_id, fields, reason)
        totals["failed"] += 1
    ready = [(eid, ev) for eid, ev in parsed if _contact_key(ev) not in held]
    totals["held"] += len(parsed) - len(ready)
    if not ready:
        return
    try:
        applied = _apply(instance_id, [ev for _, ev in ready])
        _finish(client, stream, [eid for eid, _ in ready], applied, totals)
        totals["events"] += len(ready)
    except OperationalError:
        raise  # PostgreSQL is down: leave everything pending; RQ retries the whole job later
    except Exception:  # noqa: BLE001 - one bad event must not block the batch: retry one by one
        log.exception("batch of %s events for instance %s failed; retrying one by one", len(ready), instance_id)
        for entry_id, event in ready:
            key = _contact_key(event)
            if key in held:
                totals["held"] += 1
                continue
            try:
                applied = _apply(instance_id, [event])
            except OperationalError:
                raise
            except Exception as exc:  # noqa: BLE001 - counted, retried, then kept in the failed stream
                held.add(key)
                totals["held"] += 1
                _count_failure(client, instance_id, entry_id, event, exc, totals)
                continue
            _finish(client, stream, [entry_id], applied, totals)
            totals["events"] += 1


def _apply(instance_id: int, events: list) -> Applied:
    with session_scope() as session:
        return apply_events(session, instance_id, events)


def _finish(client: redis.Redis, stream: str, entry_ids: list, applied: Applied, totals: dict[str, int]) -> None:
    """After commit: publish outbound commands, tell live views, then drop the entries from the stream."""
    outbox.publish(applied.commands, client)
    live.touch(client, applied.workspaces)
    pipe = client.pipeline(transaction=False)
    pipe.xack(stream, IN_GROUP, *entry_ids)
    pipe.xdel(stream, *entry_ids)
    pipe.execute()
    totals["stored"] += applied.stored
    totals["duplicates"] += applied.duplicates


def _contact_key(event) -> str:
    return event.phone if isinstance(event, InboundMessage) else "__connector__"


def _count_failure(client: redis.Redis, instance_id: int, entry_id: bytes, event, exc: Exception,
                   totals: dict[str, int]) -> None:
    attempts = client.hincrby(ATTEMPTS_HASH.format(instance_id), entry_id, 1)
    log.warning("event %s of instance %s failed (attempt %s): %s", entry_id, instance_id, attempts, exc)
    if attempts >= MAX_ATTEMPTS:
        _bury(client, instance_id, entry_id, {"e": event.model_dump_json()}, f"{type(exc).__name__}: {exc}")
        totals["failed"] += 1


def _bury(client: redis.Redis, instance_id: int, entry_id: bytes, fields: dict, reason: str) -> None:
    """Move an event that cannot be stored to the failed stream (kept for inspection), never dropping it."""
    stream = IN_STREAM.format(instance_id)
    pipe = client.pipeline(transaction=False)
    pipe.xadd(FAILED_STREAM.format(instance_id), {**fields, "reason": reason[:2000], "entry": entry_id})
    pipe.xack(stream, IN_GROUP, entry_id)
    pipe.xdel(stream, entry_id)
    pipe.hdel(ATTEMPTS_HASH.format(instance_id), entry_id)
    pipe.execute()
    log.error("event %s of instance %s moved to %s: %s", entry_id, instance_id,
              FAILED_STREAM.format(instance_id), reason[:200])


def sweep() -> dict[str, int]:
    """Periodic repair: mirror desired states, wake drains with waiting events, re-publish unsent commands."""
    from workbench.instances import sync_instances

    client = get_redis()
    running = sync_instances(client)
    woken = 0
    for key in client.scan_iter(match=IN_STREAM.format("*"), count=500):
        instance_id = key.decode().rsplit(":", 1)[1]
        if instance_id.isdigit() and client.xlen(key) and not client.exists(LOCK_KEY.format(instance_id)):
            client.delete(DRAIN_FLAG.format(instance_id))
            wake_inbound_drain(client, int(instance_id))
            woken += 1
    with session_scope() as session:
        republished = outbox.republish_pending(session, client)
    return {"running": running, "drains_woken": woken, "republished": republished}
