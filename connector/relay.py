"""The relay: one connector process, between one number's transport and Redis.

Threads of one relay::

    main            heartbeat in ``wb:conn:{i}`` every ``heartbeat_s``; waits for stop
    transport's     connection, pairing, inbound -> ``on_*`` callbacks -> ``wb:in:{i}:{lane}`` (then acked upstream)
    spool           replays events spooled to ``<data_dir>/spool/<i>.jsonl`` while Redis was unreachable
    control         BLPOP ``wb:ctl:{i}`` -> ``transport.control``
    outbound        XREADGROUP ``wb:out:{i}`` (only while connected) -> one lane per contact
    lane per contact  claim (``connector.claims``), typing, send, ``SendAck``, XACK; idle lanes end after a while

At most once: a command is claimed in the number's claims file (data dir, fsync'd) before it is sent and
marked ``sent:<wa id>`` after. A claim found as ``sent:...`` is acknowledged again without sending; a claim
found as ``sending`` was left by a process that died mid-send, so the message may be out: it is reported as
failed rather than risked twice. The file, not Redis, holds the claims so that a Redis restart between a
send and the worker storing its ack cannot make the re-published command go out again.

Everything for the workers (messages, acks, receipts, state changes) goes through ``connector.spool``: to
its contact's inbound lane ``wb:in:{i}:{lane}`` when Redis answers, else to a local file that is replayed in
order once it does, so the connector keeps running, and loses nothing, while Redis is down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from pydantic import ValidationError

from connector import contracts
from connector.claims import Claims
from connector.contracts import (
    ControlCommand,
    InboundMessage,
    OutboundCommand,
    Receipt,
    SendAck,
    StateChange,
    now_ms,
    phone_digits,
)
from connector.pacing import Pacer
from connector.spool import Spool
from connector.transport import (
    SendUncertainError,
    Transport,
    TransportError,
    load_transport,
)
from workbench.store.config import get_settings

log = logging.getLogger(__name__)

CONSUMER = "relay"  # one relay per instance, so one fixed consumer name finds its own pending entries
# Sender threads of one number. Sends are serialised by the number's pace anyway; more threads only let more
# contacts "type" at once. Every thread may hold a Redis connection, the reader, control, heartbeat and spool
# threads one each: the client's pool is sized for all of them, so a backlog never runs out of connections.
LANE_THREADS = 32
REDIS_CONNECTIONS = LANE_THREADS + 16
CONTROL_BATCH = 100  # control commands taken from the list in one round trip
INTERRUPTED = "interrompido durante o envio"  # the error text the brief fixes for a send cut off by a crash


def _lane_key(command: OutboundCommand) -> str:
    """The contact's lane of a command: digits only, so "+55 11 9..." and "55119..." share one and keep their order."""
    return phone_digits(command.to_phone) or command.to_phone


class _Lanes:
    """Per-contact FIFO lanes served by at most ``max_threads`` threads, so a typing delay for one contact never
    holds up another, and a backlog for thousands of contacts never starts thousands of threads.

    A thread serves one contact's lane until it is empty, then takes the next contact waiting for a thread;
    only one thread serves a contact at a time, so its messages keep their order. A thread with nothing to do
    for ``idle_s`` ends. With every thread busy, new contacts wait their turn (in memory here; the commands
    stay pending in ``wb:out`` until sent).
    """

    def __init__(self, handle: Callable[[Any], None], idle_s: float, max_threads: int) -> None:
        self._handle = handle
        self._idle_s = idle_s
        self._max_threads = max_threads
        self._cond = threading.Condition()
        self._items: dict[str, deque] = {}  # contacts with queued items, or served right now
        self._waiting: deque[str] = deque()  # contacts with items and no thread
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a contact
        self._closing = False

    def dispatch(self, key: str, item: Any) -> None:
        """Queue ``item`` behind the earlier items of the same ``key``."""
        with self._cond:
            items = self._items.get(key)
            if items is not None:  # a thread serves it, or it is waiting for one: either way it gets there
                items.append(item)
                return
            self._items[key] = deque([item])
            self._waiting.append(key)
            if len(self._waiting) <= self._idle:
                self._cond.notify()
            elif len(self._threads) < self._max_threads:
                thread = threading.Thread(target=self._run, name=f"lane-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def serving(self, key: str) -> bool:
        """Whether ``key`` has items queued or in hand (a new item for it must queue behind them)."""
        with self._cond:
            return key in self._items

    @property
    def thread_count(self) -> int:
        """Threads alive now (tests and benchmarks)."""
        with self._cond:
            return len(self._threads)

    def _next(self, key: str | None) -> tuple[str, Any] | None:
        """The next item for this thread: its contact's next, or the first of the next waiting contact."""
        with self._cond:
            if key is not None and not self._items[key]:
                del self._items[key]
                key = None
            if key is None:
                self._idle += 1
                try:
                    if not self._cond.wait_for(lambda: self._waiting or self._closing, self._idle_s) \
                            or self._closing:
                        self._threads.remove(threading.current_thread())
                        return None
                finally:
                    self._idle -= 1
                key = self._waiting.popleft()
            return key, self._items[key].popleft()

    def _run(self) -> None:
        key = None
        while (nxt := self._next(key)) is not None:
            key, item = nxt
            self._handle(item)

    def close(self, timeout: float) -> None:
        """Let each thread finish the item in hand, then end; items still queued stay pending in the stream."""
        with self._cond:
            self._closing = True
            # Queued items are still pending in wb:out (the next start sends them): drop them rather than wait
            # for their typing delays.
            for items in self._items.values():
                items.clear()
            self._waiting.clear()
            threads = list(self._threads)
            self._cond.notify_all()
        for thread in threads:
            thread.join(timeout)


class Relay:
    """Run one number: its transport, its status hash, its inbound and outbound streams.

    Args:
        redis_client: a redis-py client (thread-safe; each blocking thread takes its own pooled connection).
        instance_id: the number's instance id.
        transport: transport name (see ``connector.transport.TRANSPORTS``) or a ``Transport`` class.
        data_dir: the product's data dir (media store, spool); default the settings' ``data_dir``.
        typing_ms_per_char / typing_max_ms: typing indicator pacing; default the settings'
            (``WORKBENCH_TYPING_MS_PER_CHAR``, ``WORKBENCH_TYPING_MAX_MS``); 0 disables it.
        heartbeat_s: how often the status hash's ``heartbeat`` is refreshed (the supervisor's liveness check).
        lane_idle_s: how long an idle sender thread lives.
        lane_threads: most sender threads (``LANE_THREADS``); the client's pool needs that many connections and
            a few more (``REDIS_CONNECTIONS``).
        parent_pid: exit when this process stops being our parent (the supervisor died), so no orphan
            connector keeps a number busy.
        transport_options: extra keyword arguments for the transport's constructor.
    """

    def __init__(
        self,
        redis_client: Any,
        instance_id: int,
        transport: str | type[Transport] = "sandbox",
        *,
        data_dir: Path | str | None = None,
        typing_ms_per_char: int | None = None,
        typing_max_ms: int | None = None,
        heartbeat_s: float = 2.0,
        lane_idle_s: float = 60.0,
        lane_threads: int = LANE_THREADS,
        parent_pid: int | None = None,
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        self.redis = redis_client
        self.instance_id = instance_id
        self.transport_class = load_transport(transport) if isinstance(transport, str) else transport
        settings = get_settings()
        self.data_dir = Path(data_dir) if data_dir is not None else settings.data_dir
        self.typing_ms_per_char = settings.typing_ms_per_char if typing_ms_per_char is None else typing_ms_per_char
        self.typing_max_ms = settings.typing_max_ms if typing_max_ms is None else typing_max_ms
        self.heartbeat_s = heartbeat_s
        self.parent_pid = parent_pid
        self.transport_options = transport_options or {}
        self.status_key = contracts.STATUS_HASH.format(instance_id)
        self.out_stream = contracts.OUT_STREAM.format(instance_id)
        self.transport: Transport | None = None
        self.spool = Spool(redis_client, instance_id, self.data_dir, lanes=settings.inbound_lanes)
        self.claims = Claims(redis_client, instance_id, self.data_dir)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._ready = threading.Event()
        self._state_lock = threading.Lock()
        self._last_state: tuple[str, str | None] | None = None
        # The state fields last set, and those whose write failed while Redis was down (the next heartbeat
        # writes them again).
        self._status: dict[str, Any] | None = None
        self._unwritten_status: dict[str, Any] | None = None
        # Held across send + SendAck and taken by on_receipt: a receipt never reaches the workers before the
        # ack that tells them which outbox row its WhatsApp id belongs to.
        self._send_lock = threading.Lock()
        self.pacer = Pacer(settings.send_min_gap_ms / 1000, settings.sends_per_minute)
        self._lanes = _Lanes(self._process, lane_idle_s, lane_threads)
        self._exit_code = 0

    # -- life cycle ------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until ``stop()`` (or a transport failure); returns the process exit code (0 = clean stop)."""
        self.redis.hdel(self.status_key, "qr", "qr_expires_at", "pair_code", "pair_code_expires_at", "reason")
        self.redis.hset(self.status_key, mapping={"pid": os.getpid(), "heartbeat": now_ms()})
        self.on_state("connecting", "starting")
        self._create_out_group()
        self.spool.start()
        self.transport = self.transport_class(self.instance_id, self, redis_client=self.redis,
                                              data_dir=self.data_dir, **self.transport_options)
        threads = [
            threading.Thread(target=self._read_controls, name="control", daemon=True),
            threading.Thread(target=self._read_outbound, name="outbound", daemon=True),
        ]
        self.transport.start()
        for thread in threads:
            thread.start()
        self._ready.set()
        log.info("instance %s: relay running (pid %s)", self.instance_id, os.getpid())
        while not self._stop.wait(self.heartbeat_s):
            self._beat()
        # Sends in hand finish while the transport is still connected; the reader and control threads end
        # on their own within a blocking read's timeout, meanwhile.
        self._lanes.close(timeout=10)
        self.transport.stop()
        for thread in threads:
            thread.join(timeout=5)
        self._connected.clear()
        try:
            self._set_state("stopped", "shutdown" if self._exit_code == 0 else "transport_error")
        except redis.RedisError as exc:
            log.warning("instance %s: final state not written (%s)", self.instance_id, type(exc).__name__)
        self.spool.stop()
        log.info("instance %s: relay stopped", self.instance_id)
        return self._exit_code

    def stop(self) -> None:
        """Ask ``run()`` to finish: commands in hand complete, the rest stays pending for the next start."""
        self._stop.set()

    def _create_out_group(self) -> None:
        try:
            self.redis.xgroup_create(self.out_stream, contracts.OUT_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ``run()`` has started its threads (tests and benchmarks)."""
        return self._ready.wait(timeout)

    def _beat(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            log.warning("instance %s: supervisor %s is gone; stopping", self.instance_id, self.parent_pid)
            self.stop()
            return
        try:
            with self._state_lock:
                if self._unwritten_status is not None:
                    self._write_status(self._unwritten_status)
                elif self._status is not None and not self.redis.hexists(self.status_key, "state"):
                    # Redis restarted empty: the sweep re-publishes only to numbers it sees connected.
                    self._write_status(self._status)
            if not self.transport.alive():
                # No heartbeat: the supervisor's liveness check restarts a connection that went quiet.
                log.warning("instance %s: transport reports no life; heartbeat withheld", self.instance_id)
                return
            self.redis.hset(self.status_key, "heartbeat", now_ms())
        except redis.RedisError as exc:
            log.warning("instance %s: heartbeat not written (%s)", self.instance_id, type(exc).__name__)

    # -- TransportEvents -------------------------------------------------------------------------------------

    def on_state(self, state: str, reason: str | None = None, phone: str | None = None,
                 push_name: str | None = None) -> None:
        """Record the state in the status hash; publish a ``StateChange`` when state or reason changed."""
        if state == "failed":
            self._exit_code = 1
            self.stop()
        self._set_state(state, reason, phone, push_name)

    def _set_state(self, state: str, reason: str | None = None, phone: str | None = None,
                   push_name: str | None = None) -> None:
        if state == "connected":
            self._connected.set()
        else:
            self._connected.clear()
        with self._state_lock:
            fields: dict[str, Any] = {"state": state, "reason": reason or ""}
            if phone:
                fields.update(phone=phone, push_name=push_name or "")
            # An expired QR series shows no code: the panel would otherwise offer one that can't be scanned.
            stale = [] if state == "awaiting_qr" and reason != "qr_expired" else ["qr", "qr_expires_at"]
            if state != "pairing":
                stale += ["pair_code", "pair_code_expires_at"]
            if state == "logged_out":
                stale += ["phone", "push_name"]
            self._status = {"fields": fields, "stale": stale}
            try:
                self._write_status(self._status)
            except redis.RedisError as exc:
                # The status hash is what the panel shows: keep it and write it again at the next heartbeat.
                log.warning("instance %s: status not written (%s)", self.instance_id, type(exc).__name__)
                self._unwritten_status = {"fields": fields, "stale": stale}
            if (state, reason) != self._last_state:
                self._last_state = (state, reason)
                log.info("instance %s: state %s (%s)", self.instance_id, state, reason or "-")
                self.spool.publish(StateChange(
                    instance_id=self.instance_id, state=state, reason=reason, phone=phone, push_name=push_name,
                    timestamp_ms=now_ms()))

    def _write_status(self, status: dict[str, Any]) -> None:
        """Write state fields and drop stale ones in one transaction (called with ``_state_lock`` held)."""
        with self.redis.pipeline() as pipe:
            if status["stale"]:
                pipe.hdel(self.status_key, *status["stale"])
            pipe.hset(self.status_key, mapping=status["fields"])
            pipe.execute()
        self._unwritten_status = None

    def on_qr(self, code: str, expires_at_ms: int) -> None:
        """Show a new QR code on the Conexões page (ephemeral: lost, not spooled, while Redis is down)."""
        try:
            self.redis.hset(self.status_key, mapping={"qr": code, "qr_expires_at": expires_at_ms})
        except redis.RedisError as exc:
            log.warning("instance %s: QR code not shown (%s)", self.instance_id, type(exc).__name__)

    def on_pair_code(self, code: str, expires_at_ms: int) -> None:
        """Show a phone pairing code on the Conexões page."""
        try:
            self.redis.hset(self.status_key, mapping={"pair_code": code, "pair_code_expires_at": expires_at_ms})
        except redis.RedisError as exc:
            log.warning("instance %s: pairing code not shown (%s)", self.instance_id, type(exc).__name__)

    def on_message(self, message: InboundMessage) -> None:
        """Hand an inbound message to the workers (returns once it is in ``wb:in`` or in the spool file)."""
        self.on_events([message])

    def on_receipt(self, receipt: Receipt) -> None:
        """Hand receipts to the workers, after the ack of any send in progress."""
        self.on_events([receipt])

    def on_events(self, events: list[InboundMessage | Receipt]) -> None:
        """Hand several messages and receipts to the workers at once, in order, in one round trip. Receipts wait for
        the ack of any send in progress, so they never reach the workers before it; a message sets the connection's
        "last inbound at"."""
        messages_only = all(isinstance(event, InboundMessage) for event in events)
        status = (self.status_key, "last_inbound_at", now_ms()) \
            if any(isinstance(event, InboundMessage) for event in events) else None
        with contextlib.nullcontext() if messages_only else self._send_lock:
            self.spool.publish_many(events, status=status)

    # -- control ---------------------------------------------------------------------------------------------

    def _read_controls(self) -> None:
        """Carry out the control list's commands in order. What waits in the list is taken in one round trip (a
        batch's read receipts), and the read receipts taken together go out as one per chat."""
        key = contracts.CONTROL_LIST.format(self.instance_id)
        while not self._stop.is_set():
            try:
                # One round trip: Redis runs a connection's commands in order, so the LPOP takes what else waits
                # once the BLPOP returns.
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.blpop([key], timeout=1)
                    pipe.lpop(key, CONTROL_BATCH - 1)
                    first, rest = pipe.execute()
                items = ([first[1]] if first else []) + (rest or [])
            except redis.RedisError as exc:
                log.warning("instance %s: control list unreadable (%s)", self.instance_id, type(exc).__name__)
                self._stop.wait(1)
                continue
            self.carry_out(items)

    def carry_out(self, items: list[bytes]) -> None:
        """Carry out control commands (JSON) in order; the read receipts among them go out as one per chat."""
        reads: dict[str, list[str]] = {}  # phone -> message ids, in order
        for raw in items:
            try:
                command = ControlCommand.model_validate_json(raw)
            except ValidationError:
                log.error("instance %s: ignoring malformed control command", self.instance_id)
                continue
            if command.action == "mark_read":
                if command.phone and command.wa_ids:
                    reads.setdefault(command.phone, []).extend(command.wa_ids)
                continue
            self._mark_read(reads)  # those before it first: the commands keep their order
            reads = {}
            self.transport.control(command)
        self._mark_read(reads)

    def _mark_read(self, reads: dict[str, list[str]]) -> None:
        """Blue ticks on messages the bot handled (phone -> message ids): cosmetic, so a failure is logged and
        nothing retries it; a connector that is not connected drops them."""
        if not reads or not self._connected.is_set():
            return
        for exc in self.transport.mark_read_many(reads).values():
            log.info("instance %s: read receipt not sent (%s)", self.instance_id, type(exc).__name__)

    # -- outbound --------------------------------------------------------------------------------------------

    def _read_outbound(self) -> None:
        """Feed the lanes from ``wb:out``: first this consumer's pending entries (left by a previous run),
        then new ones; read only while connected, so commands wait in the stream while we are not. The entries a
        read settled at once (a batch sent, a malformed one dropped) are acknowledged with the next read."""
        cursor = "0"  # pending entries after this id; ">" once they are all dispatched
        settled: list[bytes] = []
        while not self._stop.is_set():
            if not self._connected.wait(0.5):
                self._done_now(settled)
                settled = []
                continue
            try:
                reply = self._read_out(cursor, settled)
            except redis.RedisError as exc:
                log.warning("instance %s: outbound stream unreadable (%s)", self.instance_id, type(exc).__name__)
                if "NOGROUP" in str(exc):
                    # Redis lost the stream and its group (restarted empty): the sweep re-publishes into a
                    # new stream, read from its start.
                    cursor = "0"
                    with contextlib.suppress(redis.RedisError):
                        self._create_out_group()
                self._stop.wait(1)
                continue  # ``settled`` goes with the next read (acknowledging twice is harmless)
            settled = []
            entries = reply[0][1] if reply else []
            if cursor != ">":
                # Pending entries stay pending until their lane acks them: page by id, not from "0" again.
                cursor = entries[-1][0] if entries else ">"
            if self._stop.is_set():
                return  # the rest stays pending for this consumer; the next start reads it from "0"
            self._dispatch(entries, settled)
        self._done_now(settled)

    def _read_out(self, cursor: str | bytes, settled: list[bytes]) -> Any:
        """Acknowledge and delete the ``settled`` entries (``_done``), then read the stream, in one round trip. An
        error of the acknowledgement is logged, not raised: the read's reply must not be lost (its entries would
        stay pending until the next start)."""
        with self.redis.pipeline(transaction=False) as pipe:
            if settled:
                self._queue_done(pipe, settled)
            pipe.xreadgroup(contracts.OUT_GROUP, CONSUMER, {self.out_stream: cursor}, count=100,
                            block=1000 if cursor == ">" else None)
            *done, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        if any(isinstance(result, Exception) for result in done):
            log.warning("instance %s: %d settled outbound entries left pending in the stream", self.instance_id,
                        len(settled))
        return reply

    def _done_now(self, settled: list[bytes]) -> None:
        """Acknowledge and delete ``settled`` entries now (no read follows)."""
        if settled:
            try:
                self._done(*settled)
            except redis.RedisError as exc:
                log.warning("instance %s: %d settled outbound entries left pending in the stream (%s)",
                            self.instance_id, len(settled), type(exc).__name__)

    def _dispatch(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]], settled: list[bytes]) -> None:
        """Hand one read's commands to their contacts' lanes. A number that sends unpaced sends the commands that
        need no typing delay at once instead, in one batch (``_send_batch``), unless their contact's lane is busy;
        a contact's later commands that need a lane wait for the batch, so each contact keeps its order. The
        entries settled here (sent in the batch, dropped as malformed) go to ``settled``, for the next read."""
        batch: list[tuple[bytes, OutboundCommand]] = []
        later: list[tuple[str, tuple[bytes, OutboundCommand]]] = []
        batched: set[str] = set()
        deferred: set[str] = set()
        outbox_ids: set[int] = set()
        for entry_id, fields in entries:
            try:
                if not fields:
                    raise ValueError("entry deleted while pending")
                command = contracts.decode_outbound(fields)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                # Without an outbox id there is nobody to answer; it can never be sent, so drop it.
                log.error("instance %s: dropping malformed outbound entry %s (%s)", self.instance_id, entry_id,
                          type(exc).__name__)
                settled.append(entry_id)
                continue
            key = _lane_key(command)
            item = (entry_id, command)
            if key in deferred:
                later.append((key, item))
            elif self._lanes.serving(key):
                self._lanes.dispatch(key, item)
            elif self.pacer.unpaced and not self._typing_ms(command) and command.outbox_id not in outbox_ids:
                batch.append(item)
                batched.add(key)
                outbox_ids.add(command.outbox_id)
            elif key in batched:  # typing, or a second copy of a batched command: after the batch
                later.append((key, item))
                deferred.add(key)
            else:
                self._lanes.dispatch(key, item)
        if batch:  # what was not sent (disconnected) goes first to the lanes, which wait for the connection
            later = [(_lane_key(item[1]), item) for item in self._send_batch(batch, settled)] + later
        for key, item in later:
            self._lanes.dispatch(key, item)

    def _process(self, item: tuple[bytes, OutboundCommand]) -> None:
        """Send one command at most once (see the module docstring); runs in the contact's lane."""
        entry_id, command = item
        while self._connected_or_stopping():
            try:
                if self._send_once(entry_id, command):
                    return
            except redis.RedisError as exc:
                log.warning("instance %s: outbox %s: Redis error (%s); retrying", self.instance_id,
                            command.outbox_id, type(exc).__name__)
            except Exception:  # noqa: BLE001 - a dead lane would strand this contact's later messages
                # A bug: leave the entry pending (the next start settles it) and let the lane go on.
                log.exception("instance %s: outbox %s failed unexpectedly", self.instance_id, command.outbox_id)
                return
            self._stop.wait(0.5)

    def _send_batch(self, items: list[tuple[bytes, OutboundCommand]], settled: list[bytes]
                    ) -> list[tuple[bytes, OutboundCommand]]:
        """Send commands of different contacts (or one contact's, in order) at once (``_send_claimed``, their
        entries left in ``settled``); returns the commands not sent because the number is not connected."""
        try:
            with self._send_lock:
                return self._send_claimed(items, settled)
        except Exception:  # noqa: BLE001 - as in a lane: the entries stay pending and the next start settles them
            log.exception("instance %s: a batch of %d sends failed unexpectedly", self.instance_id, len(items))
            return []

    def _send_claimed(self, items: list[tuple[bytes, OutboundCommand]], settled: list[bytes] | None = None
                      ) -> list[tuple[bytes, OutboundCommand]]:
        """The at-most-once steps of sending (module docstring), for one command or a batch: claim them (one write,
        one wait for the disk), settle those an earlier attempt claimed, send the rest (``Transport.send_many``),
        record what went out and publish the acks in one round trip. Called with the send lock held. Returns the
        commands not sent because the number is not connected, their claims given back."""
        claims = self.claims.claim_many([command.outbox_id for _, command in items])
        mine = [(entry_id, command) for entry_id, command in items
                if not self._settled_by_claim(entry_id, command, claims[command.outbox_id])]
        results = self.transport.send_many([command for _, command in mine]) if mine else []
        finished: list[tuple[bytes, OutboundCommand, str | None, str | None]] = []
        for (entry_id, command), result in zip(mine, results, strict=False):
            if isinstance(result, SendUncertainError):
                # keep the "sending" claim: a re-published copy is then failed too, never sent twice
                finished.append((entry_id, command, None, str(result)))
            elif isinstance(result, TransportError):
                self.claims.release(command.outbox_id)
                finished.append((entry_id, command, None, str(result)))
            else:
                self.pacer.record()
                finished.append((entry_id, command, result, None))
        self.claims.sent_many([(command.outbox_id, wa_id) for _, command, wa_id, _ in finished if wa_id])
        unsent = mine[len(results):]
        for _, command in unsent:
            self.claims.release(command.outbox_id)
        self._finish_many(finished, settled)
        return unsent

    def _done(self, *entry_ids: bytes) -> None:
        """Acknowledge and delete outbound entries: the outbox row in PostgreSQL is the record, not the stream."""
        with self.redis.pipeline(transaction=False) as pipe:
            self._queue_done(pipe, entry_ids)
            pipe.execute()

    def _queue_done(self, pipe: Any, entry_ids: Sequence[bytes]) -> None:
        """``_done``'s commands, queued on a pipeline."""
        pipe.xack(self.out_stream, contracts.OUT_GROUP, *entry_ids)
        pipe.xdel(self.out_stream, *entry_ids)

    def _connected_or_stopping(self) -> bool:
        """Wait until connected; False when stopping (the entry stays pending for the next start)."""
        while not self._stop.is_set():
            if self._connected.wait(0.5):
                return not self._stop.is_set()
        return False

    def _send_once(self, entry_id: bytes, command: OutboundCommand) -> bool:
        """One attempt; True when the command is settled (sent, failed, or left for the next start).

        The claim is taken only once the number's pace allows the send, right before it: a connector killed
        while commands wait for their turn (typing, pacing) leaves them unclaimed, so the next start sends them
        instead of failing them as "interrupted".
        """
        if self._settled_by_claim(entry_id, command, self.claims.found(command.outbox_id)):
            return True
        typing = self._typing_ms(command)
        if typing:
            self._set_typing(command.to_phone, True)
        try:
            if typing and self._stop.wait(typing / 1000):
                return True  # shutting down before anything went out: the next start sends it
            with self._send_lock:
                if not self.pacer.wait(self._stop):
                    return True  # shutting down while waiting for the number's pace: the same
                return not self._send_claimed([(entry_id, command)])
        finally:
            if typing:
                self._set_typing(command.to_phone, False)

    def _settled_by_claim(self, entry_id: bytes, command: OutboundCommand, claim: str | None) -> bool:
        """Settle a command an earlier attempt claimed: acknowledged again if it went out, else failed (it may
        have gone out: never risk sending twice). False when there is no claim."""
        if claim is None:
            return False
        if claim.startswith("sent:"):
            self._finish(entry_id, command, wa_id=claim[len("sent:"):])
        else:
            self._finish(entry_id, command, error=INTERRUPTED)
        return True

    def _typing_ms(self, command: OutboundCommand) -> int:
        if not command.typing:
            return 0
        return max(0, min(len(command.text or "") * self.typing_ms_per_char, self.typing_max_ms))

    def _set_typing(self, to_phone: str, on: bool) -> None:
        try:
            self.transport.set_typing(to_phone, on)
        except (TransportError, redis.RedisError) as exc:  # cosmetic: never a reason not to send
            log.info("instance %s: typing indicator not shown (%s)", self.instance_id, type(exc).__name__)

    def _finish(self, entry_id: bytes, command: OutboundCommand, wa_id: str | None = None,
                error: str | None = None) -> None:
        """Tell the workers how the command ended, then drop it from our pending list (``_finish_many``)."""
        self._finish_many([(entry_id, command, wa_id, error)])

    def _finish_many(self, finished: list[tuple[bytes, OutboundCommand, str | None, str | None]],
                     settled: list[bytes] | None = None) -> None:
        """Tell the workers how commands ended, (entry id, command, WhatsApp id, error) each, in one round trip,
        then drop them from our pending list (``_done``; or leave their entry ids in ``settled``, for the outbound
        reader to drop with its next read).

        Once the acks are safe (in Redis or the spool) the commands are settled: a Redis error after that is only
        logged, never retried from the claim, which would publish the acks again on every attempt. An entry left
        pending is settled again by the next start (its claim answers).
        """
        if not finished:
            return
        stamp = now_ms()
        acks = [SendAck(instance_id=self.instance_id, outbox_id=command.outbox_id, ok=error is None, wa_id=wa_id,
                        error=error, timestamp_ms=stamp, chat=command.to_jid or command.to_phone)
                for _, command, wa_id, error in finished]
        shown = (self.status_key, "last_outbound_at", stamp) if any(ack.ok for ack in acks) else None
        self.spool.publish_many(acks, status=shown)
        for _, command, _, error in finished:
            if error is not None:
                log.warning("instance %s: outbox %s failed: %s", self.instance_id, command.outbox_id, error)
        if settled is not None:
            settled.extend(entry_id for entry_id, _, _, _ in finished)
            return
        try:
            self._done(*(entry_id for entry_id, _, _, _ in finished))
        except redis.RedisError as exc:
            log.warning("instance %s: outbox %s settled but left pending in the stream (%s)", self.instance_id,
                        ", ".join(str(command.outbox_id) for _, command, _, _ in finished), type(exc).__name__)
