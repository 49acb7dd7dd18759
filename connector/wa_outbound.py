"""Writing WhatsApp: the neonize message for an ``OutboundCommand``, and what a failed send means.

What one command becomes, with no connection state: ``connector.neonize_transport`` calls these with the
client it borrowed for the send, so a test builds real neonize protobufs with a fake client and no transport.
Things neonize 0.5.2 does that shape this module (docs/libraries.md, "neonize"):

- ``send_image``/``send_audio``/... read a ``str`` as a local path or download it as a URL: media is always
  passed as bytes loaded from the media store by SHA-256, never a string from a command.
- ``build_audio_message``/``build_video_message`` run the ``ffprobe``/``ffmpeg`` binaries (duration, video
  thumbnail), which a pip install does not have: audio and video messages are built here from ``upload()``,
  with the duration read by mutagen (pure Python). Images (PIL thumbnail) and documents use neonize's
  builders, which need no ffmpeg.
- Polls go out from ``build_poll_vote_creation`` (single choice). Their votes name the options only by
  SHA-256, so ``remember_poll`` keeps each sent poll's options for ``connector.wa_inbound`` to read them back.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import mutagen
import redis
from neonize.proto.Neonize_pb2 import JID
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    ContextInfo,
    ExtendedTextMessage,
    Message,
    VideoMessage,
)
from neonize.utils.enum import MediaType, VoteType

from connector.contracts import POLL_OPTIONS_KEY, OutboundCommand, phone_digits
from connector.media import MediaError, load_media
from connector.transport import NotConnectedError, SendError, SendUncertainError, TransportError
from connector.wa_inbound import GROUP_SERVER, USER_SERVER, content_field, jid_str

log = logging.getLogger(__name__)

POLL_OPTIONS_TTL_S = 90 * 24 * 3600  # votes on a poll older than this arrive as unsupported

# whatsmeow's send errors, by what they mean for the message (matched in lower case).
_NOT_CONNECTED_ERRORS = ("websocket not connected", "not logged in", "doesn't contain a device jid", "client is nil")
_UNCERTAIN_ERRORS = (
    "timed out", "timeout", "deadline exceeded", "context canceled", "failed to send message node", "eof",
    "broken pipe", "connection reset", "closed network connection",
)


def recipient(to_phone: str, to_jid: str | None = None, *, accept_groups: bool = False) -> JID:
    """The JID to write to: a group JID when groups are accepted and ``to_jid`` names one, else the phone's.

    Raises:
        SendError: ``to_phone`` holds fewer than 5 digits.
    """
    if to_jid and accept_groups and to_jid.endswith("@" + GROUP_SERVER):
        user = to_jid.rsplit("@", 1)[0]
        if re.fullmatch(r"[0-9-]+", user):
            return JID(User=user, Server=GROUP_SERVER, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)
    digits = phone_digits(to_phone)
    if len(digits) < 5:
        raise SendError(f"not a phone number: {to_phone[:40]!r}")
    return JID(User=digits, Server=USER_SERVER, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


def build_message(client: Any, command: OutboundCommand, to: JID, data_dir: Path) -> Message:
    """The WhatsApp message for a command; its media is read from the store under ``data_dir`` and uploaded
    with ``client`` here, before anything is sent.

    Raises:
        SendError: the command cannot be sent (no text, no media, media not in the store). Whatever the
            client raises (an upload, the image thumbnail, the poll builder) propagates: nothing was sent.
    """
    quote = ContextInfo(stanzaID=command.quoted_id, participant=jid_str(to)) if command.quoted_id else None
    if command.type == "text":
        if not command.text:
            raise SendError(f"outbox {command.outbox_id}: a text message without text")
        if quote is None:
            return Message(conversation=command.text)
        return Message(extendedTextMessage=ExtendedTextMessage(text=command.text, contextInfo=quote))
    if command.type == "poll":
        message = client.build_poll_vote_creation(command.text or "", list(command.poll_options or []),
                                                  VoteType.SINGLE)
        if quote is not None:
            content_field(message)[1].contextInfo.MergeFrom(quote)
        return message
    data = _media_bytes(command, data_dir)
    caption = command.text or None
    mime = command.media.mime if command.media else ""
    # Only a base name: a contact sees it, and it must never be usable as a path.
    filename = Path(((command.media and command.media.filename) or "").replace("\\", "/")).name or None
    if command.type == "image":
        message, field = client.build_image_message(data, caption=caption), "imageMessage"
    elif command.type == "audio":
        # Voice notes (ptt) must be Opus in Ogg; other audio goes as a plain audio file.
        ptt = "ogg" in mime or "opus" in mime
        upload = client.upload(data, MediaType.MediaAudio)
        message = Message(audioMessage=AudioMessage(
            mimetype=mime, PTT=ptt, seconds=_duration_s(data), **_uploaded(upload)))
        field = "audioMessage"
    elif command.type == "video":
        # No JPEGThumbnail: making one needs a video decoder (neonize runs ffmpeg); WhatsApp shows a
        # placeholder until the video is downloaded.
        upload = client.upload(data, MediaType.MediaVideo)
        message = Message(videoMessage=VideoMessage(
            mimetype=mime, caption=caption, seconds=_duration_s(data), **_uploaded(upload)))
        field = "videoMessage"
    else:
        message, field = client.build_document_message(
            data, caption=caption, title=filename, filename=filename or "arquivo", mimetype=mime or None,
        ), "documentMessage"
    if quote is not None:
        getattr(message, field).contextInfo.MergeFrom(quote)
    return message


def send_failure(command: OutboundCommand, error: str) -> TransportError:
    """Classify a whatsmeow send error: not sent (retry later, or fail) or maybe sent (never retried)."""
    text = error.lower()
    if any(marker in text for marker in _NOT_CONNECTED_ERRORS):
        return NotConnectedError(f"outbox {command.outbox_id}: {error}")
    if any(marker in text for marker in _UNCERTAIN_ERRORS):
        return SendUncertainError(f"outbox {command.outbox_id}: {error}")
    return SendError(f"outbox {command.outbox_id}: {error}")


def remember_poll(redis_client: Any, instance_id: int, wa_id: str, options: list[str]) -> None:
    """Keep the options of a poll that went out as ``wa_id``: its votes name them only by SHA-256."""
    try:
        redis_client.set(POLL_OPTIONS_KEY.format(instance_id, wa_id), json.dumps(options), ex=POLL_OPTIONS_TTL_S)
    except redis.RedisError as exc:
        # The poll went out and must be acked as sent; its votes will arrive as unsupported.
        log.warning("instance %s: options of poll %s not kept (%s)", instance_id, wa_id, exc)


def _duration_s(data: bytes) -> int:
    """Whole seconds of an audio or video file, read by mutagen; 0 when it cannot tell.

    The duration only labels the message (WhatsApp plays a file whose ``seconds`` is 0), so a file mutagen
    does not know or cannot parse must never stop the send.
    """
    try:
        found = mutagen.File(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - mutagen raises more than MutagenError on malformed files
        log.info("media duration not read (%s: %s); sending with 0 s", type(exc).__name__, exc)
        return 0
    length = getattr(getattr(found, "info", None), "length", 0) or 0
    return max(0, round(length))


def _media_bytes(command: OutboundCommand, data_dir: Path) -> bytes:
    """The command's media from the store, by digest only: a command never names a path or URL."""
    if command.media is None:
        raise SendError(f"outbox {command.outbox_id}: a {command.type} message without media")
    try:
        data = load_media(data_dir, command.media.sha256)
    except MediaError as exc:
        raise SendError(f"outbox {command.outbox_id}: {exc}") from None
    if not isinstance(data, bytes):  # neonize would read a str as a path or fetch it as a URL
        raise SendError(f"outbox {command.outbox_id}: media is not bytes")
    return data


def _uploaded(upload: Any) -> dict[str, Any]:
    """The fields of an audio/video message that point at media uploaded with ``client.upload``."""
    return {
        "URL": upload.url, "directPath": upload.DirectPath, "mediaKey": upload.MediaKey,
        "fileEncSHA256": upload.FileEncSHA256, "fileSHA256": upload.FileSHA256, "fileLength": upload.FileLength,
    }
