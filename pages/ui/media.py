"""Stored files on a page, shown without trusting them (the inbox, the media library, the Simulator).

Files come from contacts and uploads, so a page shows only what ``connector.media`` decided from their content:
an image as its bounded thumbnail, an audio or video in the browser's player only with an inline-safe type
(``connector.filetypes.INLINE_TYPES``), and anything else as a download served as
``application/octet-stream`` under a safe name (never inline, whatever the sender declared). Drawing one file
never raises into the page: the caller shows a placeholder instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from connector.filetypes import DOWNLOAD_TYPE
from connector.media import safe_filename

log = logging.getLogger(__name__)

IMAGE_KINDS = ("image", "sticker")
PLAYER_KINDS = ("audio", "video")


def show_inline(kind: str, load: Callable[[], bytes | None], mime: str | None = None, width: int = 280) -> bool:
    """Draw a file inline: an image or sticker from its thumbnail, an audio or video in its player.

    Args:
        kind: the message or library kind ("image", "sticker", "audio", "video"; others are never inline).
        load: gives the bytes to show (the thumbnail for images, the file for players), or None.
        mime: for a player, the inline-safe type decided from the content; without one nothing is played.
        width: an image's width on the page.

    Returns:
        True when something was drawn; False, having drawn nothing, when the caller must show a placeholder.
    """
    if kind not in IMAGE_KINDS and not (kind in PLAYER_KINDS and mime):
        return False
    try:
        data = load()
        if not data:
            return False
        if kind in IMAGE_KINDS:
            st.image(data, width=width)
        elif kind == "audio":
            st.audio(data, format=mime)
        else:
            st.video(data, format=mime)
    except Exception as exc:  # noqa: BLE001 - one file must never break the page it is on
        log.warning("a %s file could not be shown: %s", kind, type(exc).__name__)
        return False
    return True


def download_button(label: str, load: Callable[[], bytes], filename: str | None, key: str) -> None:
    """A button that downloads a file as ``application/octet-stream`` under a safe name (Streamlit names one that
    has none); the bytes are read only when it is clicked."""
    st.download_button(label, data=load, file_name=safe_filename(filename), mime=DOWNLOAD_TYPE, key=key,
                       icon=":material/download:", on_click="ignore")
