"""The message contracts between connectors and the rest of the product, and their Redis keys.

This is the only module the connector shares with ``workbench``/``engine``. A transport (sandbox or
neonize) turns whatever its provider sends into these neutral events at the edge; nothing past this
module ever sees a WhatsApp or sandbox type.

Redis layout (``{i}`` = instance id; ``{u}`` = a drain unit: ``{i}:{k}`` for lane ``k`` of the number, or ``{i}``
alone for its single stream of before lanes, still drained after an upgrade — see ``drain_unit``)::

    wb:in:{u}          stream  connector -> workers: InboundMessage / SendAck / Receipt / StateChange; one per lane,
                               the lane chosen by the contact (``lane_of``)
    wb:in-lanes        hash    instance id -> the lane count its connector publishes with (``inbound_lanes``)
    wb:out:{i}         stream  workers -> connector: OutboundCommand (consumer group "connector")
    wb:ctl:{i}         list    panel/workers -> connector: control commands (reconnect, logout, pair_phone, mark_read)
    wb:conn:{i}        hash    connector status: state, reason, qr, qr_expires_at, phone, push_name,
                               heartbeat, last_inbound_at, last_outbound_at, pid (ephemeral)
    wb:claim-horizons  hash    instance id -> JSON {"below": lowest pending outbox id or null, "at": ms}: which
                               send claims the connector may forget (``connector.claims``; the claims
                               themselves live in the data dir, where a Redis loss cannot take them)
    wb:instances       hash    instance id -> JSON {"transport", "desired"}: what the supervisor runs (and
                               "mirrored"; missing after a Redis loss: the supervisor then keeps its children)
    wb:drain:{u}       string  set while the unit's drain job is queued or running (one wake-up per burst)
    wb:drain:queued    zset    unit -> when its drain was queued (running drains adopt late ones)
    wb:lock:in:{u}     string  the drain holding the unit: its token, a short lease renewed while it runs
    wb:in-attempts:{u} hash    entry id -> tries of an event handled on its own (counted before each try)
    wb:in-failed:{i}   stream  the number's events set aside (malformed, or failed MAX tries): the event, code,
                               reason, tries
    wb:in-mark:{i}     string  set by the connector: its absence means Redis lost its data, and the connector
                               publishes its journal again (``connector.spool``)
    wb:poll:{i}:{id}   string  JSON list of the options of the poll the neonize connector sent as WhatsApp id
                               ``id``: votes name options by SHA-256, so they are read back through it (expires)
"""

from __future__ import annotations

import json
import re
import time
import zlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationInfo, model_validator
from pydantic_core import PydanticSerializationError

_SURROGATE = re.compile("[\ud800-\udfff]")

IN_STREAM = "wb:in:{}"
IN_LANES_HASH = "wb:in-lanes"
OUT_STREAM = "wb:out:{}"
CONTROL_LIST = "wb:ctl:{}"
STATUS_HASH = "wb:conn:{}"
CLAIM_HORIZONS = "wb:claim-horizons"
INSTANCES_HASH = "wb:instances"
INSTANCES_MIRRORED = "mirrored"
"""A field ``wb:instances`` always holds once mirrored, so "no number wanted" is never an empty (lost) hash."""
DRAIN_FLAG = "wb:drain:{}"
DRAIN_FLAG_TTL_S = 300  # a drain job is queued for the unit; renewed by the running job
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

DEFAULT_LANES = 4
"""The lane count of a number nothing recorded one for (the default of ``WORKBENCH_INBOUND_LANES``)."""

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
MAX_TIMESTAMP_MS = 253_402_300_799_999
"""9999-12-31 23:59:59.999 UTC: the last instant a stored time (Python's ``datetime``) can name."""
MAX_ROW_ID = 2**63 - 1
"""Largest row id (PostgreSQL's bigint)."""
STORABLE = {"storable": True}
"""Validation context of the workers' reading (``decode_inbound``): see ``InboundMessage``."""


def _storable_id(name: str, value: str | None) -> None:
    """Refuse an id or JID the database could not keep or match: empty, too long, with NUL or a lone surrogate
    (neither is in any WhatsApp id, and PostgreSQL stores neither)."""
    if value is None:
        return
    if not 1 <= len(value) <= MAX_ID_CHARS or "\x00" in value:
        raise ValueError(f"{name}: 1 to {MAX_ID_CHARS} characters, without NUL, needed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name}: not valid Unicode") from None


def _storable_time(timestamp_ms: int) -> None:
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise ValueError(f"timestamp_ms: 0 to {MAX_TIMESTAMP_MS} needed")


class InboundMessage(BaseModel):
    """A message that reached the number (or was sent from its own phone: ``from_me``).

    A vote on one of our polls arrives as a ``text`` whose text is the chosen option's label (what a waiting
    choices node matches), with ``quoted_id`` and ``raw["poll_id"]`` naming the poll and ``raw["poll_vote"]``
    set; a vote that cannot be read arrives as ``unsupported`` with ``raw["poll_error"]``.

    When the workers read it (``decode_inbound``), a message the database could not keep is refused as
    malformed, so it is set aside at once (kept in ``wb:in-failed:{i}``) rather than failing five times: a
    phone without 1 to ``MAX_PHONE_DIGITS`` WhatsApp digits, an id or JID that is empty, longer than
    ``MAX_ID_CHARS`` or holds NUL or a lone surrogate, a time outside 1970 to 9999. The connector builds messages
    without that check, so nothing is lost before it reaches Redis. Text (push name, text, ``raw``) is cleaned
    where it is stored. The other events are checked the same way for the ids and times they carry.
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
            _storable_id(name, getattr(self, name))
        _storable_time(self.timestamp_ms)
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
    chat: str | None = None  # the JID (else phone) the command went to: picks the lane, as its receipts' does

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> SendAck:
        if (info.context or {}).get("storable"):
            if not 1 <= self.outbox_id <= MAX_ROW_ID:
                raise ValueError("outbox_id: not a row id")
            _storable_id("wa_id", self.wa_id)
            _storable_time(self.timestamp_ms)
        return self


class Receipt(BaseModel):
    """Delivery or read receipts for messages we sent."""

    kind: Literal["receipt"] = "receipt"
    instance_id: int
    wa_ids: list[str]
    status: Literal["delivered", "read"]
    timestamp_ms: int
    chat: str | None = None  # the chat's JID (else phone): the lane of the ack of the messages it names

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> Receipt:
        if (info.context or {}).get("storable"):
            for wa_id in self.wa_ids:
                _storable_id("wa_ids", wa_id)
            _storable_time(self.timestamp_ms)
        return self


class StateChange(BaseModel):
    """A connection life-cycle change, stored by workers on the instance row."""

    kind: Literal["state"] = "state"
    instance_id: int
    state: str
    reason: str | None = None
    phone: str | None = None
    push_name: str | None = None
    timestamp_ms: int

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> StateChange:
        if (info.context or {}).get("storable"):
            _storable_time(self.timestamp_ms)
        return self


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


def without_surrogates(value: Any) -> Any:
    """A JSON value with every lone UTF-16 surrogate (an unpaired ``\\ud800`` escape) in its texts, keys included,
    replaced by U+FFFD: no UTF-8 text, Redis key or database column can hold one. What the workers store would be
    cleaned the same way (``workbench.store.text.clean_text``)."""
    if isinstance(value, str):
        return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


def encode(event: BaseModel) -> dict[str, str]:
    """Stream fields for an event (one JSON field, so nested data survives); a lone surrogate in its texts, which
    JSON in UTF-8 cannot carry, arrives as U+FFFD rather than stopping the event (``without_surrogates``)."""
    try:
        return {"e": event.model_dump_json(exclude_none=True)}
    except PydanticSerializationError:
        cleaned = without_surrogates(event.model_dump(mode="json", exclude_none=True))
        return {"e": json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))}


def decode_inbound(fields: dict[bytes | str, bytes | str]) -> InboundMessage | SendAck | Receipt | StateChange:
    """Parse a ``wb:in`` stream entry; raises ``pydantic.ValidationError`` on a malformed one (including a message
    the database could not keep, see ``InboundMessage``)."""
    raw = fields.get(b"e", fields.get("e"))
    return _inbound_adapter.validate_json(raw, context=STORABLE)


def decode_outbound(fields: dict[bytes | str, bytes | str]) -> OutboundCommand:
    """Parse a ``wb:out`` stream entry."""
    raw = fields.get(b"e", fields.get("e"))
    return OutboundCommand.model_validate_json(raw)


def inbound_lanes(redis_client: Any, instance_id: int, configured: int | None = None) -> int:
    """The lane count to publish the number's events with: the recorded one, or ``configured`` when it may change.

    A contact's lane depends on the count, so the count of a number changes only while none of its lane streams
    holds an event (a contact's new events would otherwise overtake its queued ones). Connectors call this with
    their setting (``WORKBENCH_INBOUND_LANES``) when they start; other writers (the panel's *Reprocessar*, a
    merge) pass nothing and read the recorded count, recording ``DEFAULT_LANES`` when there is none yet.
    """
    key = str(instance_id)
    recorded = redis_client.hget(IN_LANES_HASH, key)
    recorded = int(recorded) if recorded else None
    if configured is None or configured == recorded:
        if recorded is None:
            redis_client.hsetnx(IN_LANES_HASH, key, configured or DEFAULT_LANES)
            recorded = int(redis_client.hget(IN_LANES_HASH, key))
        return recorded
    if recorded is not None:
        pipe = redis_client.pipeline(transaction=False)
        for lane in range(recorded):
            pipe.xlen(IN_STREAM.format(drain_unit(instance_id, lane)))
        if any(pipe.execute()):
            return recorded  # the new count waits for the next start with the lanes empty
    redis_client.hset(IN_LANES_HASH, key, configured)
    return configured


def drain_unit(instance_id: int, lane: int | None) -> str:
    """What names a drain unit in Redis keys and jobs: ``"{i}:{k}"`` for a lane, ``"{i}"`` for the number's stream
    of before lanes (the same keys as then, so a backlog queued by an older version is drained as it was)."""
    return f"{instance_id}" if lane is None else f"{instance_id}:{lane}"


def parse_unit(unit: str | bytes) -> tuple[int, int | None] | None:
    """The (instance id, lane) a drain unit names, None for anything else (another key under the same prefix)."""
    text = unit.decode() if isinstance(unit, bytes) else unit
    head, _, lane = text.partition(":")
    if not head.isdigit() or (lane and not lane.isdigit()) or (_ and not lane):
        return None
    return int(head), int(lane) if lane else None


def lane_of(event: BaseModel | dict[str, Any], lanes: int) -> int:
    """The lane of an event (a model, or its JSON as a dict): by its contact, so one conversation always lands in
    one lane and keeps its order.

    A message goes by its phone; a send ack and the receipts of what it sent go by the chat they name, so a
    receipt never overtakes its message's ack; connection changes (and anything without a chat) go to lane 0.
    CRC-32 is stable across processes and versions (Python's ``hash`` is not).
    """
    if lanes <= 1:
        return 0
    data = event if isinstance(event, dict) else {"kind": getattr(event, "kind", None),
                                                   "phone": getattr(event, "phone", None),
                                                   "chat": getattr(event, "chat", None)}
    key = data.get("phone") if data.get("kind") == "message" else data.get("chat")
    digits = phone_digits(key) if isinstance(key, str) else ""
    return zlib.crc32(digits.encode()) % lanes if digits else 0


def wake_inbound_drain(redis_client: Any, instance_id: int, lane: int | None = None) -> None:
    """Make sure one drain job is queued for one lane of the instance's inbound events.

    Called after every XADD to a ``wb:in:{u}`` stream. The flag collapses a burst into one job. The running job
    renews the flag with its lock (a few seconds at a time, so a killed job's flag soon lapses) and clears it when
    it leaves, then queues a new job itself if events arrived in between (``engine.worker.jobs._Drain._leave``),
    so no event is left without a job. ``lane`` None wakes the drain of the number's stream of before lanes.
    """
    if redis_client.set(DRAIN_FLAG.format(drain_unit(instance_id, lane)), "1", nx=True, ex=DRAIN_FLAG_TTL_S):
        queue_inbound_drain(redis_client, instance_id, lane)


def queue_inbound_drain(redis_client: Any, instance_id: int, lane: int | None, flag: bool = False) -> None:
    """Queue the drain job of one lane: the second half of ``wake_inbound_drain``, for a caller that set the flag
    itself (the connector's publish script sets it with the XADD). ``flag`` sets it here first, unconditionally:
    a retry after a failed queueing, whose flag is already set with no job behind it."""
    from rq import Queue, Retry

    unit = drain_unit(instance_id, lane)
    # One round trip, all or nothing (RQ turns a pipeline it is given into a transaction): a paced flow wakes a
    # drain for nearly every event, and RQ alone would take two round trips for the job.
    with redis_client.pipeline() as pipe:
        pipe.multi()  # before any command: RQ would call it after ours, which redis-py refuses
        if flag:
            pipe.set(DRAIN_FLAG.format(unit), "1", ex=DRAIN_FLAG_TTL_S)
        pipe.zadd(DRAIN_QUEUED, {unit: now_ms()}, nx=True)
        # Retries cover PostgreSQL being down; the events stay in the stream meanwhile. Every DRAIN_RETRY_S, not
        # backing off: a try costs one refused connection, and a drain that backs off to a minute leaves the
        # number's leads waiting up to that long after PostgreSQL is back (and their answers racing timers).
        # Past the last try the sweep wakes the drain again.
        Queue(INBOUND_QUEUE, connection=redis_client).enqueue(
            DRAIN_JOB, instance_id, lane, job_timeout=DRAIN_JOB_TIMEOUT_S, result_ttl=0, failure_ttl=86400,
            retry=Retry(max=DRAIN_RETRIES, interval=DRAIN_RETRY_S), pipeline=pipe,
        )
        pipe.execute()


def publish_inbound(redis_client: Any, event: BaseModel, lanes: int | None = None) -> str:
    """Hand an event to the workers: append it to its lane's stream, then wake that lane's drain.

    Args:
        lanes: the number's lane count (``inbound_lanes``); None reads the recorded one.
    """
    instance_id = event.instance_id  # type: ignore[attr-defined]
    if lanes is None:
        lanes = inbound_lanes(redis_client, instance_id)
    lane = lane_of(event, lanes)
    entry_id = redis_client.xadd(IN_STREAM.format(drain_unit(instance_id, lane)), encode(event))
    wake_inbound_drain(redis_client, instance_id, lane)
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def inbound_backlog(redis_client: Any, instance_id: int) -> int:
    """How many events wait in all of the number's inbound streams (its lanes and its stream of before lanes).

    The lanes are those of the recorded count: lanes past it were empty when the count last changed.
    """
    lanes = inbound_lanes(redis_client, instance_id)
    pipe = redis_client.pipeline(transaction=False)
    for lane in (None, *range(lanes)):
        pipe.xlen(IN_STREAM.format(drain_unit(instance_id, lane)))
    return sum(pipe.execute())


def desired_instances(redis_client: Any) -> dict[int, dict[str, Any]] | None:
    """What the supervisor should run: instance id -> {"transport", "desired"}; None when ``wb:instances`` is
    missing (Redis lost its data and the sweep has not mirrored PostgreSQL again yet: nobody knows)."""
    raw = redis_client.hgetall(INSTANCES_HASH)
    if not raw:
        return None
    return {int(k): json.loads(v) for k, v in raw.items() if k not in (INSTANCES_MIRRORED, INSTANCES_MIRRORED.encode())}
