"""The content-addressed media store: ``<data_dir>/media/<sha[:2]>/<sha256>``.

Connectors download media from the provider and store it here; workers, the panel and notebooks read it by
the ``MediaRef`` carried in the contracts. Files are named by their SHA-256, so the same image sent twice is
stored once and a file is never rewritten in place. Callers pass the data dir; the size cap defaults to the
settings' ``media_max_mb``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from connector.contracts import MediaRef
from connector.files import replace_file
from workbench.store.config import get_settings

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    if not _SHA256.fullmatch(sha256):
        raise MediaError(f"not a sha256 digest: {sha256[:80]!r}")
    return Path(data_dir) / "media" / sha256[:2] / sha256


def store_media(
    data_dir: Path | str, data: bytes, mime: str, filename: str | None = None, max_bytes: int | None = None
) -> MediaRef:
    """Store ``data`` under its SHA-256 and describe it.

    The file is written all or nothing (``connector.files.replace_file``), so a reader never sees half a file.

    Args:
        data_dir: the product's data dir (the store is its ``media`` subdirectory).
        data: the file's bytes.
        mime: its MIME type as the sender declared it.
        filename: the sender's file name; only the last path component is kept.
        max_bytes: size cap; ``None`` = ``max_media_bytes()``.

    Raises:
        MediaTooLarge: ``data`` is larger than the cap.
    """
    limit = max_media_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise MediaTooLarge(len(data), limit)
    sha = hashlib.sha256(data).hexdigest()
    path = media_path(data_dir, sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, data)
    # Contacts choose file names: keep only a base name so it can never be used as a path.
    safe_name = Path(filename.replace("\\", "/")).name if filename else None
    return MediaRef(sha256=sha, mime=mime or "application/octet-stream", size=len(data), filename=safe_name or None)


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
