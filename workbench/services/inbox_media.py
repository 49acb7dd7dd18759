"""Media from the inbox: an agent sends an image, audio, video or document — uploaded, or picked from the
Biblioteca de mídia — through the outbox like a text (typing/recording indicator, pacing, receipts).

An upload passes the library's gate (``media_library.store_checked``: same types and size limit, refused files say
why) but does not join the library: it becomes a ``media`` row of the workspace only, so the message's file can be
shown and resent. Any role that sees the conversation may send. WhatsApp shows a caption under images, videos and
documents, not under audio, so a caption with an audio file is refused rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

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
