"""The media library: files a workspace uploads once and funnels' "send message" nodes send by id.

A library item is a ``media`` row with ``in_library`` true; the bytes live in the content-addressed store
(``connector.media``). The file's type is decided from its content (``connector.filetypes.sniff_mime``), because
the browser's declared type is whatever the file name suggests. Only what WhatsApp delivers is accepted, and an
image only when it decodes within bounds (its thumbnail, ``connector.thumbnails``, is what previews show).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from connector.contracts import MediaRef
from connector.filetypes import EXTENSIONS, UnreadableArchive, extension, sniff_mime
from connector.media import MAX_FILENAME as MAX_FILENAME  # the rename field caps names at it
from connector.media import MediaError, load_media, safe_filename, store_media, thumbnail
from connector.thumbnails import MAX_DECODED_PIXELS, make_thumbnail
from workbench.base.errors import InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.services.funnels import EDITORS
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Funnel, FunnelVersion, Media

KINDS = ("image", "audio", "video", "document")
ACCEPTED_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ogg", "opus", "mp3", "m4a", "aac", "amr", "mp4", "3gp", "pdf",
                       "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "txt", "csv", "zip")
"""File name extensions an uploader may offer; the content still decides whether the file is accepted."""


def kind_of(mime: str) -> str:
    """The library kind ("image", "audio", "video" or "document") of a MIME type."""
    top = mime.split("/", 1)[0]
    return top if top in ("image", "audio", "video") else "document"


def _as_dict(media: Media) -> dict[str, Any]:
    return {"id": media.id, "filename": media.filename, "mime": media.mime, "size": media.size,
            "kind": kind_of(media.mime), "created_at": media.created_at}


def list_media(actor: Actor, kind: str | None = None) -> list[dict[str, Any]]:
    """The workspace's library items, newest first.

    Args:
        actor: any member of the workspace (agents may read: the inbox and editor show library files).
        kind: only items of this kind ("image", "audio", "video", "document"); None = all.

    Returns:
        One dict per item with ``id``, ``filename``, ``mime``, ``size`` (bytes), ``kind`` and ``created_at``.
    """
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"unknown media kind {kind}", key="error.media_kind")
    with session_scope() as session:
        rows = session.scalars(select(Media).where(Media.workspace_id == actor.workspace_id, Media.in_library)
                               .order_by(Media.created_at.desc(), Media.id.desc())).all()
        items = [_as_dict(m) for m in rows]
    return [item for item in items if kind is None or item["kind"] == kind]


def sanitize_filename(filename: str | None, mime: str) -> str:
    """A file name safe to store and show (``connector.media.safe_filename``); a name left empty becomes
    ``arquivo.<ext>``."""
    return safe_filename(filename) or f"arquivo.{EXTENSIONS.get(mime, 'bin')}"


def store_checked(filename: str | None, data: bytes, mime: str | None = None) -> tuple[str, str, MediaRef]:
    """Check a file with the library's rules and store its bytes; returns its detected type, its safe name and
    its reference. The one gate for files people send: library uploads and the inbox's attachments.

    Raises:
        InvalidInput: an empty file, a file over the size limit, a type WhatsApp does not accept, an archive that
            cannot be read, or an image that does not decode within bounds.
    """
    if not data:
        raise InvalidInput("empty file", key="error.media_empty")
    settings = get_settings()
    max_bytes = settings.media_max_mb * 1024 * 1024
    if len(data) > max_bytes:
        raise InvalidInput(f"{len(data)} bytes", key="error.media_too_large", max_bytes=max_bytes)
    try:
        detected = sniff_mime(data, filename or "", mime)
    except UnreadableArchive as exc:
        raise InvalidInput(f"unreadable archive: {exc}", key="error.media_archive") from None
    if detected is None:
        raise InvalidInput(f"unsupported file {filename!r}", key="error.media_unsupported")
    if kind_of(detected) == "image" and make_thumbnail(data) is None:
        # WhatsApp could not show it either; the store makes the same thumbnail again (uploads are rare).
        raise InvalidInput("image does not decode", key="error.media_image",
                           max_mp=MAX_DECODED_PIXELS // 1_000_000)
    name = sanitize_filename(filename, detected)
    return detected, name, store_media(settings.data_dir, data, detected, name, max_bytes=max_bytes)


def upload_media(actor: Actor, filename: str, data: bytes, mime: str | None = None) -> dict[str, Any]:
    """Put a file in the workspace's library (or return the item it already is).

    Args:
        actor: an admin or supervisor.
        filename: the uploaded file's name (sanitized before it is kept).
        data: the file's bytes.
        mime: the type the browser declared; only a hint for text files without an extension.

    Returns:
        The library item, as ``list_media`` describes it. The same bytes uploaded again are the same item; a
        file that arrived in a conversation joins the library under the uploaded name.

    Raises:
        PermissionDenied: agents cannot change the library.
        InvalidInput: an empty file, a file over the size limit, a type WhatsApp does not accept, an archive that
            cannot be read (broken, password-protected), or an image that does not decode within bounds.
    """
    actor.require(*EDITORS)
    detected, name, ref = store_checked(filename, data, mime)
    with session_scope() as session:
        # Two uploads of one file may race: the unique (workspace, sha256) row absorbs the second.
        session.execute(insert(Media).values(workspace_id=actor.workspace_id, sha256=ref.sha256, mime=detected,
                                             size=ref.size, filename=name, in_library=True)
                        .on_conflict_do_nothing(index_elements=["workspace_id", "sha256"]))
        media = session.scalars(select(Media).where(Media.workspace_id == actor.workspace_id,
                                                    Media.sha256 == ref.sha256)).one()
        if not media.in_library:
            media.in_library = True
            media.filename = name
            media.mime = detected
        session.flush()
        return _as_dict(media)


def _get(session: Session, actor: Actor, media_id: int) -> Media:
    media = session.get(Media, media_id)
    if media is None or media.workspace_id != actor.workspace_id or not media.in_library:
        raise NotFound("media", key="error.media_not_found")
    return media


def get_media(actor: Actor, media_id: int) -> dict[str, Any]:
    """One library item (same shape as ``list_media``).

    Raises:
        NotFound: no such item in the actor's library.
    """
    with session_scope() as session:
        return _as_dict(_get(session, actor, media_id))


def media_content(actor: Actor, media_id: int) -> bytes:
    """The bytes of a library item, for previews and downloads.

    Raises:
        NotFound: no such item in the actor's library, or its file is missing from the store.
    """
    with session_scope() as session:
        sha256 = _get(session, actor, media_id).sha256
    try:
        return load_media(get_settings().data_dir, sha256)
    except MediaError:
        raise NotFound(f"media file {sha256} missing", key="error.media_file_missing") from None


def media_thumbnail(actor: Actor, media_id: int) -> bytes | None:
    """The thumbnail of a library image (``connector.media.thumbnail``), or None when there is none to show.

    Raises:
        NotFound: no such item in the actor's library.
    """
    with session_scope() as session:
        sha256 = _get(session, actor, media_id).sha256
    return thumbnail(get_settings().data_dir, sha256)


def rename_media(actor: Actor, media_id: int, filename: str) -> dict[str, Any]:
    """Give a library item a new name; without an extension it keeps its current one.

    Raises:
        PermissionDenied: agents cannot change the library.
        InvalidInput: the new name is blank.
        NotFound: no such item in the actor's library.
    """
    actor.require(*EDITORS)
    if not (filename or "").strip():
        raise InvalidInput("blank name", key="error.media_filename")
    with session_scope() as session:
        media = _get(session, actor, media_id)
        name = sanitize_filename(filename, media.mime)
        current_ext = extension(media.filename or "") or EXTENSIONS.get(media.mime, "")
        if not extension(name) and current_ext:
            name = sanitize_filename(f"{name}.{current_ext}", media.mime)
        media.filename = name
        session.flush()
        return _as_dict(media)


def remove_media(actor: Actor, media_id: int) -> None:
    """Take an item out of the library. The file stays: messages already sent point at it.

    It leaves the list and the editor's picker; funnels that already send it keep sending it until they are
    edited, so pages show ``media_usage`` before asking.

    Raises:
        PermissionDenied: agents cannot change the library.
        NotFound: no such item in the actor's library.
    """
    actor.require(*EDITORS)
    with session_scope() as session:
        _get(session, actor, media_id).in_library = False


def _refers_to(definition: Any, media_id: int) -> bool:
    """Whether a definition's send-message nodes send ``media_id``; drafts may be malformed, so check shapes."""
    nodes = definition.get("nodes") if isinstance(definition, dict) else None
    for node in nodes if isinstance(nodes, list) else []:
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict) or "send_message" not in (node.get("type"), data.get("node_type")):
            continue
        media = data.get("media")
        if isinstance(media, dict) and str(media.get("media_id")) == str(media_id):
            return True
    return False


def media_usage(actor: Actor, media_id: int) -> list[str]:
    """Names of the workspace's funnels whose draft or published version sends this item, sorted.

    Raises:
        NotFound: no such item in the actor's library.
    """
    with session_scope() as session:
        _get(session, actor, media_id)
        rows = session.execute(select(Funnel.name, Funnel.draft, FunnelVersion.definition)
                               .outerjoin(FunnelVersion, FunnelVersion.id == Funnel.published_version_id)
                               .where(Funnel.workspace_id == actor.workspace_id)).all()
    return sorted({name for name, draft, published in rows
                   if _refers_to(draft, media_id) or _refers_to(published, media_id)})
