"""Send claims: the connector's durable record that a command was taken for sending, so it is sent at most once.

A command is claimed before it is sent and marked sent, with its WhatsApp id, right after. The record lives
in a file of the data dir, not in Redis, because it must outlive Redis: when Redis restarts empty after a
send and before a worker stored the ack, the sweep re-publishes the still pending outbox row, and only a
record that survived tells the connector to acknowledge it again instead of sending it twice::

    <data_dir>/claims/<instance>.jsonl     one JSON line per change: {"id", "state", "at", "wa_id"?}

``state`` is ``sending`` (claimed), ``sent`` (with ``wa_id``) or ``free`` (given back: nothing went out);
``at`` is when the command was claimed, in ms; the last line of an id wins. Every line is written before the
caller goes on (a dead process loses none), and a ``sending`` or ``free`` line is also fsync'd, so not even a
machine that loses power forgets a claim. A ``sent`` line is made durable by the next fsync: power lost before
then leaves the claim ``sending``, which settles the command as uncertain (failed, never sent again) — the safe
side, as for a send cut off. A last line torn by a crash is a write that never finished, so the send it
announced never started (it is dropped at the next load).

Forgetting claims: the workers publish, per number, the lowest outbox id still pending and when they looked
(``contracts.CLAIM_HORIZONS``). Every row committed before that moment and below that id is finished and is
never re-published, and a command is claimed only after its row was committed; so a claim below the id and
made ``KEPT_MS`` before that moment can go. The day of margin also covers a copy of a finished command still
waiting in the stream (published twice: once by the reply, once by the sweep), read within moments while
connected. The clocks of the worker and connector machines need to agree to well within that day. A lost
horizon (Redis down or emptied) only means claims are kept longer.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from connector import contracts
from connector.files import replace_file

log = logging.getLogger(__name__)

CLAIMS_DIR = "claims"
KEPT_MS = 24 * 3600 * 1000
"""How long a claim outlives the moment the workers saw its command finished."""
PRUNE_EVERY_S = 600.0
"""How often claiming also reads the horizon and compacts the file."""


def claims_path(data_dir: Path | str, instance_id: int) -> Path:
    """The claims file of one instance (whether or not it exists)."""
    return Path(data_dir) / CLAIMS_DIR / f"{int(instance_id)}.jsonl"


@dataclass
class _Claim:
    state: str  # "sending" | "sent"
    at_ms: int
    wa_id: str | None = None

    def describe(self) -> str:
        return f"sent:{self.wa_id}" if self.state == "sent" else "sending"


def _line(outbox_id: int, claim: _Claim) -> dict[str, Any]:
    return {"id": outbox_id, "state": claim.state, "at": claim.at_ms,
            **({"wa_id": claim.wa_id} if claim.wa_id is not None else {})}


def _read(path: Path) -> tuple[dict[int, _Claim], int, bool]:
    """The claims a file holds, how many whole lines it has, and whether it ends in a line torn by a crash
    (a write that never finished: not counted)."""
    claims: dict[int, _Claim] = {}
    lines = 0
    torn = False
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                if not raw.endswith("\n"):
                    torn = True
                    break
                lines += 1
                try:
                    entry = json.loads(raw)
                    outbox_id, state = int(entry["id"]), entry["state"]
                except (ValueError, KeyError, TypeError):
                    log.error("%s: skipping an unreadable claim line", path)
                    continue
                if state == "free":
                    claims.pop(outbox_id, None)
                elif state in ("sending", "sent"):
                    claims[outbox_id] = _Claim(state, int(entry.get("at") or 0), entry.get("wa_id"))
    except FileNotFoundError:
        pass
    return claims, lines, torn


def read_claims(data_dir: Path | str, instance_id: int) -> dict[int, str]:
    """What the file says, as outbox id -> ``sending`` | ``sent:<wa id>`` (for inspection and tests)."""
    claims, _, _ = _read(claims_path(data_dir, instance_id))
    return {outbox_id: claim.describe() for outbox_id, claim in claims.items()}


class Claims:
    """One number's send claims, loaded from its file and kept in step with it. Thread-safe.

    Args:
        redis_client: where the workers' horizon is read (``contracts.CLAIM_HORIZONS``).
        instance_id: the number's instance id.
        data_dir: the product's data dir (the file lives under its ``claims`` subdirectory).
        clock_ms: milliseconds since the epoch (tests pass a fake one).
    """

    def __init__(self, redis_client: Any, instance_id: int, data_dir: Path | str, clock_ms=None) -> None:
        self.redis = redis_client
        self.instance_id = instance_id
        self.path = claims_path(data_dir, instance_id)
        self._clock_ms = clock_ms or contracts.now_ms
        self._lock = threading.Lock()
        self._claims, self._lines, torn = _read(self.path)
        self._fd: int | None = None  # the file, opened for appending at the first line written
        if torn:
            self._compact()  # the next line appended must not run on from the torn one
        self._pruned_at = 0.0  # monotonic; 0 = prune at the first claim

    def claim(self, outbox_id: int) -> str | None:
        """Claim a command before sending it: None when it is now ours to send, else the claim found
        (``sending``: a send was cut off, the message may be out; ``sent:<wa id>``: it went out).

        Raises:
            OSError: the claim could not be written (nothing may be sent then).
        """
        return self.claim_many([outbox_id])[outbox_id]

    def claim_many(self, outbox_ids: list[int]) -> dict[int, str | None]:
        """``claim`` for several commands at once, with one write and one wait for the disk; returns each id's
        answer as ``claim`` would. The ids must be distinct: a second copy of a command is claimed after the first
        was sent, so that it finds the first one's claim.

        Raises:
            OSError: the claims could not be written (nothing may be sent then).
        """
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self.prune()
        with self._lock:
            found = {outbox_id: (claim.describe() if (claim := self._claims.get(outbox_id)) else None)
                     for outbox_id in outbox_ids}
            new = {outbox_id: _Claim("sending", self._clock_ms()) for outbox_id, claim in found.items()
                   if claim is None}
            if new:
                self._append([_line(outbox_id, claim) for outbox_id, claim in new.items()])
                self._claims.update(new)
            return found

    def sent_many(self, sent: list[tuple[int, str]]) -> None:
        """``sent`` for several commands at once, (outbox id, WhatsApp id) each, in one write."""
        if not sent:
            return
        with self._lock:
            claims = {outbox_id: _Claim("sent", claim.at_ms if (claim := self._claims.get(outbox_id))
                                        else self._clock_ms(), wa_id) for outbox_id, wa_id in sent}
            self._append([_line(outbox_id, claim) for outbox_id, claim in claims.items()], durable=False)
            self._claims.update(claims)

    def found(self, outbox_id: int) -> str | None:
        """The claim of a command, without taking it: None, ``sending`` or ``sent:<wa id>`` (see ``claim``)."""
        with self._lock:
            claim = self._claims.get(outbox_id)
            return claim.describe() if claim is not None else None

    def sent(self, outbox_id: int, wa_id: str) -> None:
        """Record that a claimed command went out as WhatsApp message ``wa_id``."""
        self.sent_many([(outbox_id, wa_id)])

    def release(self, outbox_id: int) -> None:
        """Give a claim back: nothing went out, so the command may be sent later."""
        with self._lock:
            claim = self._claims.pop(outbox_id, None)
            if claim is not None:
                self._append([{"id": outbox_id, "state": "free", "at": claim.at_ms}])

    def prune(self) -> int:
        """Forget the claims the workers' horizon allows (module docstring) and compact the file; returns how many
        were forgotten. Without a readable horizon nothing is forgotten."""
        self._pruned_at = time.monotonic()
        try:
            raw = self.redis.hget(contracts.CLAIM_HORIZONS, str(self.instance_id))
        except redis.RedisError as exc:
            log.info("instance %s: claim horizon unreadable (%s)", self.instance_id, type(exc).__name__)
            raw = None
        below, seen_ms = None, None
        if raw:
            try:
                horizon = json.loads(raw)
                below, seen_ms = horizon.get("below"), int(horizon["at"])
            except (ValueError, KeyError, TypeError):
                log.error("instance %s: ignoring a malformed claim horizon", self.instance_id)
        with self._lock:
            forget = [] if seen_ms is None else [
                outbox_id for outbox_id, claim in self._claims.items()
                if (below is None or outbox_id < below) and claim.at_ms < seen_ms - KEPT_MS]
            for outbox_id in forget:
                del self._claims[outbox_id]
            # Each send leaves two lines; rewrite once they clearly outnumber the live claims.
            if forget or self._lines > 2 * len(self._claims) + 100:
                self._compact()
        if forget:
            log.info("instance %s: forgot %d send claims", self.instance_id, len(forget))
        return len(forget)

    # -- the file (called with the lock held) ----------------------------------------------------------------

    def _append(self, entries: list[dict[str, Any]], durable: bool = True) -> None:
        """Write lines to the file, kept open between appends; ``durable`` also waits for the disk (module
        docstring: which lines need it)."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries).encode())
        if durable:
            os.fdatasync(self._fd)
        self._lines += len(entries)

    def _close_file(self) -> None:
        """Close the appending handle (the file is about to be replaced or removed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _compact(self) -> None:
        """Rewrite the file with one line per live claim (all or nothing, see ``connector.files``)."""
        self._close_file()
        if not self._claims:
            self.path.unlink(missing_ok=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, "".join(json.dumps(_line(outbox_id, claim), separators=(",", ":")) + "\n"
                                            for outbox_id, claim in sorted(self._claims.items())))
        self._fsync_dir()
        self._lines = len(self._claims)

    def _fsync_dir(self) -> None:
        """Make the rename or unlink itself durable: a crash must not bring back the old file without the claims
        appended since."""
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
