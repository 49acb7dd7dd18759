"""The sandbox: a simulated WhatsApp network in Redis, and the transport that connects a number to it.

``SandboxNetwork`` plays WhatsApp's servers and the contacts' phones: the Simulator page scans QR codes and
types messages as leads through it. ``SandboxTransport`` is a linked device of a business number on that
network, with the same life cycle as a real one (QR that rotates, a stored device that reconnects without a
QR, logout, messages that wait while the device is offline and arrive in order when it returns, delivery and
read receipts, typing indicator, polls the lead votes on).

Redis keys (``wb:sbx:*``; phones are digits only)::

    wb:sbx:device:{i}           hash    the linked device of instance i: phone, push_name, paired_at
    wb:sbx:numbers              hash    business phone -> instance id (numbers with a linked device)
    wb:sbx:qr:{code}            string  instance id, expires with the QR code
    wb:sbx:paircode:{code}      string  JSON {"instance_id", "phone"}, expires with the pairing code
    wb:sbx:pair:{i}             list    wake-up for a device waiting for its QR or pairing code to be used
    wb:sbx:inbox:{business}     stream  what the network delivers to the business device: messages and
                                        receipts (group "device"; entries wait while it is offline)
    wb:sbx:blob:{sha256}        string  media bytes "on WhatsApp's media servers" (expire after 7 days)
    wb:sbx:chat:{lead}:{biz}    list    message ids of one chat, both directions, in order
    wb:sbx:msg:{lead}:{biz}     hash    message id -> JSON (direction, type, text, media, timestamp_ms, ...;
                                        a poll also has ``options`` and the lead's ``vote``)
    wb:sbx:status:{lead}:{biz}  hash    message id -> sent | delivered | read
    wb:sbx:typing:{lead}:{biz}  string  set while the business shows "typing..." to the lead
    wb:sbx:leads:{lead}         zset    business phone -> last message time (the lead's chat list)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mimetypes
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import redis

from connector.contracts import (
    MESSAGE_TYPES,
    STATUS_HASH,
    ControlCommand,
    InboundMessage,
    OutboundCommand,
    Receipt,
    now_ms,
    phone_digits,
    without_surrogates,
)
from connector.media import MediaError, media_path, store_media
from connector.transport import (
    NotConnectedError,
    SendError,
    SendUncertainError,
    Transport,
    TransportError,
    TransportEvents,
)

log = logging.getLogger(__name__)

DEVICE = "wb:sbx:device:{}"
NUMBERS = "wb:sbx:numbers"
QR = "wb:sbx:qr:{}"
PAIR_CODE = "wb:sbx:paircode:{}"
PAIR_WAKE = "wb:sbx:pair:{}"
INBOX = "wb:sbx:inbox:{}"
BLOB = "wb:sbx:blob:{}"
CHAT = "wb:sbx:chat:{}:{}"
MESSAGES = "wb:sbx:msg:{}:{}"
STATUSES = "wb:sbx:status:{}:{}"
TYPING = "wb:sbx:typing:{}:{}"
LEAD_CHATS = "wb:sbx:leads:{}"

# How long a send cut off by a broken connection keeps asking whether it arrived (then it is uncertain: failed).
RESEND_WINDOW_S = 15
INBOX_GROUP = "device"
INBOX_CONSUMER = "device"
BLOB_TTL_S = 7 * 24 * 3600
# A typing indicator that is never cleared (the connector died mid-delay) fades like WhatsApp's does.
TYPING_TTL_S = 30
QR_TTL_S = 60
PAIR_CODE_TTL_S = 180
_PAIR_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"

# Raise a message's status only forward (sent < delivered < read): a late "delivered" never undoes "read".
_RAISE_STATUS = """
local rank = {sent = 1, delivered = 2, read = 3}
local changed = {}
for i = 2, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and rank[cur] < rank[ARGV[1]] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
    table.insert(changed, ARGV[i])
  end
end
return changed
"""


class SandboxError(ValueError):
    """A request the simulated network refuses (unknown number, malformed phone, ...)."""


def normalize_phone(phone: str) -> str:
    """The account a phone names on the network: ``contracts.phone_digits`` (``+55 (11) 9...`` -> ``55119...``).

    Raises:
        SandboxError: fewer than 5 digits remain.
    """
    digits = phone_digits(phone)
    if len(digits) < 5:
        raise SandboxError(f"not a phone number: {phone!r}")
    return digits


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _guess_type(media: bytes | None, mime: str | None) -> str:
    if media is None:
        return "text"
    major = (mime or "").split("/", 1)[0]
    return {"image": "image", "audio": "audio", "video": "video"}.get(major, "document")


class SandboxNetwork:
    """The simulated phone network: what WhatsApp's servers and the leads' phones do.

    Args:
        redis_client: a redis-py client (bytes or str responses).
    """

    def __init__(self, redis_client: Any) -> None:
        self.redis = redis_client
        self._raise_status = redis_client.register_script(_RAISE_STATUS)

    # -- pairing ---------------------------------------------------------------------------------------------

    def scan(self, qr_code: str, phone: str, push_name: str | None = None) -> bool:
        """Scan a QR code with the phone ``phone``: link that number to the connector showing the code.

        Returns False when the code is unknown or expired, or the number is already linked to another
        instance (the sandbox allows one linked device per number, so a lead is never answered twice).
        """
        phone = normalize_phone(phone)
        key = QR.format(qr_code)
        owner = _text(self.redis.get(key))
        if owner is None or not self._may_link(phone, int(owner)):
            return False
        if self.redis.getdel(key) is None:  # scanned by someone else a moment ago
            return False
        self._link(int(owner), phone, push_name)
        return True

    def enter_pair_code(self, code: str, phone: str, push_name: str | None = None) -> bool:
        """Type a phone pairing code on the phone ``phone`` (the alternative to scanning a QR code).

        Returns False when the code is unknown, expired, was asked for another number, or the number is
        linked to another instance.
        """
        phone = normalize_phone(phone)
        key = PAIR_CODE.format(code.replace("-", "").upper())
        raw = self.redis.get(key)
        if raw is None:
            return False
        wanted = json.loads(raw)
        if wanted["phone"] != phone or not self._may_link(phone, wanted["instance_id"]):
            return False
        if self.redis.getdel(key) is None:
            return False
        self._link(wanted["instance_id"], phone, push_name)
        return True

    def _may_link(self, phone: str, instance_id: int) -> bool:
        current = _text(self.redis.hget(NUMBERS, phone))
        return current is None or int(current) == instance_id

    def _link(self, instance_id: int, phone: str, push_name: str | None) -> None:
        self.ensure_inbox(phone)
        with self.redis.pipeline() as pipe:
            pipe.hset(DEVICE.format(instance_id), mapping={
                "phone": phone, "push_name": push_name or "", "paired_at": now_ms()})
            pipe.hset(NUMBERS, phone, instance_id)
            pipe.rpush(PAIR_WAKE.format(instance_id), phone)
            pipe.expire(PAIR_WAKE.format(instance_id), PAIR_CODE_TTL_S)
            pipe.execute()

    def ensure_inbox(self, business_phone: str) -> None:
        """Create the number's inbox stream and consumer group unless they exist (at linking and connecting)."""
        try:
            # id 0: a new group sees every message already waiting for the number
            self.redis.xgroup_create(INBOX.format(business_phone), INBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def business_numbers(self) -> list[dict[str, Any]]:
        """Business numbers with a linked sandbox device, for the Simulator to pick.

        Each item: ``phone``, ``instance_id``, ``push_name``, ``online`` (its connector is connected now;
        messages to an offline number wait until it is).
        """
        numbers = []
        for phone, instance in sorted(self.redis.hgetall(NUMBERS).items()):
            instance_id = int(instance)
            push_name = _text(self.redis.hget(DEVICE.format(instance_id), "push_name")) or None
            state = _text(self.redis.hget(STATUS_HASH.format(instance_id), "state"))
            numbers.append({"phone": _text(phone), "instance_id": instance_id, "push_name": push_name,
                            "online": state == "connected"})
        return numbers

    # -- lead side -------------------------------------------------------------------------------------------

    def send_from_lead(
        self,
        lead_phone: str,
        business_phone: str,
        text: str | None = None,
        media: bytes | None = None,
        mime: str | None = None,
        filename: str | None = None,
        push_name: str | None = None,
        type: str | None = None,  # noqa: A002 - the neutral contract's field name
        quoted_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """The lead ``lead_phone`` sends a message to ``business_phone``; returns its WhatsApp id.

        ``type`` defaults to text, or to image/audio/video/document from ``mime`` when ``media`` is given.
        Any type of ``contracts.MESSAGE_TYPES`` (sticker, location, reaction, ...) arrives as that type;
        others arrive as ``unsupported`` with the original type in ``raw["type"]``. ``extra`` lands in the
        message's ``raw``; ``extra["target_id"]`` is the message an edit, revoke or reaction points at.

        Raises:
            SandboxError: a malformed phone, or ``business_phone`` has no linked sandbox device.
        """
        lead = normalize_phone(lead_phone)
        business = normalize_phone(business_phone)
        if self.redis.hget(NUMBERS, business) is None:
            raise SandboxError(f"{business} is not a linked sandbox number")
        kind = type or _guess_type(media, mime)
        raw = dict(extra or {})
        if kind not in MESSAGE_TYPES:
            raw["type"] = kind
            kind = "unsupported"
        media_info = None
        if media is not None:
            mime = mime or mimetypes.guess_type(filename or "")[0] or "application/octet-stream"
            media_info = self._upload(media, mime, filename)
        wa_id = "3A" + secrets.token_hex(9).upper()
        message = {
            "id": wa_id, "direction": "from_lead", "type": kind, "text": text, "media": media_info,
            "timestamp_ms": now_ms(), "quoted_id": quoted_id, "target_id": raw.get("target_id"),
            "push_name": push_name, "raw": raw,
        }
        with self.redis.pipeline() as pipe:
            self._append(pipe, lead, business, message, "sent")
            pipe.xadd(INBOX.format(business), {"p": json.dumps({"kind": "message", "lead": lead, **message})})
            pipe.execute()
        return wa_id

    def vote(self, lead_phone: str, business_phone: str, poll_id: str, option: str,
             push_name: str | None = None) -> str:
        """The lead votes ``option`` on the business's poll ``poll_id``; returns the vote's WhatsApp id.

        The vote reaches the business as a WhatsApp vote leaves the neonize transport: a ``text`` message
        whose text is the option, with ``quoted_id`` and ``raw["poll_id"]`` naming the poll and
        ``raw["poll_vote"]`` set. As on a phone, a vote is no bubble of its own: the poll shows it.

        Raises:
            SandboxError: a malformed phone, an unlinked business number, no such poll from the business in
                this chat, or an option the poll does not have.
        """
        lead = normalize_phone(lead_phone)
        business = normalize_phone(business_phone)
        if self.redis.hget(NUMBERS, business) is None:
            raise SandboxError(f"{business} is not a linked sandbox number")
        body = self.redis.hget(MESSAGES.format(lead, business), poll_id)
        poll = json.loads(body) if body else {}
        if poll.get("type") != "poll" or poll.get("direction") != "from_business":
            raise SandboxError(f"no poll {poll_id!r} in this chat")
        if option not in poll.get("options", []):
            raise SandboxError(f"poll {poll_id} has no option {option!r}")
        wa_id = "3A" + secrets.token_hex(9).upper()
        message = {
            "id": wa_id, "direction": "from_lead", "type": "text", "text": option, "media": None,
            "timestamp_ms": now_ms(), "quoted_id": poll_id, "push_name": push_name,
            "raw": {"poll_vote": True, "poll_id": poll_id},
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(MESSAGES.format(lead, business), poll_id, json.dumps({**poll, "vote": option}))
            pipe.xadd(INBOX.format(business), {"p": json.dumps({"kind": "message", "lead": lead, **message})})
            pipe.execute()
        return wa_id

    def _upload(self, data: bytes, mime: str, filename: str | None) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        self.redis.set(BLOB.format(sha), data, ex=BLOB_TTL_S)
        name = Path(filename.replace("\\", "/")).name if filename else None  # a phone sends a name, not a path
        return {"sha256": sha, "mime": mime, "size": len(data), "filename": name or None}

    def _append(self, pipe: Any, lead: str, business: str, message: dict[str, Any], status: str) -> None:
        pipe.rpush(CHAT.format(lead, business), message["id"])
        pipe.hset(MESSAGES.format(lead, business), message["id"], json.dumps(message))
        pipe.hset(STATUSES.format(lead, business), message["id"], status)
        pipe.zadd(LEAD_CHATS.format(lead), {business: message["timestamp_ms"]})

    def lead_chat(self, lead_phone: str, business_phone: str, limit: int = 200) -> list[dict[str, Any]]:
        """The last ``limit`` messages between a lead and a business number, oldest first.

        Each item: ``id``, ``direction`` ("from_lead" | "from_business"), ``type``, ``text``, ``media``
        (``{sha256, mime, size, filename}`` or None), ``status`` (sent | delivered | read), ``timestamp_ms``,
        ``quoted_id``, and for a poll (``text`` is its question) ``options`` and the lead's ``vote`` (or None).
        """
        lead, business = normalize_phone(lead_phone), normalize_phone(business_phone)
        ids = self.redis.lrange(CHAT.format(lead, business), -limit, -1)
        if not ids:
            return []
        bodies = self.redis.hmget(MESSAGES.format(lead, business), ids)
        statuses = self.redis.hmget(STATUSES.format(lead, business), ids)
        chat = []
        for body, status in zip(bodies, statuses, strict=True):
            message = json.loads(body)
            item = {key: message.get(key) for key in (
                "id", "direction", "type", "text", "media", "timestamp_ms", "quoted_id")} | {"status": _text(status)}
            if message["type"] == "poll":
                item.update(options=message.get("options") or [], vote=message.get("vote"))
            chat.append(item)
        return chat

    def lead_conversations(self, lead_phone: str) -> list[dict[str, Any]]:
        """The lead's chats, most recent first: ``business_phone`` and ``last_at`` (epoch ms)."""
        rows = self.redis.zrevrange(LEAD_CHATS.format(normalize_phone(lead_phone)), 0, -1, withscores=True)
        return [{"business_phone": _text(phone), "last_at": int(score)} for phone, score in rows]

    def is_typing(self, lead_phone: str, business_phone: str) -> bool:
        """Whether the business shows "typing..." in its chat with the lead."""
        return bool(self.redis.exists(TYPING.format(normalize_phone(lead_phone), normalize_phone(business_phone))))

    def mark_read(self, lead_phone: str, business_phone: str) -> list[str]:
        """The lead opens the chat: the business's messages become read, and the business gets a read receipt.

        Returns the ids that changed (none when everything was already read).
        """
        lead, business = normalize_phone(lead_phone), normalize_phone(business_phone)
        ids = [
            m["id"] for m in self.lead_chat(lead, business, limit=1000)
            if m["direction"] == "from_business" and m["status"] != "read"
        ]
        if not ids:
            return []
        changed = [_text(x) for x in self._raise_status(keys=[STATUSES.format(lead, business)], args=["read", *ids])]
        if changed:
            receipt = {"kind": "receipt", "lead": lead, "status": "read", "wa_ids": changed, "timestamp_ms": now_ms()}
            self.redis.xadd(INBOX.format(business), {"p": json.dumps(receipt)})
        return changed

    # -- business side (used by SandboxTransport) ------------------------------------------------------------

    def deliver_from_business(self, business: str, deliveries: list[tuple[str, dict[str, Any]]]) -> None:
        """Put business messages, (lead, message) each, in the leads' chats (a lead's phone is always on: it is
        delivered at once) and queue their delivery receipts for the business device. One transaction: all of it
        or nothing."""
        with self.redis.pipeline(transaction=True) as pipe:
            for lead, message in deliveries:
                receipt = {"kind": "receipt", "lead": lead, "status": "delivered", "wa_ids": [message["id"]],
                           "timestamp_ms": now_ms()}
                self._append(pipe, lead, business, message, "delivered")
                pipe.delete(TYPING.format(lead, business))
                pipe.xadd(INBOX.format(business), {"p": json.dumps(receipt)})
            pipe.execute()

    def has_message(self, lead: str, business: str, message_id: str) -> bool:
        """Whether the chat holds the message with this id (a sender's check after a broken connection)."""
        return bool(self.redis.hexists(MESSAGES.format(lead, business), message_id))

    def set_typing(self, business: str, lead: str, on: bool) -> None:
        """Show or clear the business's typing indicator in the lead's chat."""
        if on:
            self.redis.set(TYPING.format(lead, business), "1", ex=TYPING_TTL_S)
        else:
            self.redis.delete(TYPING.format(lead, business))

    def raise_status(self, lead: str, business: str, wa_ids: list[str], status: str) -> None:
        """Move messages forward to ``status`` (delivered or read); never backwards."""
        if wa_ids:
            self._raise_status(keys=[STATUSES.format(lead, business)], args=[status, *wa_ids])

    def queue_raise_status(self, pipe: Any, lead: str, business: str, wa_ids: list[str], status: str) -> None:
        """``raise_status`` queued on a pipeline, by the script's hash (a Script object in a pipeline costs a
        SCRIPT EXISTS round trip on every execute); a Redis that forgot the script raises ``NoScriptError`` there,
        and ``raise_status`` loads it again."""
        if wa_ids:
            pipe.evalsha(self._raise_status.sha, 1, STATUSES.format(lead, business), status, *wa_ids)


class _Handed(NamedTuple):
    """One inbox read handed to the relay: its entry ids and the messages among them (for their "delivered")."""

    entry_ids: list[bytes]
    messages: list[InboundMessage]


class SandboxTransport(Transport):
    """A linked device of a business number on the ``SandboxNetwork``.

    One thread runs the connection: pair (QR codes rotating every ``qr_ttl_s``, or a phone pairing code),
    then read the number's inbox until stopped or asked to reconnect or log out. Each inbox entry is handed
    to the relay and only then acknowledged, with the next read (one round trip for both), so a crash in between
    redelivers it (duplicates are fine, the workers dedupe on the WhatsApp id; loss is not).
    """

    def __init__(self, instance_id: int, events: TransportEvents, *, redis_client: Any, data_dir: Path,
                 qr_ttl_s: float = QR_TTL_S) -> None:
        super().__init__(instance_id, events, redis_client=redis_client, data_dir=data_dir)
        self.network = SandboxNetwork(redis_client)
        self.qr_ttl_s = qr_ttl_s
        self._stop = threading.Event()
        self._controls: queue.Queue[ControlCommand] = queue.Queue()
        self._thread: threading.Thread | None = None
        # The business phone while connected; None otherwise. Read by sender threads.
        self._phone: str | None = None
        # Set by a pair_phone request: the next pairing round shows a phone code for this number.
        self._pair_phone: str | None = None

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in a background thread (see the class docstring)."""
        self._thread = threading.Thread(target=self._run, name=f"sandbox-{self.instance_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Disconnect; the linked device stays stored for the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def control(self, command: ControlCommand) -> None:
        """Queue a panel request; the connection thread acts on it within a second."""
        self._controls.put(command)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                device = self._device()
                if device is None:
                    device = self._pair()
                if device is not None:
                    self._serve(device)
                self._apply_control()
            except redis.RedisError as exc:
                # Redis is the sandbox's network: losing it is losing the connection. Retry until it is back.
                log.warning("instance %s: sandbox network unreachable (%s); retrying", self.instance_id,
                            type(exc).__name__)
                self._phone = None
                self._report_state("reconnecting", "network_unreachable")
                self._stop.wait(1)
            except Exception:  # noqa: BLE001 - logged and reported, and the process exits
                # A bug, not a network problem: report it so the relay exits and the supervisor restarts us.
                log.exception("instance %s: sandbox transport crashed", self.instance_id)
                self._phone = None
                self._report_state("failed", "transport_error")
                return

    def _report_state(self, state: str, reason: str | None = None, **fields: str | None) -> None:
        try:
            self.events.on_state(state, reason, **fields)
        except redis.RedisError:
            log.warning("instance %s: could not report state %s", self.instance_id, state)

    def _device(self) -> dict[str, str] | None:
        raw = self.redis.hgetall(DEVICE.format(self.instance_id))
        return {_text(k): _text(v) for k, v in raw.items()} if raw else None

    def _interrupted(self) -> bool:
        return self._stop.is_set() or not self._controls.empty()

    def _apply_control(self) -> None:
        try:
            command = self._controls.get_nowait()
        except queue.Empty:
            return
        log.info("instance %s: control %s", self.instance_id, command.action)
        if command.action == "logout":
            device = self._device()
            if device is not None:
                with self.redis.pipeline() as pipe:
                    pipe.delete(DEVICE.format(self.instance_id))
                    pipe.hdel(NUMBERS, device["phone"])
                    pipe.execute()
            self._report_state("logged_out", "logout")
        elif command.action == "reconnect":
            self._report_state("reconnecting", "requested")
        elif command.action == "pair_phone" and command.phone and self._device() is None:
            self._pair_phone = normalize_phone(command.phone)
        # restart_pairing (and pair_phone): the loop goes back to _pair, which starts with a fresh code.

    # -- pairing ---------------------------------------------------------------------------------------------

    def _pair(self) -> dict[str, str] | None:
        """Show codes until a phone links this device; None when stopped or a control command arrives."""
        self.redis.delete(PAIR_WAKE.format(self.instance_id))  # wake-ups left from an earlier run
        while not self._interrupted():
            if self._pair_phone:
                code = "".join(secrets.choice(_PAIR_CODE_ALPHABET) for _ in range(8))
                ttl_s, key = PAIR_CODE_TTL_S, PAIR_CODE.format(code)
                self.redis.set(key, json.dumps({"instance_id": self.instance_id, "phone": self._pair_phone}),
                               ex=ttl_s)
                self._report_state("pairing", "pair_code")
                self.events.on_pair_code(code, now_ms() + ttl_s * 1000)
                self._pair_phone = None
            else:
                code = f"sandbox:{self.instance_id}:{secrets.token_urlsafe(24)}"
                ttl_s, key = self.qr_ttl_s, QR.format(code)
                self.redis.set(key, self.instance_id, px=int(ttl_s * 1000))
                self._report_state("awaiting_qr")
                self.events.on_qr(code, now_ms() + int(ttl_s * 1000))
            deadline = time.monotonic() + ttl_s
            try:
                while time.monotonic() < deadline and not self._interrupted():
                    timeout = max(0.05, min(1.0, deadline - time.monotonic()))
                    if self.redis.blpop([PAIR_WAKE.format(self.instance_id)], timeout=timeout):
                        device = self._device()
                        if device is not None:
                            return device
            finally:
                self.redis.delete(key)  # an old code must not link the device any more
        return None

    # -- connected -------------------------------------------------------------------------------------------

    def _serve(self, device: dict[str, str]) -> None:
        """Be connected as ``device``: deliver the number's inbox until stopped or a control command arrives."""
        phone = device["phone"]
        inbox = INBOX.format(phone)
        self.network.ensure_inbox(phone)
        self._phone = phone
        self._report_state("connected", None, phone=phone, push_name=device.get("push_name") or None)
        # First the entries delivered before but never acknowledged (we died between hand-over and ack);
        # each read is acknowledged before the next one, so reading from "0" again pages through them.
        backlog = True
        handed: _Handed | None = None  # the last read: handed to the relay, not yet acknowledged
        try:
            while not self._interrupted():
                entries = self._read_inbox(phone, inbox, backlog, handed)
                handed = None
                if backlog and not entries:
                    backlog = False
                if not entries or self._stop.is_set():
                    continue
                events = [self._event(entry_id, fields) for entry_id, fields in entries]
                messages = [event for event in events if event is not None]
                if messages:
                    self.events.on_events(messages)
                handed = _Handed([entry_id for entry_id, _ in entries],
                                 [event for event in messages if isinstance(event, InboundMessage)])
        finally:
            self._phone = None
            if handed is not None:  # stopping: acknowledge now (if this fails, they are delivered again)
                with contextlib.suppress(redis.RedisError):
                    self._acknowledge_now(phone, inbox, handed)

    def _read_inbox(self, phone: str, inbox: str, backlog: bool, handed: _Handed | None) -> list[Any]:
        """The inbox's next entries (from "0", the ones delivered before, while ``backlog``); the read before,
        ``handed``, is acknowledged in the same round trip, ahead of it: Redis runs a connection's commands in
        order, so the read never sees them again."""
        with self.redis.pipeline(transaction=False) as pipe:
            if handed is not None:
                self._acknowledge(pipe, phone, inbox, handed)
            pipe.xreadgroup(INBOX_GROUP, INBOX_CONSUMER, {inbox: "0" if backlog else ">"}, count=100,
                            block=None if backlog else 1000)
            # Errors as results: an error raised for the acknowledgement would lose the read's reply, and its
            # entries would wait, pending, until the next connection.
            *acknowledged, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        if handed is not None:
            self._settle(acknowledged, phone, handed)
        return reply[0][1] if reply else []

    def _acknowledge_now(self, phone: str, inbox: str, handed: _Handed) -> None:
        """Acknowledge a read in a round trip of its own (no read follows: the connection ends)."""
        with self.redis.pipeline(transaction=False) as pipe:
            self._acknowledge(pipe, phone, inbox, handed)
            self._settle(pipe.execute(raise_on_error=False), phone, handed)

    def _acknowledge(self, pipe: Any, phone: str, inbox: str, handed: _Handed) -> None:
        """Queue the acknowledgement of a read handed to the relay (or dropped) and the lead's "delivered" on its
        messages."""
        for message in handed.messages:
            self.network.queue_raise_status(pipe, message.phone, phone, [message.wa_id], "delivered")
        pipe.xack(inbox, INBOX_GROUP, *handed.entry_ids)

    def _settle(self, results: list[Any], phone: str, handed: _Handed) -> None:
        """After ``_acknowledge``'s commands ran: a Redis that forgot its scripts gets the "delivered" statuses the
        slow way, once; any other error is raised (the entries are then delivered again)."""
        errors = [result for result in results if isinstance(result, Exception)]
        if any(isinstance(error, redis.exceptions.NoScriptError) for error in errors):
            for message in handed.messages:
                self.network.raise_status(message.phone, phone, [message.wa_id], "delivered")
        errors = [error for error in errors if not isinstance(error, redis.exceptions.NoScriptError)]
        if errors:
            raise errors[0]

    def _event(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> InboundMessage | Receipt | None:
        """What one inbox entry brings for the relay: a message (its media downloaded) or a receipt; None for an
        entry that can never be delivered (logged; the caller acknowledges it to the network all the same)."""
        if not fields:  # an entry deleted from the stream while pending comes back empty
            return None
        try:
            # a lone surrogate escape would stop every write of the entry (Redis, the stream, the spool)
            payload = without_surrogates(json.loads(fields[b"p"]))
            if payload["kind"] == "message":
                return self._to_inbound(payload)
            return Receipt(instance_id=self.instance_id, wa_ids=payload["wa_ids"], status=payload["status"],
                           timestamp_ms=payload["timestamp_ms"], chat=payload["lead"])
        except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError; a
            # TypeError is a field of the wrong shape (a list where an object belongs)
            # It can never be delivered; keeping it would block the inbox behind it forever.
            log.error("instance %s: dropping malformed sandbox entry %s (%s)", self.instance_id,
                      _text(entry_id), type(exc).__name__)
            return None

    def _to_inbound(self, payload: dict[str, Any]) -> InboundMessage:
        """The neutral message for a network entry, with its media downloaded into the media store."""
        lead = normalize_phone(payload["lead"])  # the network's own form; a SandboxError is a ValueError
        raw = dict(payload.get("raw") or {})
        media = None
        if payload.get("media"):
            info = payload["media"]
            data = self.redis.get(BLOB.format(info["sha256"]))
            if data is None:
                raw["media_error"] = "expired"  # WhatsApp media expires too; the message still arrives
            else:
                try:
                    media = store_media(self.data_dir, data, info["mime"], info.get("filename"))
                except MediaError as exc:
                    log.warning("instance %s: media of %s not stored: %s", self.instance_id, payload["id"], exc)
                    raw["media_error"] = "too_large"
        jid = f"{lead}@s.whatsapp.net"
        return InboundMessage(
            instance_id=self.instance_id, wa_id=payload["id"], chat_jid=jid, sender_jid=jid, phone=lead,
            push_name=payload.get("push_name"), timestamp_ms=payload["timestamp_ms"], type=payload["type"],
            text=payload.get("text"), media=media, quoted_id=payload.get("quoted_id"),
            target_id=payload.get("target_id"), raw=raw,
        )

    # -- sending ---------------------------------------------------------------------------------------------

    def _business(self) -> str:
        phone = self._phone
        if phone is None:
            raise NotConnectedError(f"instance {self.instance_id} is not connected")
        return phone

    def send(self, command: OutboundCommand) -> str:
        """Deliver the message to the lead's sandbox phone; returns its id (see ``Transport.send``)."""
        results = self.send_many([command])
        if not results:
            raise NotConnectedError(f"instance {self.instance_id} is not connected")
        if isinstance(results[0], TransportError):
            raise results[0]
        return results[0]

    def send_many(self, commands: list[OutboundCommand]) -> list[str | TransportError]:
        """Deliver messages to the leads' sandbox phones in one transaction (see ``Transport.send_many``).

        A poll WhatsApp would take arrives as a poll the lead can vote on; any other goes as its fallback text.
        """
        try:
            business = self._business()
        except NotConnectedError:
            return []
        results: list[str | TransportError] = []
        deliveries: list[tuple[str, dict[str, Any]]] = []
        for command in commands:
            try:
                deliveries.append(self._message_for(command))
                results.append(deliveries[-1][1]["id"])
            except SendError as exc:
                results.append(exc)
        if deliveries:
            failure = self._deliver(business, deliveries)
            if failure is not None:
                kind, detail = failure
                results = [result if isinstance(result, TransportError)
                           else kind(f"outbox {command.outbox_id}: {detail}")
                           for command, result in zip(commands, results, strict=True)]
        return results

    def _message_for(self, command: OutboundCommand) -> tuple[str, dict[str, Any]]:
        """The lead and the network message for a command.

        Raises:
            SendError: it can never be sent (a malformed phone, a text without text, media not in the store).
        """
        command = command.sendable_poll()
        try:
            lead = normalize_phone(command.to_phone)
        except SandboxError as exc:
            raise SendError(str(exc)) from None
        if command.type == "text" and not command.text:
            raise SendError(f"outbox {command.outbox_id}: a text message without text")
        media = None
        if command.type not in ("text", "poll"):
            if command.media is None:
                raise SendError(f"outbox {command.outbox_id}: a {command.type} message without media")
            if not media_path(self.data_dir, command.media.sha256).is_file():
                raise SendError(f"outbox {command.outbox_id}: media {command.media.sha256} is not in the store")
            media = command.media.model_dump()
        message = {
            "id": "3EB0" + secrets.token_hex(8).upper(), "direction": "from_business", "type": command.type,
            "text": command.text, "media": media, "timestamp_ms": now_ms(), "quoted_id": command.quoted_id,
        }
        if command.type == "poll":
            message["options"] = command.poll_options
        return lead, message

    def _deliver(self, business: str, deliveries: list[tuple[str, dict[str, Any]]]
                 ) -> tuple[type[TransportError], str] | None:
        """Hand the messages to the network, all or none; None once they arrived, else the error class for all of
        them and its detail."""
        deadline = time.monotonic() + RESEND_WINDOW_S
        lead, first = deliveries[0]
        while True:
            try:
                self.network.deliver_from_business(business, deliveries)
                return None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # The transaction may have run before the connection broke. Like WhatsApp's servers, the sandbox
                # knows a message by its id (and delivers a batch whole): once reachable again, ask whether it
                # arrived, else send it again.
                while True:
                    if time.monotonic() > deadline or self._stop.wait(0.2):
                        return SendUncertainError, type(exc).__name__
                    try:
                        if self.network.has_message(lead, business, first["id"]):
                            return None
                        break
                    except redis.RedisError:
                        continue
            except redis.RedisError as exc:
                return SendError, str(exc)

    def set_typing(self, to_phone: str, on: bool) -> None:
        """Show or clear "typing..." in the lead's chat."""
        self.network.set_typing(self._business(), normalize_phone(to_phone), on)

    def mark_read(self, chat_phone: str, wa_ids: list[str]) -> None:
        """Blue ticks on the lead's messages."""
        self.network.raise_status(normalize_phone(chat_phone), self._business(), wa_ids, "read")

    def mark_read_many(self, reads: dict[str, list[str]]) -> dict[str, Exception]:
        """Blue ticks in several chats in one round trip (see ``Transport.mark_read_many``)."""
        try:
            business = self._business()
            leads = {phone: normalize_phone(phone) for phone in reads}
        except (NotConnectedError, SandboxError):
            return super().mark_read_many(reads)  # chat by chat: each gets its own error
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for phone, wa_ids in reads.items():
                    self.network.queue_raise_status(pipe, leads[phone], business, wa_ids, "read")
                pipe.execute()
        except redis.exceptions.NoScriptError:  # a Redis that forgot its scripts: the slow way, once
            return super().mark_read_many(reads)
        except redis.RedisError as exc:
            return dict.fromkeys(reads, exc)
        return {}

