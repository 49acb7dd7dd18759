"""RQ entry points. Jobs take ids, open their own sessions and publish only after commit.

Inbound drains (docs/architecture.md, "Message paths"): a number's inbound events are split over lanes by
contact (``connector.contracts.lane_of``), one stream per lane, and each lane is a drain unit drained by one job
at a time, in stream order. So one conversation is never handled by two workers at once and its messages are
handled in arrival order, while different lanes of one number — and different numbers — drain in parallel on
different workers, or together in one job when every worker is busy. The number's single stream of before lanes
(``wb:in:{id}``, a backlog left by an older version) is one more unit, drained before any of its lanes. Three
things keep that true when a worker dies, hangs or loses Redis:

- **A short lease.** The unit's lock (``wb:lock:in:{unit}``) lives ``LOCK_TTL_MS`` and a heartbeat thread renews
  it, with the wake-up flag, every ``HEARTBEAT_S`` while the job runs. A worker killed mid-drain stops renewing, so
  within a few seconds the flag and the lock are gone and the next wake-up (the connector's next event, the sweep)
  starts a new drain.
- **A fencing token.** Taking a lane adds one to its ``drain_lanes.epoch``; every transaction that stores the
  lane's events locks that row and checks the value (``apply_events``). A drain that lost its lease cannot
  commit over the next one, and the transactions of one lane never overlap; other lanes' rows are not touched.
- **Tries counted first.** Entries a previous drain read but never finished (it died, timed out or failed) are
  tried one at a time, least-tried first, and each try is counted in Redis *before* it runs. An event that killed
  or hung its worker, or raised, ``MAX_ATTEMPTS`` times moves to ``wb:in-failed:{id}`` with its reason; only its
  own contact's later events wait for it meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import redis
from pydantic import ValidationError
from rq import Queue, Retry
from rq.timeouts import JobTimeoutException
from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from connector.contracts import (
    DRAIN_FLAG,
    DRAIN_FLAG_TTL_S,
    DRAIN_JOB,
    DRAIN_JOB_TIMEOUT_S,
    DRAIN_LOCK,
    DRAIN_QUEUED,
    DRAIN_RETRIES,
    DRAIN_RETRY_S,
    IN_ATTEMPTS_HASH,
    IN_FAILED_STREAM,
    IN_GROUP,
    IN_STREAM,
    INBOUND_QUEUE,
    InboundMessage,
    StateChange,
    decode_inbound,
    drain_unit,
    now_ms,
    parse_unit,
    wake_inbound_drain,
)
from engine.worker.inbound import AlreadyStored, Applied, LostDrain, apply_events
from workbench.services import contact_jobs, lgpd, mail, outbox, outside_calls, runs
from workbench.services.instances import sync_instances
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import get_engine, safe_error_text, session_scope
from workbench.store.models import LEGACY_LANE, Conversation, DrainLane, FunnelRun, Instance
from workbench.store.outages import UNAVAILABLE

log = logging.getLogger(__name__)

CONSUMER = "drain"
LOCK_TTL_MS = 5000
HEARTBEAT_S = 1.0
BLOCK_MS = 20
MAX_RUN_S = 30.0  # how long a job reads under a steady flow before a successor goes on (RQ's timeout: 60 s)
YIELD_CHECK_S = 10.0  # how often a job under a steady flow looks for jobs waiting in the workers' other queue
ADOPT_AFTER_MS = 50
ADOPT_MAX = 32
ADOPT_EVERY_S = ADOPT_AFTER_MS / 2000  # how often a drain looks for numbers to adopt
RETRY_AFTER_S = 5
MAX_ATTEMPTS = 5
# How long a lane's send acks and receipts may wait to be stored with its next message: a reply costs three events
# (the lead's message, our send's ack, the "delivered" receipt), and storing each in its own transaction was most
# of a drain's work at a steady trickle. Nobody waits on an ack or receipt (a lead waits on the bot's answer, which
# the message's transaction sends), so they ride with the lane's next message, or go alone after this long.
DEFER_MS = 100
# A drain that reads messages faster than this (per second, over the last RATE_WINDOW_S) pauses drain_gather_ms
# before its next read (``_Drain._busy``).
GATHER_RATE = 200
RATE_WINDOW_S = 0.25
# Why an event was set aside (the ``code`` field of wb:in-failed; the panel names each one).
MALFORMED, ERROR, STUCK = "malformed", "error", "stuck"

# What ends a drain job instead of counting as one event's failure: a server out of reach, RQ's job timeout, or
# the number taken over by another drain.
_STOP = (*UNAVAILABLE, JobTimeoutException, LostDrain)

# Renew a lease (and the flag that keeps connectors from queueing more jobs) only while the lock is still ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  redis.call('set', KEYS[2], '1', 'px', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Remove the number's stream of before lanes once nothing is left in it (an old connector may still append).
_DROP_IF_EMPTY = """
if redis.call('xlen', KEYS[1]) == 0 then return redis.call('del', KEYS[1]) end
return 0
"""


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, IN_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_inbound(instance_id: int, lane: int | None = None,
                  handed: dict[str, tuple[str, int | None]] | None = None) -> dict[str, int]:
    """Store the pending events of one lane of a number (and of units it adopts); returns counts.

    ``lane`` None is the number's stream of before lanes (a backlog an older version left, and the jobs it
    queued with the instance id alone). The job stays a little after its streams run dry
    (``WORKBENCH_DRAIN_LINGER_MS``) so that a steady flow of messages is handled as it arrives instead of paying
    one RQ job per message. When a drain of another unit has waited ``ADOPT_AFTER_MS`` in the queue (every worker
    is busy), this job takes that unit too and reads all its streams in one blocking call, so one worker serves
    many lanes without switching jobs. Each unit is still drained by one job at a time, in stream order.

    A job that read for ``MAX_RUN_S`` while events kept coming hands its units, leases and fencing tokens
    (``handed``: unit -> lock token and epoch) to a job it queues at the front and ends; that job goes on where this
    one stopped, with no unit to take again. Every ``YIELD_CHECK_S`` it also looks whether jobs wait in the workers'
    other queue, and leaves its units for them if so.

    The job always ends with its units handed back: RQ's timeout (an event that hangs) hands them to a new
    drain at once; PostgreSQL out of reach re-raises so that RQ retries later; Redis out of reach ends the job
    quietly. In every case the events stay pending in their streams.
    """
    drain = _Drain(get_redis())
    unit = drain_unit(instance_id, lane)
    with drain.heartbeat(), contextlib.closing(drain):
        try:
            if handed:
                drain.resume(handed)
            if unit not in drain.tokens and not drain.take(unit) and not drain.tokens:
                # Another drain holds this unit (it re-checks the stream when it leaves, see _Drain._leave), or the
                # lane waits for the number's stream of before lanes, whose drain wakes it.
                return {"busy": 1}
            return drain.run()
        except JobTimeoutException:
            log.warning("drain job of %s timed out; its units go to a new drain", _name(unit))
            drain.abandon(wake=True)
            return {**drain.totals, "timed_out": 1}
        except (redis.ConnectionError, redis.TimeoutError):
            log.warning("drain job of %s stopped: Redis out of reach; its events stay pending", _name(unit))
            drain.abandon(wake=False, retried=drain.tokens)
            return {**drain.totals, "redis_down": 1}
        except BaseException:
            drain.abandon(wake=False, retried={unit, *(handed or ())})  # RQ retries the job (PostgreSQL out of reach)
            raise


def _unit(unit: str) -> tuple[int, int | None]:
    """The (instance id, lane) of a unit this module built or read from its own keys."""
    parsed = parse_unit(unit)
    if parsed is None:
        raise ValueError(f"not a drain unit: {unit[:40]!r}")
    return parsed


def _name(unit: str) -> str:
    """A unit for the log: "instance 7 lane 2", or "instance 7" for its stream of before lanes."""
    instance_id, lane = _unit(unit)
    return f"instance {instance_id}" + ("" if lane is None else f" lane {lane}")


def _wake(client: redis.Redis, unit: str) -> None:
    wake_inbound_drain(client, *_unit(unit))


class _Drain:
    """The units one drain job holds: their leases and epochs, held-back contacts, and the loop over streams."""

    def __init__(self, client: redis.Redis) -> None:
        settings = get_settings()
        self.client = client
        self.batch = settings.inbound_batch
        self.linger_s = settings.drain_linger_ms / 1000
        self.gather_s = settings.drain_gather_ms / 1000
        self.tokens: dict[str, str] = {}  # units held -> lock token (shared with the heartbeat thread)
        self.epochs: dict[str, int | None] = {}
        self.held: dict[str, set[str]] = {}  # per unit: contacts whose earlier event failed (order kept)
        # per unit: acks and receipts read but not stored yet (``DEFER_MS``), with when the first was read
        self.deferred: dict[str, tuple[float, list[tuple[bytes, dict, object]]]] = {}
        self.lost: set[str] = set()  # units whose lock the heartbeat found in other hands
        self.recent: deque[tuple[float, int]] = deque()  # (when, messages) of the reads of the last RATE_WINDOW_S
        self.renewed_at = time.monotonic()
        self.guard = threading.Lock()
        self.renew = client.register_script(_RENEW)
        self.release = client.register_script(_RELEASE)
        self.totals = {"stored": 0, "duplicates": 0, "events": 0, "held": 0, "failed": 0, "lanes": 0}
        self.connection: Connection | None = None  # PostgreSQL, kept for the job's life (``transaction``)

    # --- PostgreSQL ----------------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction on the connection this drain keeps for its life: taken from the pool (and
        pinged) once per job, not once per batch, which at a steady trickle of messages is once per event. A
        transaction that fails gives the connection back (the pool discards a broken one); the next takes another.
        """
        if self.connection is None:
            self.connection = get_engine().connect()
        try:
            with self.connection.begin(), Session(bind=self.connection, expire_on_commit=False) as session:
                yield session
                session.flush()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give the connection back to the pool (the job ends, or a transaction failed)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken: the pool discards it
                connection.close()

    # --- the lease ---------------------------------------------------------------------------------------------

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the leases of the held units every ``HEARTBEAT_S`` while the block runs."""
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(stop,), name="drain-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join(timeout=2 * HEARTBEAT_S)  # a renewal stuck on a dead Redis must not hold the job

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            with self.guard:
                held = list(self.tokens.items())
            began = time.monotonic()
            try:
                pipe = self.client.pipeline(transaction=False)
                for unit, token in held:
                    self.renew(keys=[DRAIN_LOCK.format(unit), DRAIN_FLAG.format(unit)],
                               args=[token, LOCK_TTL_MS], client=pipe)
                kept = pipe.execute() if held else []
            except redis.RedisError:
                continue  # Redis out of reach: the main loop fails too, or the lease lapses and another drain fences
            with self.guard:
                self.lost.update(unit for (unit, _), ok in zip(held, kept, strict=True) if not ok)
                self.renewed_at = began

    def _lease_lapsed(self) -> bool:
        """True when the leases were not renewed for so long that they may have expired (a frozen process)."""
        with self.guard:
            return time.monotonic() - self.renewed_at > LOCK_TTL_MS / 1000 - HEARTBEAT_S

    def _drop_lost(self) -> None:
        with self.guard:
            lost, self.lost = self.lost & set(self.tokens), set()
        for unit in lost:
            self._drop(unit)

    def _drop(self, unit: str) -> None:
        """Forget a unit another drain took over: its keys and its pending entries are that drain's now."""
        log.warning("drain of %s lost its lock; the drain that took it carries on", _name(unit))
        self._forget(unit)

    def _forget(self, unit: str) -> str:
        with self.guard:
            token = self.tokens.pop(unit)
        self.epochs.pop(unit, None)
        self.deferred.pop(unit, None)  # still pending in the stream: whoever drains the unit next stores them
        return token

    # --- taking, reading and leaving units ---------------------------------------------------------------------

    def take(self, unit: str) -> bool:
        """Lock a unit for this job, fence it, and settle its leftovers (entries read before but not finished).

        A lane of a number whose stream of before lanes still exists is not taken: that stream goes first (its
        drain is woken, and wakes the lanes when it has emptied and removed the stream), so a contact's events
        queued before an upgrade are handled before its new ones.
        """
        instance_id, lane = _unit(unit)
        stream = IN_STREAM.format(unit)
        legacy_exists = bool(self.client.exists(IN_STREAM.format(drain_unit(instance_id, None))))
        if legacy_exists != (lane is None):
            # a lane behind the stream of before lanes, or that stream already gone (an old job, a late wake-up)
            self.client.zrem(DRAIN_QUEUED, unit)
            if lane is not None:
                wake_inbound_drain(self.client, instance_id)
            return False
        token = f"{_lock_owner()}|{secrets.token_hex(8)}"
        if not self.client.set(DRAIN_LOCK.format(unit), token, nx=True, px=LOCK_TTL_MS):
            return False
        with self.guard:
            self.tokens[unit] = token
            self.renewed_at = time.monotonic()
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(DRAIN_QUEUED, unit)
        pipe.set(DRAIN_FLAG.format(unit), "1", px=LOCK_TTL_MS)  # lives as long as the lease from now on
        pipe.execute()
        self.held[unit] = set()
        self.totals["lanes"] += 1
        self.epochs[unit] = _claim(instance_id, lane)
        _ensure_group(self.client, stream)
        try:
            self._settle(unit, self._history(unit))
        except LostDrain:
            self._drop(unit)
        return True

    def resume(self, handed: dict[str, tuple[str, int | None]]) -> None:
        """Go on with units the previous job of a worker handed over (``run``): each keeps its lock token and
        epoch while its lease still holds the token; a unit whose lease lapsed meanwhile is taken anew, or left to
        the drain that took it."""
        units = list(handed)
        pipe = self.client.pipeline(transaction=False)
        for unit in units:
            self.renew(keys=[DRAIN_LOCK.format(unit), DRAIN_FLAG.format(unit)],
                       args=[handed[unit][0], LOCK_TTL_MS], client=pipe)
        for unit, kept in zip(units, pipe.execute(), strict=True):
            if parse_unit(unit) is None:
                continue
            if not kept:
                self.take(unit)
                continue
            token, epoch = handed[unit]
            with self.guard:
                self.tokens[unit] = token
                self.renewed_at = time.monotonic()
            self.epochs[unit] = epoch
            self.held[unit] = set()
            self.totals["lanes"] += 1

    def run(self) -> dict[str, int]:
        """Read the held streams as events arrive until idle for the linger time, MAX_RUN_S is over, or jobs wait in
        the workers' other queue; in the last two cases, with events still coming, hand the units over to a new job
        instead of leaving them (``_hand_over``: unless jobs wait in the other queue)."""
        began = idle_since = adopted_at = checked_at = time.monotonic()
        got_any = False  # a read brought events
        busy = False  # stopped at MAX_RUN_S with events still coming
        while self.tokens:
            self._drop_lost()
            if not self.tokens or self._lease_lapsed():
                break
            streams = {IN_STREAM.format(unit): ">" for unit in self.tokens}
            got = _read(self.client, streams, self.batch, block_ms=BLOCK_MS)
            now = time.monotonic()
            messages = 0
            for unit in {*got, *(u for u, (since, _) in self.deferred.items() if now - since >= DEFER_MS / 1000)}:
                try:
                    messages += self._process(unit, got.get(unit, []), now)
                except LostDrain:
                    self._drop(unit)
            if got:
                idle_since, got_any = now, True
                if self._busy(now, messages) and sum(len(entries) for entries in got.values()) < self.batch:
                    # Messages are coming fast: let more gather before the next read, as a read that returns at the
                    # first event makes batches of two or three under load, and each batch costs a transaction and
                    # a round trip (``drain_gather_ms``).
                    _pause(self.gather_s)
            if now - idle_since > self.linger_s:
                break
            overdue = now - began > MAX_RUN_S
            if overdue or now - checked_at > YIELD_CHECK_S:
                checked_at = now
                if overdue or self._others_waiting():
                    # Events came within the linger time, though perhaps not in this very read (a steady trickle
                    # has gaps of a few ms): hand over, or leave for the other queue's jobs (``_hand_over``).
                    # Ending at every check cost a gap of about 35 ms in the answers each time (the job's end and
                    # its successor's start, not broken down further): under a paced flow, the p99's worst cluster.
                    busy = got_any
                    break
            if now - adopted_at >= ADOPT_EVERY_S:  # not after every batch: one round trip per message saved
                adopted_at = now
                self._adopt()
        for unit in list(self.tokens):
            if unit in self.deferred and not self._lease_lapsed():  # else they are the next drain's leftovers
                try:
                    self._process(unit, [], None)
                except LostDrain:
                    self._drop(unit)
        if busy and not self._lease_lapsed():
            self._hand_over()
        for unit in list(self.tokens):
            self._leave(unit)
        return self.totals

    def _busy(self, now: float, messages: int) -> bool:
        """Whether this drain has read more than ``GATHER_RATE`` messages a second over the last ``RATE_WINDOW_S``
        (``messages`` just now). Acks and receipts do not count: a paced flow brings them with each message, and
        nobody waits on them. A paced flow stays under the rate, and a pause would only delay its replies."""
        if messages:
            self.recent.append((now, messages))
        while self.recent and now - self.recent[0][0] > RATE_WINDOW_S:
            self.recent.popleft()
        return bool(self.gather_s) and sum(count for _, count in self.recent) > GATHER_RATE * RATE_WINDOW_S

    def _others_waiting(self) -> bool:
        """Whether jobs wait in the workers' other queue (funnel timers, contact jobs, the daily retention)."""
        return bool(Queue(runs.TIMER_QUEUE, connection=self.client).count)

    def _hand_over(self) -> None:
        """Queue the next job with the units this one holds (those without failed events waiting for a try), at
        the front of the queue, unless the workers' other queue has jobs waiting: the worker that runs it next
        renews the leases, which hold for ``LOCK_TTL_MS`` meanwhile. Leaving and taking them again instead cost a
        fencing transaction per unit and left the units after the first waiting ``ADOPT_AFTER_MS`` to be adopted:
        a stall of about 100 ms every ``MAX_RUN_S``."""
        handed = {unit: (token, self.epochs[unit]) for unit, token in self.tokens.items() if not self.held[unit]}
        if not handed or self._others_waiting():
            # Jobs wait in the workers' other queue (funnel timers, contact jobs, the daily retention): leave instead,
            # as a job queued at the front would keep a busy worker from ever getting to them.
            return
        instance_id, lane = _unit(next(iter(handed)))
        # retried like every drain job while PostgreSQL is away; a retry finds the leases given back and takes anew
        Queue(INBOUND_QUEUE, connection=self.client).enqueue(
            DRAIN_JOB, instance_id, lane, handed, job_timeout=DRAIN_JOB_TIMEOUT_S, result_ttl=0, failure_ttl=86400,
            at_front=True, retry=Retry(max=DRAIN_RETRIES, interval=DRAIN_RETRY_S))
        for unit in handed:
            self._forget(unit)

    def _adopt(self) -> None:
        """Take units whose drain job has waited too long for a free worker."""
        due = now_ms() - ADOPT_AFTER_MS
        for member in self.client.zrangebyscore(DRAIN_QUEUED, "-inf", due, start=0, num=ADOPT_MAX):
            if len(self.tokens) >= ADOPT_MAX:
                return
            unit = member.decode() if isinstance(member, bytes) else member
            if parse_unit(unit) is None:
                self.client.zrem(DRAIN_QUEUED, member)  # names nothing this version drains
            elif unit not in self.tokens:
                self.take(unit)

    def _history(self, unit: str) -> list:
        """Every entry of the unit's stream delivered to the drains but not finished, in stream order."""
        stream = IN_STREAM.format(unit)
        entries, start = [], "0"
        while reply := self.client.xreadgroup(IN_GROUP, CONSUMER, {stream: start}, count=self.batch):
            chunk = reply[0][1]
            if not chunk:
                break
            start = chunk[-1][0]
            gone = [entry_id for entry_id, fields in chunk if not fields]  # deleted while pending
            if gone:
                self.client.xack(stream, IN_GROUP, *gone)
            entries.extend(e for e in chunk if e[1])
        return entries

    def _leave(self, unit: str) -> None:
        """Hand a stream back: release the lock, clear the flag, then queue a new drain for anything not delivered.

        The lock goes first, so a drain queued from here finds the unit free. Clearing the flag before looking
        closes the race with a connector that appended an event just before: either its SET NX saw no flag and
        queued a job itself, or its event is in the stream and seen here. The number's stream of before lanes is
        removed once empty, and its lanes, which waited for it, are woken.
        """
        client = self.client
        instance_id, lane = _unit(unit)
        stream = IN_STREAM.format(unit)
        self.release(keys=[DRAIN_LOCK.format(unit)], args=[self._forget(unit)])
        client.delete(DRAIN_FLAG.format(unit))
        if lane is None and not self.held[unit] and client.register_script(_DROP_IF_EMPTY)(keys=[stream]):
            wake_waiting(client, IN_STREAM.format(f"{instance_id}:*"))
            return
        info = client.xinfo_stream(stream)
        group = next((g for g in client.xinfo_groups(stream) if g["name"] in (IN_GROUP, IN_GROUP.encode())), None)
        if group and info["last-generated-id"] != group["last-delivered-id"] and info["length"]:
            wake_inbound_drain(client, instance_id, lane)
        if self.held[unit]:
            # events that failed wait for a later try; their tries are counted until they are set aside
            Queue(INBOUND_QUEUE, connection=client).enqueue_in(
                timedelta(seconds=RETRY_AFTER_S), DRAIN_JOB, instance_id, lane, job_timeout=DRAIN_JOB_TIMEOUT_S,
                result_ttl=0, failure_ttl=86400)

    def abandon(self, *, wake: bool, retried: Iterable[str] = ()) -> None:
        """Hand back every unit still held after the job was cut short; their events stay pending.

        Where Redis is out of reach this does what it can, and the leases lapse by themselves.

        Args:
            wake: queue a new drain for each unit at once (after RQ's timeout: the try that hung is counted).
                Otherwise the flag stays up as "a job is queued", for RQ retries the failed job.
            retried: the units RQ's retry of this job takes again (its own, those handed to it). The others it
                adopted are put up for adoption again, or they would wait for the sweep: their own job may have
                ended already, finding them held by this one.
        """
        retried = set(retried)
        for unit in list(self.tokens):
            token = self._forget(unit)
            try:
                self.release(keys=[DRAIN_LOCK.format(unit)], args=[token])
                if wake:
                    self.client.delete(DRAIN_FLAG.format(unit))
                    _wake(self.client, unit)
                else:
                    self.client.set(DRAIN_FLAG.format(unit), "1", ex=DRAIN_FLAG_TTL_S)
                    if unit not in retried:
                        self.client.zadd(DRAIN_QUEUED, {unit: now_ms()}, nx=True)
            except redis.RedisError:
                pass  # Redis is out of reach: the lease lapses by itself

    # --- storing -----------------------------------------------------------------------------------------------

    def _parse(self, unit: str, entries: list) -> list[tuple[bytes, dict, object]]:
        """Decode entries; a malformed one is set aside at once (it will never read better)."""
        parsed = []
        for entry_id, fields in entries:
            try:
                parsed.append((entry_id, fields, decode_inbound(fields)))
            except ValidationError as exc:
                self._bury(unit, entry_id, fields, MALFORMED, exc.errors()[0]["msg"], 0)
        return parsed

    def _process(self, unit: str, entries: list, now: float | None) -> int:
        """Store newly read entries, after the unit's deferred ones, in one transaction; if that fails, try them one
        at a time. Returns how many of the new entries were messages.

        Acks and receipts alone wait for the lane's next message (``DEFER_MS``) unless ``now`` is None (the drain
        is leaving) or they waited long enough; they stay pending in the stream meanwhile, so a drain that dies
        leaves them to the next as leftovers, like any entry it read.
        """
        held = self.held[unit]
        since, parsed = self.deferred.pop(unit, (now, []))
        new = self._parse(unit, entries)
        messages = sum(isinstance(event, InboundMessage) for _, _, event in new)
        parsed = parsed + new
        if (now is not None and now - since < DEFER_MS / 1000 and len(parsed) < self.batch
                and not any(isinstance(event, InboundMessage | StateChange) for _, _, event in parsed)):
            self.deferred[unit] = (since, parsed)
            return messages
        ready = [item for item in parsed if _contact_key(item[2]) not in held]
        self.totals["held"] += len(parsed) - len(ready)
        if ready:
            self._store(unit, ready, held)
        return messages

    def _store(self, unit: str, ready: list[tuple[bytes, dict, object]], held: set[str]) -> None:
        """``_process``'s transaction for the entries ``ready`` (none of a held-back contact)."""
        try:
            applied = _apply(unit, [event for _, _, event in ready], self.epochs[unit], self.transaction)
        except _STOP:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad event must not block the batch: try one at a time
            log.warning("batch of %s events for %s failed (%s); trying them one at a time",
                        len(ready), _name(unit), _where(exc))
            for entry_id, fields, event in ready:
                if _contact_key(event) in held:
                    self.totals["held"] += 1
                    continue
                self._try_alone(unit, entry_id, fields, event)
            return
        self._finish(unit, [entry_id for entry_id, _, _ in ready], applied)
        self.totals["events"] += len(ready)

    def _settle(self, unit: str, entries: list) -> None:
        """Try leftovers one at a time: per contact in stream order, the least-tried contact first.

        A leftover was read by a drain that did not finish it: that drain died, hung or failed on it or on an
        event of its batch. Trying each alone finds the culprit; trying the least-tried first lets every other
        contact through before the culprit's next try, which may kill this job too.
        """
        parsed = self._parse(unit, entries)
        if not parsed:
            return
        tries = self.client.hmget(IN_ATTEMPTS_HASH.format(unit), [entry_id for entry_id, _, _ in parsed])
        queues: dict[str, deque] = {}
        for order, ((entry_id, fields, event), tried) in enumerate(zip(parsed, tries, strict=True)):
            queues.setdefault(_contact_key(event), deque()).append((int(tried or 0), order, entry_id, fields, event))
        while queues:
            key = min(queues, key=lambda k: queues[k][0][:2])
            tried, _, entry_id, fields, event = queues[key].popleft()
            if tried >= MAX_ATTEMPTS:  # its worker died or hung on every try
                self._bury(unit, entry_id, fields, STUCK, "", tried)
            elif not self._try_alone(unit, entry_id, fields, event):
                del queues[key]  # its contact's later events wait, in order, for the next try
                continue
            if not queues[key]:
                del queues[key]

    def _try_alone(self, unit: str, entry_id: bytes, fields: dict, event) -> bool:
        """One event in its own transaction, its try counted before it runs; False when it failed and waits."""
        tried = self.client.hincrby(IN_ATTEMPTS_HASH.format(unit), entry_id, 1)
        try:
            applied = _apply(unit, [event], self.epochs[unit], self.transaction)
        except _STOP:
            raise
        except Exception as exc:  # noqa: BLE001 - counted, tried again later, then kept in the failed stream
            log.warning("event %s of %s failed on try %s (%s)", entry_id, _name(unit), tried, _where(exc))
            if tried >= MAX_ATTEMPTS:
                self._bury(unit, entry_id, fields, ERROR, _describe(exc), tried)
                return True
            self.held[unit].add(_contact_key(event))
            self.totals["held"] += 1
            return False
        self._finish(unit, [entry_id], applied, counted=True)
        self.totals["events"] += 1
        return True

    def _finish(self, unit: str, entry_ids: list, applied: Applied, counted: bool = False) -> None:
        """After commit: publish commands and timers, tell live views, then drop the entries from the stream (in
        the same round trip as the commands unless RQ jobs are queued in between)."""
        stream = IN_STREAM.format(unit)

        def acknowledge(pipe) -> None:
            pipe.xack(stream, IN_GROUP, *entry_ids)
            pipe.xdel(stream, *entry_ids)
            if counted:
                pipe.hdel(IN_ATTEMPTS_HASH.format(unit), *entry_ids)

        runs.publish_effects(self.client, applied.effects, applied.workspaces, then=acknowledge)
        self.totals["stored"] += applied.stored
        self.totals["duplicates"] += applied.duplicates

    def _bury(self, unit: str, entry_id: bytes, fields: dict, code: str, reason: str, tried: int) -> None:
        """Move an event that cannot be stored to the number's failed stream (kept for the panel), never dropping
        it."""
        stream = IN_STREAM.format(unit)
        failed = IN_FAILED_STREAM.format(_unit(unit)[0])
        kept = {k: v for k, v in fields.items() if k in (b"e", "e")} or {"e": ""}
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(failed, {**kept, "code": code, "reason": reason[:500], "tries": tried, "entry": entry_id})
        pipe.xack(stream, IN_GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        pipe.hdel(IN_ATTEMPTS_HASH.format(unit), entry_id)
        pipe.execute()
        self.totals["failed"] += 1
        log.error("event %s of %s set aside in %s (%s, %s tries)", entry_id, _name(unit), failed, code, tried)


def _lock_owner(host: str | None = None, pid: int | None = None) -> str:
    """The process part of a drain lock's token, so the locks of a worker known dead can be freed at once."""
    return f"{host or socket.gethostname()}.{pid or os.getpid()}"


def release_drains_of(client: redis.Redis, host: str, pid: int) -> list[str]:
    """Free the units a dead worker process held and wake their drains; returns the units (``"{id}:{lane}"``).

    Its leases would lapse within ``LOCK_TTL_MS`` anyway; freeing them when the worker is known dead saves those
    seconds. Fencing (``drain_lanes.epoch``) still protects the stored messages should the worker not be dead
    after all.
    """
    prefix = _lock_owner(host, pid).encode() + b"|"
    release = client.register_script(_RELEASE)
    freed = []
    for key in client.scan_iter(match=DRAIN_LOCK.format("*"), count=200):
        unit = key.decode()[len(DRAIN_LOCK.format("")):]
        if parse_unit(unit) is None:
            continue
        token = client.get(key)
        if token and token.startswith(prefix) and release(keys=[key], args=[token]):
            client.delete(DRAIN_FLAG.format(unit))
            _wake(client, unit)
            freed.append(unit)
    return freed


def wake_waiting(client: redis.Redis, pattern: str) -> int:
    """Queue a drain for every inbound stream matching ``pattern`` that holds events and whose unit no drain
    holds (its flag may be left from a job that will not come); returns how many were woken."""
    woken = 0
    prefix = len(IN_STREAM.format(""))
    for key in client.scan_iter(match=pattern, count=500):
        unit = key.decode()[prefix:]
        if parse_unit(unit) is not None and client.xlen(key) and not client.exists(DRAIN_LOCK.format(unit)):
            client.delete(DRAIN_FLAG.format(unit))
            _wake(client, unit)
            woken += 1
    return woken


def _claim(instance_id: int, lane: int | None) -> int | None:
    """Take the lane's next fencing token (None for a number PostgreSQL does not know)."""
    row = LEGACY_LANE if lane is None else lane
    with session_scope() as session:
        chosen = select(Instance.id, literal(row), literal(1)).where(Instance.id == instance_id)
        return session.scalar(
            pg_insert(DrainLane).from_select(["instance_id", "lane", "epoch"], chosen)
            .on_conflict_do_update(index_elements=[DrainLane.instance_id, DrainLane.lane],
                                   set_={"epoch": DrainLane.epoch + 1})
            .returning(DrainLane.epoch))


def _pause(seconds: float) -> None:
    """Sleep between two reads of a drain under load (a function of its own so a test can see it)."""
    time.sleep(seconds)


def _read(client: redis.Redis, streams: dict[str, str], batch: int, block_ms: int | None = None) -> dict[str, list]:
    """XREADGROUP of new entries on several streams; returns entries per unit."""
    reply = client.xreadgroup(IN_GROUP, CONSUMER, streams, count=batch, block=block_ms)
    prefix = len(IN_STREAM.format(""))
    return {stream.decode()[prefix:]: entries for stream, entries in reply or [] if entries}


def _apply(unit: str, events: list, epoch: int | None,
           transaction: Callable[[], contextlib.AbstractContextManager[Session]]) -> Applied:
    """Store events in one ``transaction``, fenced by the drain's epoch for the unit's lane."""
    instance_id, lane = _unit(unit)
    row = LEGACY_LANE if lane is None else lane
    try:
        with transaction() as session:
            return apply_events(session, instance_id, events, epoch, row)
    except AlreadyStored:
        # another transaction stored one of them after this one looked: once more, where the check sees it
        with transaction() as session:
            return apply_events(session, instance_id, events, epoch, row)


def _contact_key(event) -> str:
    return event.phone if isinstance(event, InboundMessage) else "__connector__"


def _describe(exc: BaseException) -> str:
    """Why an event failed, for the panel: the error's type and first line, without SQL, parameters or data."""
    if isinstance(exc, DBAPIError):
        # PostgreSQL's message and DETAIL quote values (phones, bodies), SQLAlchemy's the statement
        return safe_error_text(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def _where(exc: BaseException) -> str:
    """An error's type and the line that raised it, for the log: never its message, which may carry a body."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{place}"


def funnel_timer(run_id: int, token: str) -> None:
    """A funnel run's delay or reply timeout is due (a stale token does nothing)."""
    client = get_redis()
    with session_scope() as session:
        effects = runs.on_timer(session, run_id, token)
        workspace_id = session.scalar(select(FunnelRun.workspace_id).where(FunnelRun.id == run_id))
    runs.publish_effects(client, effects, [workspace_id] if workspace_id else ())


def email_notification(notification_id: int) -> str:
    """E-mail a "Notificar humano" notification; an SMTP failure raises, so RQ retries it (``runs.enqueue_emails``).
    The funnel never waits for this job."""
    return mail.notification_email(notification_id)


def sweep() -> dict[str, int]:
    """Periodic repair: mirror desired states, wake drains with waiting events, re-publish unsent commands,
    forget send claims nobody can need any more, queue again (or give up on) contact jobs nothing runs, and hand
    lost outside calls and unapplied results back to the calls pool (and prune month-old finished ones)."""
    client = get_redis()
    running = sync_instances(client)
    woken = wake_waiting(client, IN_STREAM.format("*"))
    with session_scope() as session:
        republished = outbox.republish_pending(session, client)
        pruned = outbox.prune_claims(session, client)
        resumed = _end_expired_pauses(session)
        overdue = runs.due_timers(session)
        contact_jobs_recovered = contact_jobs.recover(session, client)
        calls = outside_calls.recover(session)
        calls_pruned = outside_calls.prune(session)
    runs.schedule_timers(client, overdue)
    runs.enqueue_calls(client, calls)
    return {"running": running, "drains_woken": woken, "republished": republished, "claims_pruned": pruned,
            "pauses_ended": resumed, "timers_rescheduled": len(overdue), "contact_jobs": contact_jobs_recovered,
            "outside_calls": len(calls), "outside_calls_pruned": calls_pruned}


def retention() -> dict:
    """The daily retention run: empty message bodies and media older than each workspace's setting (LGPD)."""
    return lgpd.apply_retention_everywhere()


def _end_expired_pauses(session) -> int:
    """Give conversations back to the bot when their pause had an end time that passed (auto-resume)."""
    result = session.execute(update(Conversation).where(
        Conversation.bot_paused.is_(True), Conversation.bot_paused_until.is_not(None),
        Conversation.bot_paused_until <= func.now(),
    ).values(bot_paused=False, bot_paused_reason=None, bot_paused_until=None, bot_paused_by=None))
    return result.rowcount
