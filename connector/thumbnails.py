"""Bounded, metadata-free thumbnails: the only form in which the panel shows an image.

Images come from contacts (and uploads), so decoding one is bounded: only the JPEG, PNG and WebP decoders (the
image types WhatsApp delivers) are tried, the file is checked (``verify``) before it is decoded, and no image is
decoded above ``MAX_DECODED_PIXELS`` (a JPEG is decoded at a reduced scale first, ``draft``, so a large photo
stays cheap). The thumbnail is drawn anew from the pixels, so no EXIF, GPS, ICC profile or comment survives; it
is a JPEG, or a PNG when the image has transparency, at most ``THUMBNAIL_SIZE`` pixels on its longer side.
"""

from __future__ import annotations

import io
import logging

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 320
"""Longest side of a thumbnail, in pixels (the panel shows images at most 280 wide)."""
MAX_DECODED_PIXELS = 25_000_000
"""The most pixels ever decoded for one thumbnail (a 25 MP PNG is about 100 MB in memory)."""
FORMATS = ("JPEG", "PNG", "WEBP")
JPEG_QUALITY = 80


def make_thumbnail(data: bytes) -> bytes | None:
    """A thumbnail of the image ``data`` (JPEG, or PNG with transparency), or None when ``data`` is not an image
    in ``FORMATS`` that decodes within ``MAX_DECODED_PIXELS``."""
    # Pillow is imported at the first image, not with the module: connectors and workers import this module, and
    # a number that never receives an image never needs it.
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
            probe.verify()  # structure and checksums, without decoding the pixels
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # JPEG only: decode at 1/2 .. 1/8 scale
            width, height = image.size
            if width * height > MAX_DECODED_PIXELS:
                log.info("image of %dx%d pixels: no thumbnail", width, height)
                return None
            image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
            upright = ImageOps.exif_transpose(image)  # phones store photos sideways with a rotation tag
            alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            mode, kind = ("RGBA", "PNG") if alpha else ("RGB", "JPEG")
            pixels = upright.convert(mode)
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on hostile input; none may escape
        # Image.DecompressionBombError (over Pillow's own cap) is one of them.
        log.info("no thumbnail: %s", type(exc).__name__)
        return None
    clean = Image.new(mode, pixels.size)  # a fresh image: nothing of the original's metadata is carried over
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, kind, **({"quality": JPEG_QUALITY} if kind == "JPEG" else {"optimize": True}))
    return out.getvalue()
