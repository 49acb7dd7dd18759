"""RQ entry points. Jobs take ids, open their own sessions and publish only after commit.

Ordering (DESIGN.md "Ordering"): one number's inbound stream is drained by one job at a time (a Redis
lock per number), in stream order, so one conversation is never handled by two workers at once and its
messages are handled in arrival order. Different numbers drain in parallel on different workers.
"""

from __future__ import annotations

import logging
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
MAX_ATTEMPTS = 5
FAILED_STREAM = "wb:in-failed:{}"
ATTEMPTS_HASH = "wb:in-attempts:{}"


class DrainBusy(Exception):
    """Another drain of the same number held the lock for too long; RQ retries the job."""


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, IN_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_inbound(instance_id: int) -> dict[str, int]:
    """Store every pending event of one number's inbound stream; returns counts for the job result."""
    client = get_redis()
    client.delete(DRAIN_FLAG.format(instance_id))  # before reading: a later event queues a new job
    lock = client.lock(f"wb:lock:in:{instance_id}", timeout=300, blocking_timeout=120)
    if not lock.acquire():
        raise DrainBusy(instance_id)
    try:
        return _drain(client, instance_id)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("drain lock of instance %s expired before release", instance_id)


def _drain(client: redis.Redis, instance_id: int) -> dict[str, int]:
    stream = IN_STREAM.format(instance_id)
    _ensure_group(client, stream)
    batch = get_settings().inbound_batch
    totals = {"stored": 0, "duplicates": 0, "events": 0, "held": 0, "failed": 0}
    held: set[str] = set()  # contacts whose earlier event failed: later ones wait, keeping their order
    # First our own unacknowledged entries (a crashed or failed earlier pass), then new ones.
    for start in ("0", ">"):
        while True:
            reply = client.xreadgroup(IN_GROUP, CONSUMER, {stream: start}, count=batch)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            gone = [entry_id for entry_id, fields in entries if not fields]  # pending but already deleted
            if gone:
                client.xack(stream, IN_GROUP, *gone)
            _process(client, instance_id, [e for e in entries if e[1]], held, totals)
            if start != ">":
                start = entries[-1][0].decode()  # pending entries are re-read by id: walk past them
    if held:
        # something failed and is waiting: try again later, the backoff grows with the attempts
        Queue(INBOUND_QUEUE, connection=client).enqueue_in(timedelta(seconds=5), DRAIN_JOB, instance_id)
    return totals


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
        if instance_id.isdigit() and client.xlen(key):
            client.delete(DRAIN_FLAG.format(instance_id))
            wake_inbound_drain(client, int(instance_id))
            woken += 1
    with session_scope() as session:
        republished = outbox.republish_pending(session, client)
    return {"running": running, "drains_woken": woken, "republished": republished}
