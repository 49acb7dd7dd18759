"""The media library: files a workspace uploads once and funnels' "send message" nodes send by id.

A library item is a ``media`` row with ``in_library`` true; the bytes live in the content-addressed store
(``connector.media``). The file's type is decided from its content (magic bytes), with the extension only
telling apart formats that share a container (Office 97 files, M4A audio in MP4, plain text), because the
browser's declared type is whatever the file name suggests. Only what WhatsApp delivers is accepted.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from connector.media import MediaError, load_media, store_media
from workbench.base.errors import InvalidInput, NotFound
from workbench.services.auth import Actor
from workbench.services.funnels import EDITORS
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Funnel, FunnelVersion, Media
from workbench.store.text import clean_text

KINDS = ("image", "audio", "video", "document")
MAX_FILENAME = 120
"""Longest file name kept (WhatsApp shows it under a document; longer names are cut, keeping the extension)."""

# Canonical extension of each accepted MIME type: names a file that arrives without one.
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
    "audio/ogg; codecs=opus": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/aac": "aac", "audio/amr": "amr",
    "video/mp4": "mp4", "video/3gpp": "3gp",
    "application/pdf": "pdf", "application/zip": "zip", "text/plain": "txt", "text/csv": "csv",
    "application/msword": "doc", "application/vnd.ms-excel": "xls", "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}
ACCEPTED_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ogg", "opus", "mp3", "m4a", "aac", "amr", "mp4", "3gp", "pdf",
                       "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "txt", "csv", "zip")
"""File name extensions an uploader may offer; the content still decides whether the file is accepted."""
_OLE_BY_EXTENSION = {"doc": "application/msword", "xls": "application/vnd.ms-excel",
                     "ppt": "application/vnd.ms-powerpoint"}
_OOXML_PARTS = {
    "word/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_TEXT_BY_EXTENSION = {"txt": "text/plain", "csv": "text/csv"}
_MP4_AUDIO_BRANDS = (b"M4A ", b"M4B ")
_3GPP_BRANDS = (b"3gp", b"3g2")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


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


def _extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def _zip_type(data: bytes) -> str | None:
    """Office Open XML and OpenDocument files are ZIP archives: tell them apart by their parts."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                declared = archive.read("mimetype").decode("ascii", "replace").strip()
                if declared in EXTENSIONS:
                    return declared
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError):
        return None
    for part, mime in _OOXML_PARTS.items():
        if part in names:
            return mime
    return "application/zip"


def _mp4_type(data: bytes, ext: str) -> str | None:
    """ISO media files: the "ftyp" brand says 3GPP, M4A audio or MP4 video (QuickTime is not accepted)."""
    brand = data[8:12]
    if brand.startswith(_3GPP_BRANDS):
        return "video/3gpp"
    if brand == b"qt  ":
        return None
    if brand in _MP4_AUDIO_BRANDS or ext in ("m4a", "aac"):
        return "audio/mp4"
    return "video/mp4"


def sniff_mime(data: bytes, filename: str, declared: str | None = None) -> str | None:
    """The MIME type of ``data`` when WhatsApp accepts it, else None.

    The content decides; the extension (or, without one, the declared type) only chooses among formats that
    look alike: Office 97 documents share one container, M4A is MP4, and text has no signature.
    """
    ext = _extension(filename)
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"OggS"):
        # WhatsApp plays Ogg audio only with the Opus codec (voice notes); Vorbis or Theora are refused.
        return "audio/ogg; codecs=opus" if b"OpusHead" in head else None
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync: layer bits 00 mean an AAC ADTS stream, anything else MP3.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    if head[4:8] == b"ftyp":
        return _mp4_type(data, ext)
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_type(data)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _OLE_BY_EXTENSION.get(ext)
    text_type = _TEXT_BY_EXTENSION.get(ext) if ext else (declared or "").split(";")[0].strip().lower()
    if text_type in _TEXT_BY_EXTENSION.values() and b"\x00" not in data[:65536]:
        return text_type
    return None


def sanitize_filename(filename: str | None, mime: str) -> str:
    """A file name safe to store and show: last path part, no control or reserved characters, capped length.

    A name left empty gets ``arquivo.<ext>``; a cut name keeps its extension.
    """
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", unicodedata.normalize("NFC", name)).strip().lstrip(".").strip()
    name = clean_text(name)[0]  # lone surrogates (control characters are gone already)
    if not name:
        return f"arquivo.{EXTENSIONS.get(mime, 'bin')}"
    if len(name) > MAX_FILENAME:
        ext = _extension(name)
        suffix = f".{ext}" if ext and len(ext) <= 10 else ""
        name = name[: MAX_FILENAME - len(suffix)].rstrip() + suffix
    return name


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
        InvalidInput: an empty file, a file over the size limit, or a type WhatsApp does not accept.
    """
    actor.require(*EDITORS)
    if not data:
        raise InvalidInput("empty file", key="error.media_empty")
    settings = get_settings()
    max_bytes = settings.media_max_mb * 1024 * 1024
    if len(data) > max_bytes:
        raise InvalidInput(f"{len(data)} bytes", key="error.media_too_large", max_bytes=max_bytes)
    detected = sniff_mime(data, filename or "", mime)
    if detected is None:
        raise InvalidInput(f"unsupported file {filename!r}", key="error.media_unsupported")
    name = sanitize_filename(filename, detected)
    ref = store_media(settings.data_dir, data, detected, name, max_bytes=max_bytes)
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
        current_ext = _extension(media.filename or "") or EXTENSIONS.get(media.mime, "")
        if not _extension(name) and current_ext:
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
