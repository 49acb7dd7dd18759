"""The Simulator: play a lead's phone against the workspace's sandbox numbers.

A thin, permission-checked layer over ``connector.sandbox.SandboxNetwork``. The network itself knows
nothing about workspaces, so every call here first checks that the business number (or the instance whose
QR is scanned) belongs to the acting user's workspace; another workspace's number is reported as not found.
Images are shown only as the thumbnails of the chat's own messages (``chat``), never as whatever file a digest
names. The Simulator is a testing tool: admins and supervisors only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from connector.media import decide_mime, keep_thumbnail, thumbnail
from connector.sandbox import SandboxError, SandboxNetwork, normalize_phone
from workbench.base.errors import InvalidInput, NotFound
from workbench.services import instances
from workbench.services.auth import Actor
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Instance

ROLES = ("admin", "supervisor")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
SHOWN_TYPES = ("image", "sticker")


def _network() -> SandboxNetwork:
    return SandboxNetwork(get_redis())


def _sandbox_instance_ids(actor: Actor) -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(Instance.id).where(
            Instance.workspace_id == actor.workspace_id, Instance.transport == "sandbox",
            Instance.removed_at.is_(None))))


def _phone(value: str) -> str:
    try:
        return normalize_phone(value)
    except SandboxError:
        raise InvalidInput("phone", key="error.phone") from None


def _check_number(actor: Actor, business_phone: str) -> str:
    """The normalised business phone, after checking its linked device is one of the workspace's numbers."""
    actor.require(*ROLES)
    phone = _phone(business_phone)
    owned = _sandbox_instance_ids(actor)
    if not any(n["phone"] == phone and n["instance_id"] in owned for n in _network().business_numbers()):
        raise NotFound("sandbox number", key="error.sandbox_number_not_found")
    return phone


def business_numbers(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's sandbox numbers that have a linked device (the ones a lead can write to).

    Each item: ``phone``, ``instance_id``, ``name`` (as typed by a user: untrusted), ``push_name``, ``online``.
    """
    actor.require(*ROLES)
    names = {inst["id"]: inst["name"] for inst in instances.list_instances(actor) if inst["transport"] == "sandbox"}
    return [{**n, "name": names[n["instance_id"]]} for n in _network().business_numbers()
            if n["instance_id"] in names]


def pending_qr_codes(actor: Actor) -> list[dict[str, Any]]:
    """The workspace's sandbox numbers showing a QR code now: ``instance_id``, ``name``, ``qr``,
    ``qr_expires_at`` (epoch ms, or None)."""
    actor.require(*ROLES)
    pending = []
    for inst in instances.list_instances(actor):
        status = inst["status"]
        if inst["transport"] == "sandbox" and status.get("qr"):
            expires = status.get("qr_expires_at")
            pending.append({"instance_id": inst["id"], "name": inst["name"], "qr": status["qr"],
                            "qr_expires_at": int(expires) if expires else None})
    return pending


def scan_qr(actor: Actor, instance_id: int, phone: str, push_name: str | None = None) -> bool:
    """Scan the QR code the instance shows now with the phone ``phone`` (which becomes the business number).

    Returns False when the code expired or ``phone`` is already linked to another number.

    Raises:
        NotFound: the instance is not a sandbox number of the actor's workspace.
        InvalidInput: the instance shows no QR code, or ``phone`` is malformed.
    """
    actor.require(*ROLES)
    if instance_id not in _sandbox_instance_ids(actor):
        raise NotFound("instance", key="error.instance_not_found")
    code = instances.live_status(instance_id).get("qr")
    if not code:
        raise InvalidInput("no qr", key="error.no_qr")
    return _network().scan(code, _phone(phone), (push_name or "").strip() or None)


def send_from_lead(actor: Actor, business_phone: str, lead_phone: str, text: str | None = None,
                   media: bytes | None = None, mime: str | None = None, filename: str | None = None,
                   push_name: str | None = None) -> str:
    """The simulated lead sends text or an image to one of the workspace's sandbox numbers; returns its id.

    An image's type is decided from its content (``mime``, the browser's claim, is ignored), and it must decode:
    its thumbnail is kept in the media store at once, so the chat shows it before the connector fetches it.

    Raises:
        InvalidInput: nothing to send, a file that is not a JPEG, PNG or WebP image that decodes, or a malformed
            phone.
        NotFound: the business number is not the workspace's.
    """
    business = _check_number(actor, business_phone)
    lead = _phone(lead_phone)
    text = text if text and text.strip() else None
    if media is None and text is None:
        raise InvalidInput("empty message", key="error.empty_message")
    if media is not None:
        settings = get_settings()
        max_bytes = settings.media_max_mb * 1024 * 1024
        if len(media) > max_bytes:
            raise InvalidInput("too large", key="error.media_too_large", max_bytes=max_bytes)
        mime = decide_mime(media, filename)
        if mime not in IMAGE_TYPES or not keep_thumbnail(settings.data_dir, media):
            raise InvalidInput(mime, key="error.media_type")
    return _network().send_from_lead(lead, business, text=text, media=media, mime=mime, filename=filename,
                                     push_name=(push_name or "").strip() or None)


def vote(actor: Actor, business_phone: str, lead_phone: str, poll_id: str, option: str,
         push_name: str | None = None) -> str:
    """The simulated lead votes ``option`` on a poll the number sent; returns the vote's id.

    The vote arrives as a WhatsApp vote does (see ``SandboxNetwork.vote``): the option's text, so a waiting
    "send choices" node takes that option.

    Raises:
        InvalidInput: no such poll in the chat, an option it does not have, or a malformed phone.
        NotFound: the business number is not the workspace's.
    """
    business = _check_number(actor, business_phone)
    try:
        return _network().vote(_phone(lead_phone), business, poll_id, option, (push_name or "").strip() or None)
    except SandboxError:
        raise InvalidInput("poll vote", key="error.poll_vote") from None


def chat(actor: Actor, business_phone: str, lead_phone: str, limit: int = 200) -> list[dict[str, Any]]:
    """The chat as the lead's phone shows it, oldest first (see ``SandboxNetwork.lead_chat``).

    Images and stickers also carry ``thumbnail``: the bytes to show (``connector.media.thumbnail``), or None.
    """
    messages = _network().lead_chat(_phone(lead_phone), _check_number(actor, business_phone), limit=limit)
    data_dir = get_settings().data_dir
    for message in messages:
        media = message.get("media")
        if message["type"] in SHOWN_TYPES and isinstance(media, dict):
            message["thumbnail"] = thumbnail(data_dir, str(media.get("sha256", "")))
    return messages


def is_typing(actor: Actor, business_phone: str, lead_phone: str) -> bool:
    """Whether the business shows "digitando…" to the lead."""
    return _network().is_typing(_phone(lead_phone), _check_number(actor, business_phone))


def mark_read(actor: Actor, business_phone: str, lead_phone: str) -> list[str]:
    """The lead has the chat open: the business's messages become read (and read receipts go out)."""
    return _network().mark_read(_phone(lead_phone), _check_number(actor, business_phone))
