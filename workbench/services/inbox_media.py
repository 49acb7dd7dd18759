"""Media from the inbox: an agent sends an image, audio, video or document — uploaded, or picked from the
Biblioteca de mídia — through the outbox like a text (typing/recording indicator, pacing, receipts).

An upload passes the library's gate (``media_library.store_checked``: same types and size limit, refused files say
why) but does not join the library: it becomes a ``media`` row of the workspace only, so the message's file can be
shown and resent. Any role that sees the conversation may send. WhatsApp shows a caption under images, videos and
documents, not under audio, so a caption with an audio file is refused rather than silently dropped.

A voice note recorded in the browser (WAV) is encoded here to mono Ogg/Opus at 48 kHz with ``soundfile``
(libsndfile): Opus in Ogg is what WhatsApp plays as a voice note, and the connector sends such audio with ``PTT``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from connector.contracts import MediaRef
from workbench.base.errors import InvalidInput, NotFound
from workbench.services import conversations, media_library
from workbench.services.auth import Actor
from workbench.store.models import Conversation, Media, is_row_id
from workbench.store.text import clean_text

CAPTION_KINDS = ("image", "video", "document")
MAX_CAPTION = 1_024
"""Longest caption (WhatsApp's own limit)."""


def send_media(actor: Actor, conversation_id: int, *, media_id: int | None = None, filename: str | None = None,
               data: bytes | None = None, mime: str | None = None, caption: str = "") -> int:
    """Send one file to the conversation's contact: a library item (``media_id``) or an upload (``data``).

    Returns the message id.

    Raises:
        InvalidInput: neither or both of ``media_id`` and ``data``; a file the library's rules refuse; a caption on
            an audio file or longer than ``MAX_CAPTION``.
        NotFound: the conversation, or a library item that is not the workspace's.
    """
    if (media_id is None) == (data is None):
        raise InvalidInput("one file", key="error.media_pick")
    text = clean_text(caption if isinstance(caption, str) else "", limit=None)[0].strip()
    if len(text) > MAX_CAPTION:
        raise InvalidInput("caption too long", key="error.media_caption_long", max=MAX_CAPTION)
    upload = media_library.store_checked(filename, data, mime) if data is not None else None

    def message(session: Session, conv: Conversation) -> dict[str, Any]:
        if upload is None:
            media = session.get(Media, media_id) if is_row_id(media_id) else None
            if media is None or media.workspace_id != conv.workspace_id or not media.in_library:
                raise NotFound("media", key="error.media_not_found")
            ref = MediaRef(sha256=media.sha256, mime=media.mime, size=media.size, filename=media.filename)
            row_id = media.id
        else:
            detected, name, ref = upload
            session.execute(insert(Media).values(workspace_id=conv.workspace_id, sha256=ref.sha256, mime=detected,
                                                 size=ref.size, filename=name)
                            .on_conflict_do_nothing(index_elements=["workspace_id", "sha256"]))
            row_id = session.scalar(select(Media.id).where(Media.workspace_id == conv.workspace_id,
                                                           Media.sha256 == ref.sha256))
        kind = media_library.kind_of(ref.mime)
        if text and kind not in CAPTION_KINDS:
            raise InvalidInput("no caption on audio", key="error.media_caption_audio")
        return {"text": text or None, "type": kind, "media": ref, "media_id": row_id}

    return conversations.send_queued(actor, conversation_id, message)


MAX_VOICE_S = 15 * 60
"""Longest voice note accepted (WhatsApp's own recordings stop near there)."""
VOICE_RATE = 48_000
"""Opus takes 8, 12, 16, 24 or 48 kHz; browsers record at 44.1 or 48 kHz, so recordings are brought to 48 kHz."""


def encode_voice_note(recording: bytes) -> bytes:
    """A browser recording (WAV, as ``st.audio_input`` gives it) as a mono Ogg/Opus file: the only audio WhatsApp
    plays as a voice note (``connector.wa_outbound`` sends Opus in Ogg with ``PTT`` set).

    Raises:
        InvalidInput: not a readable recording, empty, or longer than ``MAX_VOICE_S``.
    """
    try:
        info = soundfile.info(io.BytesIO(recording))
        # bounded before decoding: the header says how long it is
        if info.frames == 0 or info.samplerate <= 0:
            raise InvalidInput("empty recording", key="error.voice_empty")
        if info.frames / info.samplerate > MAX_VOICE_S:
            raise InvalidInput("recording too long", key="error.voice_long", minutes=MAX_VOICE_S // 60)
        samples, rate = soundfile.read(io.BytesIO(recording), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise InvalidInput(f"unreadable recording: {exc}", key="error.voice_unreadable") from None
    mono = samples.mean(axis=1)
    if rate != VOICE_RATE:
        # linear interpolation is enough for speech, and needs nothing beyond numpy
        count = round(len(mono) * VOICE_RATE / rate)
        mono = np.interp(np.linspace(0, len(mono) - 1, count), np.arange(len(mono)), mono).astype("float32")
    out = io.BytesIO()
    soundfile.write(out, mono, VOICE_RATE, format="OGG", subtype="OPUS")
    return out.getvalue()


def send_voice_note(actor: Actor, conversation_id: int, recording: bytes) -> int:
    """Send a recording made in the browser as a WhatsApp voice note (push-to-talk); returns the message id."""
    return send_media(actor, conversation_id, filename="nota-de-voz.ogg", data=encode_voice_note(recording),
                      mime="audio/ogg; codecs=opus")
