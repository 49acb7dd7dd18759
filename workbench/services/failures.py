"""Inbound events the drain set aside (``wb:in-failed:{id}``): what failed and why, to reprocess or discard.

An event lands there when it cannot be read (``malformed``), or when handling it raised (``error``) or hung or
killed its worker (``stuck``) on every one of its tries (``engine/worker/jobs.py``). Nothing else removes it:
admins and supervisors see it on Conexões and either send it back to the number's inbound events
(*Reprocessar*: it goes to the end of its contact's lane, ``connector.contracts.lane_of``, where a new drain takes
it, its tries counted from zero; a message that was stored after all is absorbed as a duplicate) or delete it
(*Descartar*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from connector.contracts import (
    IN_FAILED_STREAM,
    IN_STREAM,
    InboundMessage,
    Receipt,
    SendAck,
    decode_inbound,
    drain_unit,
    inbound_lanes,
    lane_of,
    wake_inbound_drain,
)
from workbench.base.errors import Conflict, NotFound
from workbench.services.auth import Actor
from workbench.services.instances import owned_instance
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.text import preview

LIST_LIMIT = 20
PREVIEW_CHARS = 80
CODES = ("malformed", "error", "stuck")
# A stream entry id, as the panel hands it back: bounded, digits only (anything else names nothing).
_FAILURE_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
# Moves a failed event back in one step, so two clicks on Reprocessar cannot queue it twice.
_REQUEUE = """
if redis.call('xdel', KEYS[1], ARGV[1]) == 1 then return redis.call('xadd', KEYS[2], '*', 'e', ARGV[2]) end
return false
"""


@dataclass(frozen=True)
class Failure:
    """One set-aside event as the panel lists it. ``phone``, ``preview`` and ``reason`` came from outside (a
    contact's text, an error's message): show them literally."""

    id: str
    failed_at: datetime | None
    received_at: datetime | None
    kind: str | None  # a message type ("text", "image", ...), "ack", "receipt" or "state"; None when unreadable
    phone: str | None
    preview: str | None
    code: str  # one of CODES
    reason: str
    tries: int

    @property
    def readable(self) -> bool:
        """Whether the event can be sent back (an unreadable one would only fail again)."""
        return self.kind is not None


def list_failures(actor: Actor, instance_id: int, limit: int = LIST_LIMIT) -> tuple[int, list[Failure]]:
    """How many events of the number were set aside, and the ``limit`` most recent (admins and supervisors)."""
    _check(actor, instance_id)
    pipe = get_redis().pipeline(transaction=False)
    key = IN_FAILED_STREAM.format(instance_id)
    pipe.xlen(key)
    pipe.xrevrange(key, count=max(1, min(limit, LIST_LIMIT)))
    total, entries = pipe.execute()
    return total, [_failure(entry_id, fields) for entry_id, fields in entries]


def retry_failure(actor: Actor, instance_id: int, failure_id: str) -> None:
    """Send a set-aside event back to its lane of the number's inbound events and wake that lane's drain (admins
    and supervisors)."""
    _check(actor, instance_id)
    client = get_redis()
    key, entry_id = IN_FAILED_STREAM.format(instance_id), _entry_id(failure_id)
    found = client.xrange(key, entry_id, entry_id)
    if not found:
        raise NotFound("failure", key="error.failure_not_found")
    payload = _field(found[0][1], "e")
    try:
        event = decode_inbound({"e": payload})
    except ValidationError as exc:
        raise Conflict("unreadable event", key="error.failure_unreadable") from exc
    lane = lane_of(event, inbound_lanes(client, instance_id))
    stream = IN_STREAM.format(drain_unit(instance_id, lane))
    if not client.register_script(_REQUEUE)(keys=[key, stream], args=[entry_id, payload]):
        raise NotFound("failure", key="error.failure_not_found")  # someone else handled it meanwhile
    wake_inbound_drain(client, instance_id, lane)


def discard_failure(actor: Actor, instance_id: int, failure_id: str) -> None:
    """Delete a set-aside event for good (admins and supervisors)."""
    _check(actor, instance_id)
    if not get_redis().xdel(IN_FAILED_STREAM.format(instance_id), _entry_id(failure_id)):
        raise NotFound("failure", key="error.failure_not_found")


def _check(actor: Actor, instance_id: int) -> None:
    actor.require("admin", "supervisor")
    with session_scope() as session:
        owned_instance(session, actor, instance_id)


def _entry_id(failure_id: str) -> str:
    if not isinstance(failure_id, str) or not _FAILURE_ID.fullmatch(failure_id):
        raise NotFound("failure", key="error.failure_not_found")
    return failure_id


def _field(fields: dict, name: str) -> str:
    value = fields.get(name.encode(), fields.get(name, b""))
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _moment(entry_id: str) -> datetime | None:
    """When a stream entry was added (its id starts with the epoch milliseconds)."""
    millis = entry_id.split("-", 1)[0]
    return datetime.fromtimestamp(int(millis) / 1000, UTC) if millis.isdigit() else None


def _failure(entry_id: bytes, fields: dict) -> Failure:
    code = _field(fields, "code")
    tries = _field(fields, "tries")
    payload = _field(fields, "e")
    kind = phone = text = None
    try:
        event = decode_inbound({"e": payload})
    except ValidationError:
        text = payload  # shown as it is, cut short: it may be anything
    else:
        if isinstance(event, InboundMessage):
            kind, phone, text = event.type, event.phone, event.text
        else:
            kind = "ack" if isinstance(event, SendAck) else "receipt" if isinstance(event, Receipt) else "state"
    failure_id = entry_id.decode()
    return Failure(
        id=failure_id, failed_at=_moment(failure_id), received_at=_moment(_field(fields, "entry")), kind=kind,
        phone=phone, preview=preview(text[:PREVIEW_CHARS * 4] if text else None, PREVIEW_CHARS),
        code=code if code in CODES else "error", reason=_field(fields, "reason"),
        tries=int(tries) if tries.isdigit() else 0)
