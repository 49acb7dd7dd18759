"""What a file is, decided from its bytes: the type the media store records and the panel serves.

A sender's declared type (a contact's WhatsApp message, a browser's upload) is whatever they say, so the type is
decided from the content (magic bytes); the file name's extension (or, without one, the declared type) only tells
apart formats that share a container (Office 97 files, M4A audio in MP4, plain text). ``sniff_mime`` knows the
types WhatsApp delivers; anything else is ``None``, and the media store records it as ``DOWNLOAD_TYPE``.

Archives are looked into (Office Open XML and OpenDocument files are ZIP archives) within bounds: the central
directory is parsed only when it is small, and at most ``MIMETYPE_BYTES`` of an OpenDocument ``mimetype`` entry
are inflated, so a zip bomb costs nothing. An archive that cannot be read (broken, or with encrypted entries)
raises ``UnreadableArchive``.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

DOWNLOAD_TYPE = "application/octet-stream"
"""The type of a file whose content names no type we know; also what every download is served as."""

# Canonical extension of each type ``sniff_mime`` returns: names a file that arrives without one.
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
INLINE_TYPES = frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "video/mp4", "video/3gpp"})
"""Audio and video types the panel may hand to the browser's players (images are shown as thumbnails only)."""
MAX_ZIP_ENTRIES = 10_000
"""An archive with more entries is a plain ZIP: its directory is not parsed (each entry costs memory)."""
MAX_ZIP_DIRECTORY = 1024 * 1024
"""Same, for the central directory's size in bytes (the entry count in the archive's last record may lie)."""
MIMETYPE_BYTES = 128
"""The most of an OpenDocument ``mimetype`` entry ever inflated (the real ones are under 80 bytes)."""

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
_END_OF_DIRECTORY = b"PK\x05\x06"
_END_RECORD_SIZE = 22
_MAX_ARCHIVE_COMMENT = 65535


class UnreadableArchive(ValueError):
    """A ZIP archive that cannot be read: broken, or with encrypted (password-protected) entries."""


def extension(filename: str) -> str:
    """The lower-case extension of a file name ("" without one; a leading dot alone is no extension)."""
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def inline_type(mime: str | None) -> str | None:
    """The type to serve a file with inline (``INLINE_TYPES``, without parameters), or None: download it."""
    base = (mime or "").split(";", 1)[0].strip().lower()
    return base if base in INLINE_TYPES else None


def _directory_bounds(data: bytes) -> tuple[int, int] | None:
    """Entry count and central directory size from the archive's last record; None when there is no record."""
    at = data.rfind(_END_OF_DIRECTORY, max(0, len(data) - _END_RECORD_SIZE - _MAX_ARCHIVE_COMMENT))
    if at < 0 or len(data) < at + _END_RECORD_SIZE:
        return None
    entries, size = struct.unpack_from("<HI", data, at + 10)
    return entries, size


def _zip_type(data: bytes) -> str:
    """Office Open XML and OpenDocument files are ZIP archives: tell them apart by their parts.

    Raises:
        UnreadableArchive: the archive is broken or has encrypted entries.
    """
    bounds = _directory_bounds(data)
    if bounds is None:
        raise UnreadableArchive("no end of central directory record")
    entries, size = bounds
    if entries > MAX_ZIP_ENTRIES or size > MAX_ZIP_DIRECTORY:
        return "application/zip"  # ZIP64 counts (0xFFFF...) land here too
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if any(info.flag_bits & 0x1 for info in infos):
                raise UnreadableArchive("encrypted entries")
            names = {info.filename for info in infos}
            if "mimetype" in names:
                with archive.open("mimetype") as entry:
                    declared = entry.read(MIMETYPE_BYTES).decode("ascii", "replace").strip()
                if declared in EXTENSIONS:
                    return declared
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError,
            OSError, ValueError, KeyError) as exc:
        # RuntimeError: an encrypted entry; NotImplementedError: an unknown compression method.
        raise UnreadableArchive(type(exc).__name__) from None
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


def sniff_mime(data: bytes, filename: str = "", declared: str | None = None) -> str | None:
    """The MIME type of ``data`` when WhatsApp delivers that type, else None.

    The content decides; the extension (or, without one, the declared type) only chooses among formats that
    look alike: Office 97 documents share one container, M4A is MP4, and text has no signature.

    Raises:
        UnreadableArchive: ``data`` is a ZIP archive that is broken or has encrypted entries.
    """
    ext = extension(filename)
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
