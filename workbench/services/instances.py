"""WhatsApp numbers ("instances"): desired state in PostgreSQL, live status from the connector in Redis."""

from __future__ import annotations

import io
import json
import re
import time

from sqlalchemy import select

from connector.contracts import CONTROL_LIST, INSTANCES_HASH, INSTANCES_MIRRORED, STATUS_HASH, ControlCommand
from workbench.base.clock import now
from workbench.base.errors import InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import Instance
from workbench.store.text import clean_text

TRANSPORTS = ("sandbox", "neonize")
# A connector whose heartbeat is older than this is shown as disconnected whatever it last said.
STALE_HEARTBEAT_MS = 15_000
# What people type around a phone number ("+55 (11) 98765-4321"); a leading "+" is allowed separately.
_PHONE_DECORATION = re.compile(r"[\s()\-]")
# E.164 allows 15 digits; fewer than 10 cannot hold a country code, an area code and a subscriber number.
_PAIR_PHONE = re.compile(r"[0-9]{10,15}")
PAIRING_SECRETS = ("qr", "qr_expires_at", "pair_code", "pair_code_expires_at")
"""Status fields that let whoever reads them link the number to their own phone: shown to managers only."""


def owned_instance(session, actor: Actor, instance_id: int) -> Instance:
    """The actor's workspace's number ``instance_id``; NotFound for another workspace's or a removed one."""
    inst = session.get(Instance, instance_id)
    if inst is None or inst.workspace_id != actor.workspace_id or inst.removed_at is not None:
        raise NotFound("instance", key="error.instance_not_found")
    return inst


def live_status(instance_id: int, redis_client=None) -> dict:
    """The connector's status hash decoded, with ``state`` forced to disconnected when the heartbeat is stale."""
    raw = (redis_client or get_redis()).hgetall(STATUS_HASH.format(instance_id))
    status = {k.decode(): v.decode() for k, v in raw.items()}
    heartbeat = int(status.get("heartbeat", "0") or 0)
    age = int(time.time() * 1000) - heartbeat
    status["heartbeat_age_s"] = round(age / 1000, 1) if heartbeat else None
    if not heartbeat or age > STALE_HEARTBEAT_MS:
        status["state"] = "disconnected" if status.get("state") != "stopped" else "stopped"
        status.pop("qr", None)
    return status


def list_instances(actor: Actor) -> list[dict]:
    """The workspace's numbers with their live status (any role; QR and pairing codes for managers only)."""
    with session_scope() as session:
        rows = session.scalars(select(Instance).where(Instance.workspace_id == actor.workspace_id,
                                                      Instance.removed_at.is_(None)).order_by(Instance.id)).all()
    client = get_redis()
    result = []
    for inst in rows:
        status = live_status(inst.id, client)
        if inst.desired_state == "stopped":
            status["state"] = "stopped"
        if not actor.is_manager:
            for key in PAIRING_SECRETS:
                status.pop(key, None)
        result.append({
            "id": inst.id, "name": inst.name, "transport": inst.transport, "desired": inst.desired_state,
            "phone": status.get("phone") or inst.phone, "push_name": status.get("push_name") or inst.push_name,
            "status": status,
        })
    return result


def create_instance(actor: Actor, name: str, transport: str = "sandbox") -> int:
    """Admins and supervisors add a number; its connector starts and shows a QR code."""
    actor.require("admin", "supervisor")
    name = clean_text(name)[0].strip()
    if not name or len(name) > 120:
        raise InvalidInput("name", key="error.instance_name")
    if transport not in TRANSPORTS:
        raise InvalidInput(transport, key="error.transport")
    with session_scope() as session:
        inst = Instance(workspace_id=actor.workspace_id, name=name, transport=transport, desired_state="running")
        session.add(inst)
        session.flush()
        instance_id = inst.id
    sync_instances()
    return instance_id


def _set_desired(actor: Actor, instance_id: int, desired: str) -> None:
    actor.require("admin", "supervisor")
    with session_scope() as session:
        inst = owned_instance(session, actor, instance_id)
        inst.desired_state = desired
        if desired == "removed":
            inst.removed_at = now()
    sync_instances()


def start_instance(actor: Actor, instance_id: int) -> None:
    """Run the number's connector (after a stop)."""
    _set_desired(actor, instance_id, "running")


def stop_instance(actor: Actor, instance_id: int) -> None:
    """Stop the connector but keep the WhatsApp session (no new QR on start)."""
    _set_desired(actor, instance_id, "stopped")


def reconnect_instance(actor: Actor, instance_id: int) -> None:
    """Make sure the connector runs and ask it to reconnect (a new QR when the session is gone)."""
    _set_desired(actor, instance_id, "running")
    _control(instance_id, ControlCommand(action="reconnect"))


def logout_instance(actor: Actor, instance_id: int) -> None:
    """Unlink the device from WhatsApp; the number then shows a new QR code."""
    actor.require("admin", "supervisor")
    with session_scope() as session:
        owned_instance(session, actor, instance_id)
    _control(instance_id, ControlCommand(action="logout"))


def pair_phone_digits(phone: str | None) -> str:
    """The digits WhatsApp expects for a pairing code ("5511987654321"), or InvalidInput.

    People paste numbers as "+55 (11) 98765-4321": spaces, dashes, parentheses and a leading "+" are
    dropped; what is left must be 10-15 ASCII digits starting with the country code.
    """
    digits = _PHONE_DECORATION.sub("", phone or "").removeprefix("+")
    if not _PAIR_PHONE.fullmatch(digits):
        raise InvalidInput("phone", key="error.pair_phone")
    return digits


def request_pair_code(actor: Actor, instance_id: int, phone: str) -> str:
    """Ask the number's connector for a phone pairing code (the alternative to scanning the QR code).

    The code shows up in the status hash (``pair_code``) a few seconds later; it is typed on the phone
    whose number this is. Returns the digits that were sent.
    """
    actor.require("admin", "supervisor")
    with session_scope() as session:
        owned_instance(session, actor, instance_id)
    digits = pair_phone_digits(phone)
    # A stopped connector would only read the command at some later start: make sure it runs now.
    _set_desired(actor, instance_id, "running")
    _control(instance_id, ControlCommand(action="pair_phone", phone=digits))
    return digits


def restart_pairing(actor: Actor, instance_id: int) -> None:
    """Start a new round of QR codes after WhatsApp's series ran out unscanned (reason ``qr_expired``)."""
    _set_desired(actor, instance_id, "running")
    _control(instance_id, ControlCommand(action="restart_pairing"))


def remove_instance(actor: Actor, instance_id: int) -> None:
    """Log out and remove the number; its conversations stay in the history."""
    logout_instance(actor, instance_id)
    _set_desired(actor, instance_id, "removed")


def _control(instance_id: int, command: ControlCommand) -> None:
    get_redis().rpush(CONTROL_LIST.format(instance_id), command.model_dump_json(exclude_none=True))


def sync_instances(redis_client=None) -> int:
    """Mirror every instance's desired state into Redis for the supervisor; returns how many run.

    Called after each change and periodically by the sweeper, so a Redis loss heals itself.
    """
    with session_scope() as session:
        rows = session.execute(select(Instance.id, Instance.transport, Instance.desired_state)).all()
    client = redis_client or get_redis()
    mapping = {str(i): json.dumps({"transport": t, "desired": d}) for i, t, d in rows}
    pipe = client.pipeline()
    pipe.delete(INSTANCES_HASH)
    pipe.hset(INSTANCES_HASH, mapping={INSTANCES_MIRRORED: "1", **mapping})
    pipe.execute()
    return sum(1 for _, _, d in rows if d == "running")


def qr_png(code: str, scale: int = 8) -> bytes:
    """A PNG of a QR code string (large enough to scan from a screen)."""
    import segno  # here, not at the top: only the panel draws QR codes, and the workers import this module

    buf = io.BytesIO()
    segno.make(code, error="l").save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()
