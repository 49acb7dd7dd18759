"""RQ entry points. Jobs take ids, open their own sessions and publish only after commit.

Ordering (docs/architecture.md, "Message paths"): one number's inbound stream is drained by one job at a time (a Redis
lock per number), in stream order, so one conversation is never handled by two workers at once and its
messages are handled in arrival order. Different numbers drain in parallel on different workers, or
together in one job when every worker is busy.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from pydantic import ValidationError
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from connector.contracts import (
    DRAIN_FLAG,
    DRAIN_JOB,
    DRAIN_QUEUED,
    IN_GROUP,
    IN_STREAM,
    INBOUND_QUEUE,
    InboundMessage,
    decode_inbound,
    now_ms,
    wake_inbound_drain,
)
from engine.worker.inbound import Applied, apply_events
from workbench.services import outbox, runs
from workbench.services.instances import sync_instances
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Conversation, FunnelRun

log = logging.getLogger(__name__)

CONSUMER = "drain"
LOCK_KEY = "wb:lock:in:{}"
LOCK_TTL_S = 60
FLAG_TTL_S = 300
BLOCK_MS = 20
MAX_RUN_S = 10.0
ADOPT_AFTER_MS = 50
ADOPT_MAX = 32
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
    """Store the pending events of one number's inbound stream (and of numbers it adopts); returns counts.

    The job stays a little after its streams run dry (``WORKBENCH_DRAIN_LINGER_MS``) so that a steady flow
    of messages is handled as it arrives instead of paying one RQ job per message. When a drain of another
    number has waited ``ADOPT_AFTER_MS`` in the queue (every worker is busy), this job takes that number
    too and reads all its streams in one blocking call, so one worker serves many numbers without
    switching jobs. Each number is still drained by one job at a time, in stream order.
    """
    client = get_redis()
    drain = _Drain(client)
    if not drain.take(instance_id):
        # Another drain holds this number; it re-checks the stream when it leaves (see _Drain.leave).
        return {"busy": 1}
    try:
        return drain.run()
    finally:
        drain.release()


class _Drain:
    """The numbers one drain job holds: their locks, held-back contacts, and the loop over their streams."""

    def __init__(self, client: redis.Redis) -> None:
        settings = get_settings()
        self.client = client
        self.batch = settings.inbound_batch
        self.linger_s = settings.drain_linger_ms / 1000
        self.locks: dict[int, redis.lock.Lock] = {}
        self.held: dict[int, set[str]] = {}  # per number: contacts whose earlier event failed (order kept)
        self.totals = {"stored": 0, "duplicates": 0, "events": 0, "held": 0, "failed": 0, "numbers": 0}

    def take(self, instance_id: int) -> bool:
        """Lock a number for this job and deliver its leftovers (entries read before but not acknowledged)."""
        lock = self.client.lock(LOCK_KEY.format(instance_id), timeout=LOCK_TTL_S, blocking=False)
        if not lock.acquire():
            return False
        self.client.zrem(DRAIN_QUEUED, str(instance_id))
        self.locks[instance_id] = lock
        self.held[instance_id] = set()
        self.totals["numbers"] += 1
        stream = IN_STREAM.format(instance_id)
        _ensure_group(self.client, stream)
        start = "0"
        while entries := _read(self.client, {stream: start}, self.batch).get(instance_id):
            self._process(instance_id, entries)
            start = entries[-1][0].decode()
        return True

    def run(self) -> dict[str, int]:
        """Read the held streams as events arrive until idle for the linger time or MAX_RUN_S is over."""
        began = idle_since = refreshed = time.monotonic()
        while True:
            streams = {IN_STREAM.format(i): ">" for i in self.locks}
            got = _read(self.client, streams, self.batch, block_ms=BLOCK_MS)
            for instance_id, entries in got.items():
                self._process(instance_id, entries)
            now = time.monotonic()
            if got:
                idle_since = now
            if now - idle_since > self.linger_s or now - began > MAX_RUN_S:
                break
            self._adopt()
            if now - refreshed > 1:
                self._refresh()
                refreshed = now
        for instance_id in list(self.locks):
            self._leave(instance_id)
        return self.totals

    def _process(self, instance_id: int, entries: list) -> None:
        _process(self.client, instance_id, entries, self.held[instance_id], self.totals)

    def _adopt(self) -> None:
        """Take numbers whose drain job has waited too long for a free worker."""
        due = now_ms() - ADOPT_AFTER_MS
        for member in self.client.zrangebyscore(DRAIN_QUEUED, "-inf", due, start=0, num=ADOPT_MAX):
            if len(self.locks) >= ADOPT_MAX:
                return
            self.take(int(member))

    def _refresh(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for instance_id in self.locks:
            pipe.expire(DRAIN_FLAG.format(instance_id), FLAG_TTL_S)
        pipe.execute()
        for lock in self.locks.values():
            lock.extend(LOCK_TTL_S, replace_ttl=True)

    def _leave(self, instance_id: int) -> None:
        """Hand a stream back: clear its flag, then queue a new drain for anything not yet delivered.

        Clearing the flag first closes the race with a connector that appended an event just before:
        either its SET NX saw no flag and queued a job itself, or its event is in the stream and seen here.
        """
        client = self.client
        stream = IN_STREAM.format(instance_id)
        client.delete(DRAIN_FLAG.format(instance_id))
        info = client.xinfo_stream(stream)
        group = next((g for g in client.xinfo_groups(stream) if g["name"] in (IN_GROUP, IN_GROUP.encode())), None)
        if group and info["last-generated-id"] != group["last-delivered-id"] and info["length"]:
            wake_inbound_drain(client, instance_id)
        if self.held[instance_id]:
            # events that failed wait for a later try; their attempts are counted until they are set aside
            Queue(INBOUND_QUEUE, connection=client).enqueue_in(timedelta(seconds=RETRY_AFTER_S), DRAIN_JOB,
                                                               instance_id)

    def release(self) -> None:
        """Release every lock this job holds."""
        for instance_id, lock in self.locks.items():
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("drain lock of instance %s expired before release", instance_id)
        self.locks.clear()


def _read(client: redis.Redis, streams: dict[str, str], batch: int, block_ms: int | None = None) -> dict[int, list]:
    """XREADGROUP on several streams; returns entries per instance id (deleted-while-pending ones acked)."""
    reply = client.xreadgroup(IN_GROUP, CONSUMER, streams, count=batch, block=block_ms)
    result = {}
    for stream, entries in reply or []:
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            client.xack(stream, IN_GROUP, *gone)
            entries = [e for e in entries if e[1]]
        if entries:
            result[int(stream.decode().rsplit(":", 1)[1])] = entries
    return result


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
    """After commit: publish outbound commands and timers, tell live views, then drop the entries from the stream."""
    runs.publish_effects(client, applied.effects)
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


def funnel_timer(run_id: int, token: str) -> None:
    """A funnel run's delay or reply timeout is due (a stale token does nothing)."""
    client = get_redis()
    with session_scope() as session:
        effects = runs.on_timer(session, run_id, token)
        workspace_id = session.scalar(select(FunnelRun.workspace_id).where(FunnelRun.id == run_id))
    runs.publish_effects(client, effects)
    if workspace_id:
        live.touch(client, [workspace_id])


def sweep() -> dict[str, int]:
    """Periodic repair: mirror desired states, wake drains with waiting events, re-publish unsent commands,
    and forget send claims nobody can need any more."""
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
        pruned = outbox.prune_claims(session, client)
        resumed = _end_expired_pauses(session)
        overdue = runs.due_timers(session)
    runs.schedule_timers(client, overdue)
    return {"running": running, "drains_woken": woken, "republished": republished, "claims_pruned": pruned,
            "pauses_ended": resumed, "timers_rescheduled": len(overdue)}


def _end_expired_pauses(session) -> int:
    """Give conversations back to the bot when their pause had an end time that passed (auto-resume)."""
    result = session.execute(update(Conversation).where(
        Conversation.bot_paused.is_(True), Conversation.bot_paused_until.is_not(None),
        Conversation.bot_paused_until <= func.now(),
    ).values(bot_paused=False, bot_paused_reason=None, bot_paused_until=None, bot_paused_by=None))
    return result.rowcount
