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
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel

from connector import contracts
from connector.files import PRIVATE_FILE, private_dir, replace_file

log = logging.getLogger(__name__)

SPOOL_DIR = "spool"
REPLAY_BATCH = 500  # lines published between two cuts of the file (each cut rewrites what is left)


def spool_path(data_dir: Path | str, instance_id: int) -> Path:
    """The spool file of one instance (whether or not it exists)."""
    return Path(data_dir) / SPOOL_DIR / f"{int(instance_id)}.jsonl"



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

    def pending(self) -> int:
        """How many events wait in the spool file."""
        with self._lock:
            return self._spooled

    # -- publishing ------------------------------------------------------------------------------------------

    def publish(self, event: BaseModel) -> bool:
        """Hand ``event`` to the workers: to Redis when it answers, else to the spool file.

        Returns True when the event reached Redis now, False when it was spooled. Either way it is safe when
        this returns (the spool file is fsync'd), so the caller may acknowledge it upstream.

        Raises:
            OSError: the spool file could not be written either (disk full, permissions): the event is not
                safe, and the caller must not acknowledge it.
        """
        payload = contracts.encode(event)
        published = None
        with self._lock:
            if not self._spooled:
                try:
                    published = self._publish(payload, event)
                except redis.RedisError as exc:
                    log.warning("instance %s: Redis unavailable (%s); spooling inbound events to %s",
                                self.instance_id, type(exc).__name__, self.path)
            if published is None:
                self._append(payload["e"])
        if published is not None:
            self._wake_drains({published})  # outside the lock: the event is in the stream, order is settled
            return True
        self._wake.set()
        return False

    def _publish(self, payload: dict[str, str], event: BaseModel | dict) -> int:
        """Append one event to its lane's stream; returns the lane."""
        if self.lanes is None:
            self.lanes = contracts.inbound_lanes(self.redis, self.instance_id, self.configured_lanes)
        lane = contracts.lane_of(event, self.lanes)
        self.redis.xadd(contracts.IN_STREAM.format(contracts.drain_unit(self.instance_id, lane)), payload)
        return lane

    def _wake_drains(self, lanes: set[int]) -> None:
        """Queue the drain jobs of these lanes (and of any owed); their events are already safe in the streams, so
        a failure only delays them: the replay thread tries again every ``retry_s``."""
        for lane in sorted(self._drain_owed | lanes):
            try:
                contracts.wake_inbound_drain(self.redis, self.instance_id, lane)
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

    def _append(self, line: str) -> None:
        """Append one event and fsync it (called with the lock held)."""
        if "\n" in line:  # model_dump_json escapes newlines; a raw one would split the event in two
            raise ValueError("a spooled event must be a single line")
        private_dir(self.path.parent)
        # Opened per append: the replay replaces the file by rename, so a long-lived handle would point at
        # the old one. Message bodies: the owner's only.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._spooled += 1

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
                lanes: set[int] = set()
                if self.pending():
                    lanes = self._replay_batch()
                    if lanes and self.pending():
                        self._wake.set()  # more to do and Redis answers: go on without waiting
                if lanes or self._drain_owed:
                    self._wake_drains(lanes)
            except Exception:  # noqa: BLE001 - the thread must outlive a bad line or a disk hiccup
                log.exception("instance %s: spool replay failed; retrying", self.instance_id)

    def _replay_batch(self) -> set[int]:
        """Publish up to ``REPLAY_BATCH`` spooled events in order and cut them; returns the lanes they went to."""
        lines = self._read_lines(REPLAY_BATCH)
        published, lanes = 0, set()
        for line in lines:
            if self._stop.is_set():
                break
            try:
                lanes.add(self._publish({"e": line}, _fields(line)))
            except redis.RedisError as exc:
                log.info("instance %s: Redis still unavailable (%s); %d events spooled", self.instance_id,
                         type(exc).__name__, self.pending())
                break
            published += 1
        if published:
            with self._lock:
                self._cut(published)
            log.info("instance %s: replayed %d spooled events; %d left", self.instance_id, published,
                     self.pending())
        return lanes


def _fields(line: str) -> dict:
    """What picks a spooled event's lane (``contracts.lane_of``); a line that is not a JSON object goes to lane 0,
    where the drain sets it aside as malformed."""
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
