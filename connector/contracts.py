"""The message contracts between connectors and the rest of the product, and their Redis keys.

This is the only module the connector shares with ``workbench``/``engine``. A transport (sandbox or
neonize) turns whatever its provider sends into these neutral events at the edge; nothing past this
module ever sees a WhatsApp or sandbox type.

Redis layout (``{i}`` = instance id)::

    wb:in:{i}          stream  connector -> workers: InboundMessage / SendAck / Receipt / StateChange
    wb:out:{i}         stream  workers -> connector: OutboundCommand (consumer group "connector")
    wb:ctl:{i}         list    panel/workers -> connector: control commands (reconnect, logout, pair_phone, mark_read)
    wb:conn:{i}        hash    connector status: state, reason, qr, qr_expires_at, phone, push_name,
                               heartbeat, last_inbound_at, last_outbound_at, pid (ephemeral)
    wb:claim-horizons  hash    instance id -> JSON {"below": lowest pending outbox id or null, "at": ms}: which
                               send claims the connector may forget (``connector.claims``; the claims
                               themselves live in the data dir, where a Redis loss cannot take them)
    wb:instances       hash    instance id -> JSON {"transport", "desired"}: what the supervisor runs (and
                               "mirrored"; missing after a Redis loss: the supervisor then keeps its children)
    wb:drain:{i}       string  set while an inbound drain job is queued or running (one wake-up per burst)
    wb:drain:queued    zset    instance id -> when its drain was queued (running drains adopt late ones)
    wb:lock:in:{i}     string  the drain holding the number: its token, a short lease renewed while it runs
    wb:in-attempts:{i} hash    entry id -> tries of an event handled on its own (counted before each try)
    wb:in-failed:{i}   stream  events set aside (malformed, or failed MAX tries): the event, code, reason, tries
    wb:in-mark:{i}     string  set by the connector: its absence means Redis lost its data, and the connector
                               publishes its journal again (``connector.spool``)
    wb:poll:{i}:{id}   string  JSON list of the options of the poll the neonize connector sent as WhatsApp id
                               ``id``: votes name options by SHA-256, so they are read back through it (expires)
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationInfo, model_validator

IN_STREAM = "wb:in:{}"
OUT_STREAM = "wb:out:{}"
CONTROL_LIST = "wb:ctl:{}"
STATUS_HASH = "wb:conn:{}"
CLAIM_HORIZONS = "wb:claim-horizons"
INSTANCES_HASH = "wb:instances"
INSTANCES_MIRRORED = "mirrored"
"""A field ``wb:instances`` always holds once mirrored, so "no number wanted" is never an empty (lost) hash."""
DRAIN_FLAG = "wb:drain:{}"
DRAIN_QUEUED = "wb:drain:queued"
DRAIN_LOCK = "wb:lock:in:{}"
IN_ATTEMPTS_HASH = "wb:in-attempts:{}"
IN_FAILED_STREAM = "wb:in-failed:{}"
IN_MARK = "wb:in-mark:{}"
POLL_OPTIONS_KEY = "wb:poll:{}:{}"
OUT_GROUP = "connector"
IN_GROUP = "workers"

INBOUND_QUEUE = "inbound"
DRAIN_JOB = "engine.worker.jobs.drain_inbound"
DRAIN_JOB_TIMEOUT_S = 60
DRAIN_RETRY_S, DRAIN_RETRIES = 2, 90
"""A drain job that failed (PostgreSQL out of reach) is tried again every 2 s for 3 minutes."""
"""RQ ends a drain job after this long; a drain reads for at most 10 s, so only an event that hangs gets here."""

MESSAGE_TYPES = (
    "text", "image", "audio", "video", "document", "sticker", "location", "contact",
    "reaction", "poll", "edit", "revoke", "unsupported",
)
MessageType = Literal[
    "text", "image", "audio", "video", "document", "sticker", "location", "contact",
    "reaction", "poll", "edit", "revoke", "unsupported",
]

# What WhatsApp takes in a poll; a poll command outside this is sent as its fallback text.
POLL_MIN_OPTIONS = 2
POLL_MAX_OPTIONS = 12

# Connection states shown on the Conexões page.
STATES = (
    "connected", "awaiting_qr", "pairing", "connecting", "reconnecting", "disconnected",
    "logged_out", "replaced", "banned", "outdated", "failed", "stopped",
)


def now_ms() -> int:
    """Milliseconds since the epoch (the unit every contract timestamp uses)."""
    return int(time.time() * 1000)


def phone_digits(value: str | None) -> str:
    """A phone number as WhatsApp names accounts: its ASCII digits only.

    ``"+55 (11) 98765-4321"`` becomes ``"5511987654321"``; a JID keeps only its user part, without the device
    (``"5511987654321:12@s.whatsapp.net"`` becomes ``"5511987654321"``). Other digits (full-width, Arabic-Indic)
    are not WhatsApp's and are dropped. The result is empty when nothing is left; each caller decides how many
    digits it accepts as a phone.
    """
    text = value or ""
    if "@" in text:
        text = text.split("@", 1)[0].split(":", 1)[0]
    return "".join(ch for ch in text if "0" <= ch <= "9")


class MediaRef(BaseModel):
    """A file already stored content-addressed under ``<data_dir>/media`` (``connector.media.store_media``).

    ``mime`` is decided from the file's content, never taken from the sender (``application/octet-stream`` when
    the content names no type WhatsApp delivers); references stored before types were decided carry the
    sender's claim, so readers decide by content again (``connector.media.inline_type``, ``thumbnail``).
    ``filename`` is the sender's name, last path component only (downloads use ``connector.media.safe_filename``).
    """

    sha256: str
    mime: str
    size: int
    filename: str | None = None


MAX_ID_CHARS = 128
"""Longest WhatsApp message id or JID a stored message may carry (what the database keeps)."""
MAX_PHONE_DIGITS = 32
STORABLE = {"storable": True}
"""Validation context of the workers' reading (``decode_inbound``): see ``InboundMessage``."""


class InboundMessage(BaseModel):
    """A message that reached the number (or was sent from its own phone: ``from_me``).

    A vote on one of our polls arrives as a ``text`` whose text is the chosen option's label (what a waiting
    choices node matches), with ``quoted_id`` and ``raw["poll_id"]`` naming the poll and ``raw["poll_vote"]``
    set; a vote that cannot be read arrives as ``unsupported`` with ``raw["poll_error"]``.

    When the workers read it (``decode_inbound``), a message the database could not keep is refused as
    malformed, so it is set aside at once (kept in ``wb:in-failed:{i}``) rather than failing five times: a
    phone without 1 to ``MAX_PHONE_DIGITS`` WhatsApp digits, an id or JID longer than ``MAX_ID_CHARS``. The
    connector builds messages without that check, so nothing is lost before it reaches Redis. Text (push
    name, text, ``raw``) is cleaned where it is stored.
    """

    kind: Literal["message"] = "message"
    instance_id: int
    wa_id: str
    chat_jid: str
    sender_jid: str
    phone: str
    push_name: str | None = None
    timestamp_ms: int
    type: MessageType
    text: str | None = None
    media: MediaRef | None = None
    quoted_id: str | None = None
    target_id: str | None = None  # the message an edit, revoke or reaction points at
    from_me: bool = False
    raw: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> InboundMessage:
        if not (info.context or {}).get("storable"):
            return self
        if not 1 <= len(phone_digits(self.phone)) <= MAX_PHONE_DIGITS:
            raise ValueError(f"phone: 1 to {MAX_PHONE_DIGITS} ASCII digits needed")
        for name in ("wa_id", "chat_jid", "sender_jid", "quoted_id", "target_id"):
            value = getattr(self, name)
            if value is not None and not 1 <= len(value) <= MAX_ID_CHARS:
                raise ValueError(f"{name}: 1 to {MAX_ID_CHARS} characters needed")
        return self


class SendAck(BaseModel):
    """The connector's answer to one OutboundCommand."""

    kind: Literal["ack"] = "ack"
    instance_id: int
    outbox_id: int
    ok: bool
    wa_id: str | None = None
    error: str | None = None
    timestamp_ms: int


class Receipt(BaseModel):
    """Delivery or read receipts for messages we sent."""

    kind: Literal["receipt"] = "receipt"
    instance_id: int
    wa_ids: list[str]
    status: Literal["delivered", "read"]
    timestamp_ms: int


class StateChange(BaseModel):
    """A connection life-cycle change, stored by workers on the instance row."""

    kind: Literal["state"] = "state"
    instance_id: int
    state: str
    reason: str | None = None
    phone: str | None = None
    push_name: str | None = None
    timestamp_ms: int


InboundEvent = Annotated[InboundMessage | SendAck | Receipt | StateChange, Field(discriminator="kind")]
_inbound_adapter: TypeAdapter[InboundMessage | SendAck | Receipt | StateChange] = TypeAdapter(InboundEvent)


class OutboundCommand(BaseModel):
    """Send one message. ``outbox_id`` identifies it end to end; the connector sends it at most once.

    ``text`` is the message's text, a media caption, or a poll's question. A ``poll`` (single choice) has its
    options in ``poll_options`` and, in ``fallback_text``, the question with numbered options: what goes out
    instead where a poll cannot (see ``sendable_poll``).
    """

    outbox_id: int
    instance_id: int
    to_phone: str
    to_jid: str | None = None
    type: Literal["text", "image", "audio", "video", "document", "poll"] = "text"
    text: str | None = None
    media: MediaRef | None = None
    quoted_id: str | None = None
    typing: bool = True
    poll_options: list[str] | None = None
    fallback_text: str | None = None

    def sendable_poll(self) -> OutboundCommand:
        """This poll as a transport with polls sends it: unchanged when WhatsApp takes its options (2 to 12,
        all different), else its fallback as a plain text message. Other commands are returned unchanged."""
        if self.type != "poll":
            return self
        options = self.poll_options or []
        if POLL_MIN_OPTIONS <= len(options) <= POLL_MAX_OPTIONS and len(set(options)) == len(options):
            return self
        return self.model_copy(update={"type": "text", "text": self.fallback_text or self.text,
                                       "poll_options": None, "fallback_text": None})


class ControlCommand(BaseModel):
    """A request from the panel or the workers to a running connector.

    ``mark_read`` sends read receipts (blue ticks) for ``wa_ids`` in the chat with ``phone``; it is best effort:
    a connector that is not connected drops it.
    """

    action: Literal["reconnect", "logout", "pair_phone", "restart_pairing", "mark_read"]
    phone: str | None = None
    wa_ids: list[str] | None = None


def encode(event: BaseModel) -> dict[str, str]:
    """Stream fields for an event (one JSON field, so nested data survives)."""
    return {"e": event.model_dump_json(exclude_none=True)}


def decode_inbound(fields: dict[bytes | str, bytes | str]) -> InboundMessage | SendAck | Receipt | StateChange:
    """Parse a ``wb:in`` stream entry; raises ``pydantic.ValidationError`` on a malformed one (including a message
    the database could not keep, see ``InboundMessage``)."""
    raw = fields.get(b"e", fields.get("e"))
    return _inbound_adapter.validate_json(raw, context=STORABLE)


def decode_outbound(fields: dict[bytes | str, bytes | str]) -> OutboundCommand:
    """Parse a ``wb:out`` stream entry."""
    raw = fields.get(b"e", fields.get("e"))
    return OutboundCommand.model_validate_json(raw)


def wake_inbound_drain(redis_client: Any, instance_id: int) -> None:
    """Make sure one drain job is queued for the instance's inbound stream.

    Called after every XADD to ``wb:in:{i}``. The flag collapses a burst into one job. The running job renews
    the flag with its lock (a few seconds at a time, so a killed job's flag soon lapses) and clears it when it
    leaves, then queues a new job itself if events arrived in between (``engine.worker.jobs._Drain._leave``),
    so no event is left without a job.
    """
    if redis_client.set(DRAIN_FLAG.format(instance_id), "1", nx=True, ex=300):
        from rq import Queue, Retry

        redis_client.zadd(DRAIN_QUEUED, {str(instance_id): now_ms()}, nx=True)
        # Retries cover PostgreSQL being down; the events stay in the stream meanwhile. Every DRAIN_RETRY_S, not
        # backing off: a try costs one refused connection, and a drain that backs off to a minute leaves the
        # number's leads waiting up to that long after PostgreSQL is back (and their answers racing timers).
        # Past the last try the sweep wakes the drain again.
        Queue(INBOUND_QUEUE, connection=redis_client).enqueue(
            DRAIN_JOB, instance_id, job_timeout=DRAIN_JOB_TIMEOUT_S, result_ttl=0, failure_ttl=86400,
            retry=Retry(max=DRAIN_RETRIES, interval=DRAIN_RETRY_S),
        )


def publish_inbound(redis_client: Any, event: BaseModel) -> str:
    """Hand an event to the workers: append it to the instance's stream, then wake a drain job."""
    instance_id = event.instance_id  # type: ignore[attr-defined]
    entry_id = redis_client.xadd(IN_STREAM.format(instance_id), encode(event))
    wake_inbound_drain(redis_client, instance_id)
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def desired_instances(redis_client: Any) -> dict[int, dict[str, Any]] | None:
    """What the supervisor should run: instance id -> {"transport", "desired"}; None when ``wb:instances`` is
    missing (Redis lost its data and the sweep has not mirrored PostgreSQL again yet: nobody knows)."""
    raw = redis_client.hgetall(INSTANCES_HASH)
    if not raw:
        return None
    return {int(k): json.loads(v) for k, v in raw.items() if k not in (INSTANCES_MIRRORED, INSTANCES_MIRRORED.encode())}
