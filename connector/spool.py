"""The connector's local spool: inbound events wait on disk while Redis cannot take them.

A connector hands every event for the workers (messages, acks, receipts, state changes) to Redis before
anything is acknowledged upstream. When Redis does not answer, losing the event is not an option and
crashing would only make WhatsApp redeliver into the same hole, so the event is appended to a file instead::

    <data_dir>/spool/<instance>.jsonl      one JSON line per event, the ``contracts.encode`` payload
                                           (the directory 0700, the file 0600: message bodies)

A replay thread re-publishes the file's lines, oldest first, once Redis answers again, and then cuts off
exactly the lines it published. While the file holds anything, new events are appended behind it rather
than published directly, so the workers see events in the order the connector produced them.

Delivery is at least once: a crash between publishing a line and cutting it off publishes it again on the
next start, which the workers absorb (messages are unique on instance + WhatsApp id; acks, receipts and
state changes are idempotent).

**The journal: a Redis that loses its data.** An event in ``wb:in:{i}`` is safe only while Redis keeps it, and
the transport was told "received" as soon as it got there, so WhatsApp will not send it again. So every event
published is also written to a journal beside the spool, with the stream entry id it got::

    <data_dir>/spool/<instance>.journal.jsonl   one JSON line per event in Redis not yet stored by the workers:
                                                {"s": stream, "id": entry id, "e": the encode() payload}

Each XADD goes through a script that appends only while the number's mark (``wb:in-mark:{i}``) exists: a Redis
that restarted empty has no mark, so the first publish after it (or the journal keeper, once a second) finds
out before any newer event is appended, publishes the whole journal again in its order, sets the mark, and
only then publishes the new event: nothing is lost and each contact keeps its order. The workers delete an
entry only after committing it, so a journal line whose entry id is older than the stream's first entry is
stored (or set aside as failed): the keeper drops those lines once a second. The journal is written with
``write`` on every publish (it survives the connector's death) and fsync'd once a second by the keeper: a
machine that loses power may lose that last second, as an embedded Redis (AOF ``everysec``) would.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import redis
from pydantic import BaseModel

from connector import contracts
from connector.files import PRIVATE_FILE, private_dir, replace_file

log = logging.getLogger(__name__)

SPOOL_DIR = "spool"
REPLAY_BATCH = 500  # lines published between two cuts of the file (each cut rewrites what is left)
JOURNAL_REWRITE_LINES = 256  # stored lines dropped from memory before the journal file is rewritten without them
# XADD only while the number's mark exists (KEYS[1]): a Redis that lost its data has none. In the same round trip:
# set the lane's drain flag (KEYS[3], ARGV[2] seconds) if unset, and set a display field of the connection's status
# hash (KEYS[4], ARGV[3] = ARGV[4]) when given. Returns {entry id, 1 if the flag was set here (queue a job)}.
_XADD_IF_MARKED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', 'e', ARGV[1])
local woke = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) and 1 or 0
if KEYS[4] then redis.call('HSET', KEYS[4], ARGV[3], ARGV[4]) end
return {id, woke}
"""


def spool_path(data_dir: Path | str, instance_id: int) -> Path:
    """The spool file of one instance (whether or not it exists)."""
    return Path(data_dir) / SPOOL_DIR / f"{int(instance_id)}.jsonl"


def journal_path(data_dir: Path | str, instance_id: int) -> Path:
    """The journal of one instance: events in Redis that the workers have not stored yet (module docstring)."""
    return Path(data_dir) / SPOOL_DIR / f"{int(instance_id)}.journal.jsonl"


class _Journaled(NamedTuple):
    """One journaled event, with its line of the journal file (kept, so a rewrite serialises nothing again)."""

    stream: str
    entry_id: str
    payload: str
    line: str


def _journaled(stream: str, entry_id: str | bytes, payload: str) -> _Journaled:
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return _Journaled(stream, entry_id, payload, json.dumps({"s": stream, "id": entry_id, "e": payload}) + "\n")


def _entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("ms-seq") as a number pair, so ids compare in stream order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)



class Spool:
    """Publish inbound events to their lane's stream ``wb:in:{i}:{k}``, or keep them on disk until Redis is back.

    The lane count is settled with Redis the first time it answers (``contracts.inbound_lanes``), so a changed
    ``WORKBENCH_INBOUND_LANES`` takes effect only once the number's lanes are empty.

    Args:
        redis_client: the relay's redis-py client.
        instance_id: the number's instance id.
        data_dir: the product's data dir (the file lives under its ``spool`` subdirectory).
        retry_s: how long the replay thread waits between two attempts while Redis is down.
        lanes: the lane count of the settings (``WORKBENCH_INBOUND_LANES``); the one in use may differ.
    """

    def __init__(self, redis_client: Any, instance_id: int, data_dir: Path | str, retry_s: float = 1.0,
                 lanes: int = contracts.DEFAULT_LANES) -> None:
        self.redis = redis_client
        self.instance_id = instance_id
        self.path = spool_path(data_dir, instance_id)
        self.retry_s = retry_s
        self.configured_lanes = lanes
        self.lanes: int | None = None  # settled with Redis on the first publish
        # Held while deciding between Redis and the file, while appending and while cutting the file, so an
        # event never overtakes the spooled ones and an append never lands in a file being replaced.
        self._lock = threading.Lock()
        self._spooled = self._count_lines()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Lanes whose events reached their stream but whose drain job could not be queued; retried by the thread.
        self._drain_owed: set[int] = set()
        self._thread: threading.Thread | None = None
        if self._spooled:
            log.warning("instance %s: %d spooled events from an earlier run will be replayed", instance_id,
                        self._spooled)
        self.mark = contracts.IN_MARK.format(instance_id)
        self._xadd = redis_client.register_script(_XADD_IF_MARKED)
        # Held around every XADD and every change of the journal (memory and file), so the journal's order is
        # the streams' order and a replay after a Redis loss runs before any newer event is appended.
        self._journal_lock = threading.Lock()
        self.journal_path = journal_path(data_dir, instance_id)
        self._journal: deque[_Journaled] = deque(self._read_journal())
        self._journal_fd: int | None = None
        self._journal_dropped = 0  # lines dropped from memory still in the file
        self._journal_dirty = False
        if self._journal:
            log.info("instance %s: %d journaled events from an earlier run are checked against Redis",
                     instance_id, len(self._journal))

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the replay thread (it replays what an earlier run left at once)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._replay_loop, name=f"spool-{self.instance_id}", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop replaying; whatever is still spooled stays on disk for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._journal_lock:
            if self._journal_fd is not None:
                os.fsync(self._journal_fd)
                os.close(self._journal_fd)
                self._journal_fd = None

    def pending(self) -> int:
        """How many events wait in the spool file."""
        with self._lock:
            return self._spooled

    def journaled(self) -> int:
        """How many events are in Redis and not known to be stored by the workers (tests, benchmarks)."""
        with self._journal_lock:
            return len(self._journal)

    # -- publishing ------------------------------------------------------------------------------------------

    def publish(self, event: BaseModel, status: tuple[str, str, int] | None = None) -> bool:
        """Hand ``event`` to the workers: to Redis when it answers, else to the spool file.

        Returns True when the event reached Redis now, False when it was spooled. Either way it is safe when
        this returns (the spool file is fsync'd), so the caller may acknowledge it upstream.

        ``status``: (hash, field, value) of a display field set in the same round trip when the event reaches
        Redis now (the connection's "last inbound at"); nothing when it is spooled.

        Raises:
            OSError: the spool file could not be written either (disk full, permissions): the event is not
                safe, and the caller must not acknowledge it.
        """
        return self.publish_many([event], status)

    def publish_many(self, events: list[BaseModel], status: tuple[str, str, int] | None = None) -> bool:
        """``publish`` for several events at once, in order, in one round trip (a transport's batch); ``status``
        is set with the last of them. All of them reach Redis, or all are spooled."""
        if not events:
            return True
        payloads = [contracts.encode(event)["e"] for event in events]
        published = None
        with self._lock:
            if not self._spooled:
                try:
                    published = self._publish(list(zip(payloads, events, strict=True)), status)
                except redis.RedisError as exc:
                    log.warning("instance %s: Redis unavailable (%s); spooling inbound events to %s",
                                self.instance_id, type(exc).__name__, self.path)
            if published is None:
                self._append(payloads)
        if published is not None:
            if published or self._drain_owed:  # outside the lock: the events are in their streams, order is settled
                self._queue_drains(published)
            return True
        self._wake.set()
        return False

    def _publish(self, items: list[tuple[str, BaseModel | dict]],
                 status: tuple[str, str, int] | None = None) -> set[int]:
        """XADD events (payload, what picks its lane) to their lanes' streams, in order and in one round trip,
        while the mark says Redis kept its data (else replay the journal first), and journal them with their
        entry ids; returns the lanes whose drain job must be queued (the script set the lane's flag)."""
        if self.lanes is None:
            self.lanes = contracts.inbound_lanes(self.redis, self.instance_id, self.configured_lanes)
        calls = []
        for k, (payload, event) in enumerate(items):
            lane = contracts.lane_of(event, self.lanes)
            unit = contracts.drain_unit(self.instance_id, lane)
            stream = contracts.IN_STREAM.format(unit)
            keys = [self.mark, stream, contracts.DRAIN_FLAG.format(unit)]
            args: list[str | int] = [payload, contracts.DRAIN_FLAG_TTL_S]
            if status is not None and k == len(items) - 1:
                keys.append(status[0])
                args += [status[1], status[2]]
            calls.append((lane, stream, keys, args))
        woken: set[int] = set()
        with self._journal_lock:
            results = self._xadd_all(calls)
            if None in results:  # no mark: Redis lost its data before this round trip (it cannot come back within)
                done = results.index(None)
                self._journal_calls(calls[:done], results[:done], woken)
                self._republish_journal()
                calls = calls[done:]
                results = self._xadd_all(calls)
                if None in results:  # emptied again in between: the next publish finds out
                    raise redis.ConnectionError("Redis lost its data while the journal was replayed")
            self._journal_calls(calls, results, woken)
        return woken

    def _xadd_all(self, calls: list[tuple[int, str, list[str], list[str | int]]]) -> list[Any]:
        """Run the publish script once per call in one pipeline; a result is None where the mark was missing. The
        pipeline loads the script first (a no-op once loaded): a restarted Redis has forgotten it."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.script_load(_XADD_IF_MARKED)
            for _, _, keys, args in calls:
                pipe.evalsha(self._xadd.sha, len(keys), *keys, *args)
            return pipe.execute()[1:]

    def _journal_calls(self, calls: list[tuple[int, str, list[str], list[str | int]]], results: list[Any],
                       woken: set[int]) -> None:
        """Journal what the publish script added (called with the journal lock held); the lanes it woke go to
        ``woken``."""
        lines = []
        for (lane, stream, _, args), (entry_id, woke) in zip(calls, results, strict=True):
            lines.append(_journaled(stream, entry_id, str(args[0])))
            if woke:
                woken.add(lane)
        self._journal_append(lines)

    # -- the journal -----------------------------------------------------------------------------------------

    def _read_journal(self) -> list[_Journaled]:
        entries = []
        try:
            with self.journal_path.open("r", encoding="utf-8") as fh:
                for raw in fh:
                    if not raw.endswith("\n"):
                        break  # torn by a crash mid-write: the transport was not told yet, so it delivers it again
                    with contextlib.suppress(ValueError, KeyError):
                        line = json.loads(raw)
                        entries.append(_Journaled(line["s"], line["id"], line["e"], raw))
        except FileNotFoundError:
            pass
        return entries

    def _journal_append(self, lines: list[_Journaled]) -> None:
        """Remember published events in one write (called with the journal lock held)."""
        if not lines:
            return
        if self._journal_fd is None:
            private_dir(self.journal_path.parent)
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        os.write(self._journal_fd, "".join(entry.line for entry in lines).encode())
        self._journal.extend(lines)
        self._journal_dirty = True

    def _rewrite_journal(self) -> None:
        """Write the journal file again from memory (called with the journal lock held)."""
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        if self._journal:
            replace_file(self.journal_path, "".join(entry.line for entry in self._journal))
        else:
            self.journal_path.unlink(missing_ok=True)
        self._fsync_dir()
        self._journal_dropped = 0
        self._journal_dirty = False

    def _republish_journal(self) -> None:
        """Redis lost its data (no mark): publish every journaled event again, in order, and set the mark, in
        one transaction (called with the journal lock held)."""
        entries = list(self._journal)
        with self.redis.pipeline(transaction=True) as pipe:
            for entry in entries:
                pipe.xadd(entry.stream, {"e": entry.payload})
            pipe.set(self.mark, "1")
            ids = pipe.execute()[:-1]
        if entries:
            log.warning("instance %s: Redis lost its data; %d events not yet stored were published again",
                        self.instance_id, len(entries))
        self._journal = deque(_journaled(entry.stream, entry_id, entry.payload)
                              for entry, entry_id in zip(entries, ids, strict=True))
        self._rewrite_journal()
        # Wake the drains of every lane the journal published to (a lane of this number; None: its stream of
        # before lanes).
        for stream in {entry.stream for entry in entries}:
            unit = contracts.parse_unit(stream.removeprefix(contracts.IN_STREAM.format("")))
            if unit is not None and unit[1] is not None:
                self._drain_owed.add(unit[1])

    def _keep_journal(self) -> None:
        """Once a second: replay the journal if Redis lost its data, else drop the lines the workers stored; then
        make what was written since durable. The disk's part (the fsync, the rewrite) runs outside the journal lock:
        a disk that stalls for a moment, as shared and virtual disks do, must not hold up every publish with it."""
        sync_fd = None
        with self._journal_lock:
            streams = sorted({entry.stream for entry in self._journal})
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.exists(self.mark)
                for stream in streams:
                    pipe.xrange(stream, "-", "+", count=1)
                marked, *firsts = pipe.execute()
            if not marked:
                if self._journal:
                    self._republish_journal()
                return
            oldest = {stream: (_entry_key(first[0][0].decode()) if first else None)
                      for stream, first in zip(streams, firsts, strict=True)}
            while self._journal:
                first = self._journal[0]
                if oldest[first.stream] is not None and _entry_key(first.entry_id) >= oldest[first.stream]:
                    break
                self._journal.popleft()
                self._journal_dropped += 1
            journal = self._journal
            # Rewritten once the stored lines are at least as many as the live ones: each line is written about
            # twice in all, however long the backlog.
            compact = bool(self._journal_dropped) and (not journal or self._journal_dropped >= max(
                JOURNAL_REWRITE_LINES, len(journal)))
            kept = list(journal) if compact else []
            if not compact and self._journal_dirty and self._journal_fd is not None:
                sync_fd = os.dup(self._journal_fd)
                self._journal_dirty = False
        if compact:
            self._compact_journal(journal, kept)
        elif sync_fd is not None:
            try:
                os.fsync(sync_fd)
            except OSError:
                self._journal_dirty = True  # the next second tries again
                raise
            finally:
                os.close(sync_fd)

    def _compact_journal(self, journal: deque[_Journaled], kept: list[_Journaled]) -> None:
        """Rewrite the journal file with ``kept``, the lines of ``journal`` not yet stored, plus whatever was
        published meanwhile. The lines kept are written and fsync'd outside the lock (only this thread drops lines,
        so ``journal`` still starts with them); under it, the later lines are added and the file is swapped in."""
        fd, tmp = (tempfile.mkstemp(dir=self.journal_path.parent, prefix=f".{self.journal_path.name}-")
                   if kept else (None, None))
        try:
            if fd is not None:
                os.write(fd, "".join(entry.line for entry in kept).encode())
                os.fsync(fd)
            with self._journal_lock:
                if self._journal is not journal:  # Redis lost its data meanwhile: the replay rewrote the file
                    return
                later = list(itertools.islice(journal, len(kept), None))
                if later and fd is None:
                    fd, tmp = tempfile.mkstemp(dir=self.journal_path.parent, prefix=f".{self.journal_path.name}-")
                if self._journal_fd is not None:
                    os.close(self._journal_fd)
                    self._journal_fd = None  # the next publish opens the new file
                if fd is not None:
                    os.write(fd, "".join(entry.line for entry in later).encode())  # fsync'd by the next second
                    os.replace(tmp, self.journal_path)
                    tmp = None
                else:
                    self.journal_path.unlink(missing_ok=True)
                self._journal_dropped = 0
                self._journal_dirty = bool(later)
        finally:
            if fd is not None:
                os.close(fd)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        self._fsync_dir()

    def _queue_drains(self, lanes: set[int]) -> None:
        """Queue the drain jobs of these lanes, whose flags the publish script just set, and of the lanes owed (their
        flag may be set with no job behind it, so it is set again with the job)."""
        for lane in sorted(lanes | self._drain_owed):
            try:
                contracts.queue_inbound_drain(self.redis, self.instance_id, lane, flag=lane in self._drain_owed)
            except redis.RedisError as exc:
                log.warning("instance %s: drain job not queued (%s); retrying", self.instance_id,
                            type(exc).__name__)
                self._drain_owed.add(lane)
            else:
                self._drain_owed.discard(lane)

    # -- the file --------------------------------------------------------------------------------------------

    def _count_lines(self) -> int:
        try:
            with self.path.open("rb") as fh:
                return sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            return 0

    def _append(self, lines: list[str]) -> None:
        """Append events and fsync them once (called with the lock held)."""
        if any("\n" in line for line in lines):  # model_dump_json escapes newlines; a raw one would split an event
            raise ValueError("a spooled event must be a single line")
        private_dir(self.path.parent)
        # Opened per append: the replay replaces the file by rename, so a long-lived handle would point at
        # the old one. Message bodies: the owner's only.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
        self._spooled += len(lines)

    def _read_lines(self, limit: int) -> list[str]:
        """The first ``limit`` events of the file. Appends only add after them, so reading without the lock
        is safe; only this thread removes lines."""
        lines: list[str] = []
        try:
            with self.path.open("r", encoding="utf-8") as fh:
                for raw in fh:
                    if not raw.endswith("\n"):
                        break  # an append in progress (or torn by a crash): not a whole event yet
                    if raw.strip():
                        lines.append(raw.rstrip("\n"))
                        if len(lines) >= limit:
                            break
        except FileNotFoundError:
            pass
        return lines

    def _cut(self, published: int) -> None:
        """Drop the first ``published`` events from the file, atomically (called with the lock held)."""
        with self.path.open("r", encoding="utf-8") as fh:
            rest = [line for line in fh if line.strip()][published:]
        if not rest:
            self.path.unlink(missing_ok=True)
        else:
            replace_file(self.path, "".join(line if line.endswith("\n") else line + "\n" for line in rest))
        self._fsync_dir()
        self._spooled = len(rest)

    def _fsync_dir(self) -> None:
        """Make the rename or unlink itself durable, so a crash cannot bring back published lines."""
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    # -- replay ----------------------------------------------------------------------------------------------

    def _replay_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.pending() and self._replay_batch() and self.pending():
                    self._wake.set()  # more to do and Redis answers: go on without waiting
                self._keep_journal()
                if self._drain_owed:  # replayed lanes whose flag the script set, or jobs that could not be queued
                    self._queue_drains(set())
            except redis.RedisError as exc:
                log.info("instance %s: journal not checked (%s)", self.instance_id, type(exc).__name__)
            except Exception:  # noqa: BLE001 - the thread must outlive a bad line or a disk hiccup
                log.exception("instance %s: spool replay failed; retrying", self.instance_id)

    def _replay_batch(self) -> int:
        """Publish up to ``REPLAY_BATCH`` spooled events in order, in one round trip, and cut them; returns how many
        were published."""
        lines = self._read_lines(REPLAY_BATCH)
        if not lines or self._stop.is_set():
            return 0
        try:
            self._drain_owed |= self._publish([(line, _fields(line)) for line in lines])
        except redis.RedisError as exc:
            # Some may have reached Redis before the error: published again later, the workers absorb them.
            log.info("instance %s: Redis still unavailable (%s); %d events spooled", self.instance_id,
                     type(exc).__name__, self.pending())
            return 0
        with self._lock:
            self._cut(len(lines))
        log.info("instance %s: replayed %d spooled events; %d left", self.instance_id, len(lines), self.pending())
        return len(lines)


def _fields(line: str) -> dict:
    """What picks a spooled event's lane (``contracts.lane_of``); a line that is not a JSON object goes to lane 0,
    where the drain sets it aside as malformed."""
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
