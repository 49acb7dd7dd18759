"""The content-addressed media store: types decided by content, bounded thumbnails, private files, and the
all-or-nothing file write it shares with the spool."""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import zlib

import pytest
from PIL import Image

from connector.files import replace_file
from connector.media import (
    MediaError,
    MediaTooLarge,
    inline_type,
    load_media,
    media_path,
    safe_filename,
    store_media,
    thumbnail,
    thumbnail_path,
)
from connector.thumbnails import MAX_DECODED_PIXELS, THUMBNAIL_SIZE, make_thumbnail

DATA = b"GIF89a" + bytes(range(200))
OGG = b"OggS\x00\x02" + bytes(22) + b"OpusHead\x01\x02" + bytes(100)
HTML = b"<html><script>alert(document.cookie)</script></html>"


def image(size: tuple[int, int], kind: str = "PNG", mode: str = "RGB", **save: object) -> bytes:
    """A real image of ``size`` (one flat colour: cheap to compress, however large)."""
    out = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else None).save(out, kind, **save)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds almost none: what a decompression bomb looks like
    to a decoder that trusts the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_is_content_addressed_and_idempotent(tmp_path):
    ref = store_media(tmp_path, DATA, "image/gif", "gato.gif", max_bytes=1024)
    sha = hashlib.sha256(DATA).hexdigest()
    # Not a type WhatsApp delivers (and not a real GIF either): recorded as a plain download.
    assert ref.model_dump() == {"sha256": sha, "mime": "application/octet-stream", "size": len(DATA),
                                "filename": "gato.gif"}
    path = media_path(tmp_path, sha)
    assert path == tmp_path / "media" / sha[:2] / sha
    assert load_media(tmp_path, sha) == DATA
    again = store_media(tmp_path, DATA, "image/gif", "outro.gif", max_bytes=1024)
    assert again.sha256 == sha and again.filename == "outro.gif"
    assert [p.name for p in path.parent.iterdir()] == [sha], "no temporary file left behind"


def test_a_file_name_never_becomes_a_path(tmp_path):
    assert store_media(tmp_path, DATA, "image/gif", "../../etc/passwd", max_bytes=1024).filename == "passwd"
    assert store_media(tmp_path, DATA, "image/gif", "..\\x\\y.gif", max_bytes=1024).filename == "y.gif"
    assert store_media(tmp_path, DATA, "", None, max_bytes=1024).mime == "application/octet-stream"
    assert safe_filename("..") is None and safe_filename("../") is None
    assert safe_filename("a\x00b\u202ec<d>.pdf") == "a_b_c_d_.pdf"
    assert safe_filename("x" * 300 + ".pdf") == "x" * 116 + ".pdf"


def test_too_large_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(MediaTooLarge, match="exceeds"):
        store_media(tmp_path, DATA, "image/gif", max_bytes=10)
    assert not (tmp_path / "media").exists()


def test_the_size_cap_comes_from_the_settings(tmp_path, settings_env):
    settings_env(WORKBENCH_MEDIA_MAX_MB="1")
    with pytest.raises(MediaTooLarge):
        store_media(tmp_path, b"x" * (1024 * 1024 + 1), "application/octet-stream")


def test_digests_are_checked_before_they_touch_the_file_system(tmp_path):
    with pytest.raises(MediaError, match="not a sha256"):
        media_path(tmp_path, "../../etc/passwd")
    with pytest.raises(MediaError, match="not in the store"):
        load_media(tmp_path, "0" * 64)


def test_a_file_is_replaced_all_or_nothing(tmp_path):
    path = tmp_path / "1.jid.json"
    replace_file(path, '{"user": "5511990000001"}')
    replace_file(path, "ação".encode())
    assert path.read_text() == "ação"
    with pytest.raises(TypeError):
        replace_file(path, 42)  # type: ignore[arg-type]  # fails after the temporary file was made
    assert path.read_text() == "ação", "the old file stays whole"
    assert [p.name for p in tmp_path.iterdir()] == ["1.jid.json"], "no temporary file left behind"


@pytest.mark.parametrize("data, declared, decided", [
    (HTML, "audio/ogg", "application/octet-stream"),  # an "audio" that is a web page
    (HTML, "text/html", "application/octet-stream"),
    (image((4, 4)), "text/html", "image/png"),
    (OGG, "text/html", "audio/ogg; codecs=opus"),
    (b"PK\x03\x04broken", "application/zip", "application/octet-stream"),  # an archive that cannot be read
])
def test_the_type_is_decided_by_the_content_never_by_the_sender(tmp_path, data, declared, decided):
    assert store_media(tmp_path, data, declared, "arquivo", max_bytes=1024).mime == decided


def test_images_get_a_bounded_thumbnail_without_their_metadata(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Câmera do contato"  # Make
    exif[0x0112] = 6  # Orientation: the photo was taken sideways
    photo = image((1600, 1200), "JPEG", exif=exif.tobytes())
    ref = store_media(tmp_path, photo, "image/jpeg", "foto.jpg")
    thumb = thumbnail_path(tmp_path, ref.sha256).read_bytes()
    with Image.open(io.BytesIO(thumb)) as shown:
        assert shown.format == "JPEG" and shown.size == (240, 320), "bounded, and turned upright"
        assert not shown.getexif() and "exif" not in shown.info, "the contact's metadata is gone"
    assert thumbnail(tmp_path, ref.sha256) == thumb

    sticker = store_media(tmp_path, image((512, 512), "WEBP", "RGBA"), "image/webp", None)
    with Image.open(io.BytesIO(thumbnail(tmp_path, sticker.sha256))) as shown:
        assert (shown.format, shown.mode, shown.size) == ("PNG", "RGBA", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))


def test_what_does_not_decode_within_bounds_gets_no_thumbnail_but_is_stored(tmp_path):
    side = int(MAX_DECODED_PIXELS ** 0.5) + 100
    too_many = image((side, side), mode="L")  # a few KB that decode to more pixels than the cap
    cases = {
        "bomb": png_header(40_000, 40_000),  # 1.6 gigapixels claimed
        "too_many": too_many,
        "truncated": image((200, 200))[:-40],
        "not_an_image": HTML,
        "gif": image((8, 8), "GIF"),  # not a type WhatsApp delivers as an image
    }
    for name, data in cases.items():
        ref = store_media(tmp_path, data, "image/png", f"{name}.png")
        assert load_media(tmp_path, ref.sha256) == data, name
        assert not thumbnail_path(tmp_path, ref.sha256).exists(), name
        assert thumbnail(tmp_path, ref.sha256) is None, name
    # A JPEG is decoded at a reduced scale, so even a photo over the cap gets its thumbnail.
    assert make_thumbnail(image((side, side), "JPEG", "L")) is not None


def test_files_stored_before_types_were_decided_are_decided_when_read(tmp_path):
    # As an older connector stored them: bytes only, no thumbnail, the sender's type in the message.
    old = {}
    for name, data in {"photo": image((800, 600), "JPEG"), "voice": OGG, "page": HTML}.items():
        old[name] = hashlib.sha256(data).hexdigest()
        path = media_path(tmp_path, old[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert thumbnail(tmp_path, old["photo"]) is not None
    assert thumbnail_path(tmp_path, old["photo"]).exists(), "made once, then kept"
    assert thumbnail(tmp_path, old["page"]) is None
    assert (inline_type(tmp_path, old["voice"]), inline_type(tmp_path, old["page"])) == ("audio/ogg", None)
    assert inline_type(tmp_path, "../../etc/passwd") is None and thumbnail(tmp_path, "0" * 64) is None


def test_the_store_is_readable_by_its_owner_only(tmp_path):
    ref = store_media(tmp_path, image((50, 50)), "image/png", "a.png")
    path = media_path(tmp_path, ref.sha256)
    assert mode_of(tmp_path / "media") == mode_of(path.parent) == 0o700
    assert mode_of(path) == mode_of(thumbnail_path(tmp_path, ref.sha256)) == 0o600
    (tmp_path / "media").chmod(0o755)  # as an older version left it
    store_media(tmp_path, DATA, None)
    assert mode_of(tmp_path / "media") == 0o700
