"""The content-addressed media store: ``<data_dir>/media/<sha[:2]>/<sha256>``.

Connectors download media from the provider and store it here; the media library stores uploads; workers, the
panel and notebooks read it by the ``MediaRef`` carried in the contracts. Files are named by their SHA-256, so the
same image sent twice is stored once and a file is never rewritten in place. Callers pass the data dir; the size
cap defaults to the settings' ``media_max_mb``.

Nothing a sender claims is trusted: ``store_media`` records the type decided from the content
(``connector.filetypes``) and keeps, beside an image, its bounded thumbnail (``connector.thumbnails``) as
``<sha256>.thumb``, the only form in which the panel shows it. Files stored before types were decided at store
time are decided when read (``thumbnail``, ``inline_type``: bounded, and cached per file). The store's
directories are 0700 and its files 0600.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from connector.contracts import MediaRef
from connector.files import private_dir, replace_file
from connector.filetypes import DOWNLOAD_TYPE, UnreadableArchive, extension, sniff_mime
from connector.filetypes import inline_type as _inline
from connector.thumbnails import make_thumbnail
from workbench.store.config import get_settings

MAX_FILENAME = 120
"""Longest file name kept (WhatsApp shows it under a document; longer names are cut, keeping the extension)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Control and reserved characters, and the bidirectional controls that make "fatura\u202efdp.exe" read as a PDF.
# Control and reserved characters, the invisible direction marks that disguise an extension, and lone
# surrogates (a name PostgreSQL could not store).
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]')
_HEAD_BYTES = 64  # what sniff_mime reads of an image, audio or video file


class MediaError(ValueError):
    """A media file that cannot be stored or found."""


class MediaTooLarge(MediaError):
    """The file is larger than the size cap (``WORKBENCH_MEDIA_MAX_MB``)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(f"media file of {size} bytes exceeds the limit of {max_bytes} bytes")
        self.size = size
        self.max_bytes = max_bytes


def max_media_bytes() -> int:
    """The media size cap in bytes (the settings' ``media_max_mb``, ``WORKBENCH_MEDIA_MAX_MB``)."""
    return get_settings().media_max_mb * 1024 * 1024


def media_path(data_dir: Path | str, sha256: str) -> Path:
    """Where the file with this digest lives (whether or not it exists).

    Raises:
        MediaError: ``sha256`` is not 64 lower-case hex digits (it may come from a message, so it is
            checked before it becomes part of a path).
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise MediaError(f"not a sha256 digest: {str(sha256)[:80]!r}")
    return Path(data_dir) / "media" / sha256[:2] / sha256


def thumbnail_path(data_dir: Path | str, sha256: str) -> Path:
    """Where the thumbnail of the file with this digest lives (whether or not it exists)."""
    path = media_path(data_dir, sha256)
    return path.with_name(f"{path.name}.thumb")


def has_media(data_dir: Path | str, sha256: str) -> bool:
    """Whether the store holds the file (False for a malformed digest too)."""
    try:
        return media_path(data_dir, sha256).is_file()
    except MediaError:
        return False


def safe_filename(filename: str | None) -> str | None:
    """A file name safe to store, show and download under: last path part, no control or reserved characters,
    at most ``MAX_FILENAME`` characters (a cut name keeps its extension); None when nothing is left."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", unicodedata.normalize("NFC", name)).strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME:
        ext = extension(name)
        suffix = f".{ext}" if ext and len(ext) <= 10 else ""
        name = name[: MAX_FILENAME - len(suffix)].rstrip() + suffix
    return name or None


def decide_mime(data: bytes, filename: str | None = None, declared: str | None = None) -> str:
    """The type the store records for ``data``: ``filetypes.sniff_mime``, or ``DOWNLOAD_TYPE`` when the content
    names no type WhatsApp delivers (or is an archive that cannot be read)."""
    try:
        return sniff_mime(data, filename or "", declared) or DOWNLOAD_TYPE
    except UnreadableArchive:
        return DOWNLOAD_TYPE


def _store_dir(data_dir: Path | str, sha256: str) -> Path:
    private_dir(Path(data_dir) / "media")
    return private_dir(media_path(data_dir, sha256).parent)


def keep_thumbnail(data_dir: Path | str, data: bytes, sha256: str | None = None) -> bool:
    """Make the thumbnail of ``data`` and keep it in the store beside the file of that digest.

    Returns False, keeping nothing, when ``data`` is not an image that decodes within bounds.
    """
    sha = sha256 or hashlib.sha256(data).hexdigest()
    path = thumbnail_path(data_dir, sha)
    if path.exists():
        return True
    thumb = make_thumbnail(data)
    if thumb is None:
        return False
    _store_dir(data_dir, sha)
    replace_file(path, thumb)
    return True


def store_media(
    data_dir: Path | str, data: bytes, mime: str | None = None, filename: str | None = None,
    max_bytes: int | None = None,
) -> MediaRef:
    """Store ``data`` under its SHA-256, with its thumbnail when it is an image, and describe it.

    Files are written all or nothing (``connector.files.replace_file``), so a reader never sees half a file.

    Args:
        data_dir: the product's data dir (the store is its ``media`` subdirectory).
        data: the file's bytes.
        mime: the type the sender declared: only a hint for text without an extension (see ``decide_mime``).
        filename: the sender's file name; only its last path component is kept.
        max_bytes: size cap; ``None`` = ``max_media_bytes()``.

    Returns:
        The reference, whose ``mime`` is decided from the content.

    Raises:
        MediaTooLarge: ``data`` is larger than the cap.
    """
    limit = max_media_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise MediaTooLarge(len(data), limit)
    sha = hashlib.sha256(data).hexdigest()
    path = media_path(data_dir, sha)
    if not path.exists():
        _store_dir(data_dir, sha)
        replace_file(path, data)
    # Contacts choose file names: keep only a base name so it can never be used as a path (downloads go further,
    # safe_filename).
    name = Path(filename.replace("\\", "/")).name if filename else None
    decided = decide_mime(data, name, mime)
    if decided.startswith("image/"):
        keep_thumbnail(data_dir, data, sha)
    return MediaRef(sha256=sha, mime=decided, size=len(data), filename=name or None)


def load_media(data_dir: Path | str, sha256: str) -> bytes:
    """The bytes of a stored file.

    Raises:
        MediaError: no such file (or a malformed digest).
    """
    path = media_path(data_dir, sha256)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"media {sha256} is not in the store under {Path(data_dir)}") from None


def thumbnail(data_dir: Path | str, sha256: str) -> bytes | None:
    """The thumbnail of a stored file: the one kept in the store, else one made now from the file (once per
    process: files stored before thumbnails were made at store time), else None (not an image we show)."""
    try:
        path = thumbnail_path(data_dir, sha256)
    except MediaError:
        return None
    if not path.exists() and not _thumbnail_made(Path(data_dir), sha256):
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


@lru_cache(maxsize=4096)
def _thumbnail_made(data_dir: Path, sha256: str) -> bool:
    """Make and keep the thumbnail of a stored file; remembered, so a file that is no image is read once."""
    if not _head_type(data_dir, sha256).startswith("image/"):
        return False
    try:
        data = load_media(data_dir, sha256)
    except MediaError:
        return False
    return keep_thumbnail(data_dir, data, sha256)


def _head_type(data_dir: Path, sha256: str) -> str:
    """The type ``decide_mime`` gives a stored file's first bytes (enough for images, audio and video)."""
    try:
        with media_path(data_dir, sha256).open("rb") as fh:
            return decide_mime(fh.read(_HEAD_BYTES))
    except (MediaError, OSError):
        return DOWNLOAD_TYPE


@lru_cache(maxsize=4096)
def inline_type(data_dir: Path | str, sha256: str) -> str | None:
    """The type a stored audio or video file may be played inline with, decided from its first bytes
    (``filetypes.INLINE_TYPES``); None for anything else, which is only ever downloaded."""
    return _inline(_head_type(Path(data_dir), sha256))
