"""Biblioteca de mídia: upload the images, audios, videos and documents that funnels send, preview, rename, remove.

Layout only: ``workbench.services.media_library`` checks roles, decides each file's type from its content and keeps the
files. File names were typed by people, so they are shown with ``st.text`` (literal), never as Markdown. Previews
and downloads go through ``pages/ui/media.py`` (thumbnails, inline-safe players, octet-stream downloads). Removing
an item first lists the funnels that still send it.
"""

from __future__ import annotations

import functools
from typing import Any

import streamlit as st

from connector.filetypes import inline_type
from pages.ui.feedback import attempt, show_flash
from pages.ui.media import download_button, show_inline
from workbench.base.i18n import error_text, format_moment, t
from workbench.services import media_library
from workbench.store.config import get_settings
from workbench.store.outages import PAGE_ERRORS

actor = st.session_state["auth_actor"]

# (status, file name, catalog text) per file of the last upload: "added", "known" or "failed".
RESULTS_KEY = "media_upload_results"
# One message shown above the list after a rename or removal.
FLASH_KEY = "media_flash"
# Id of the item whose removal waits for confirmation.
CONFIRM_KEY = "media_confirm_remove"
# Part of the uploader's key: a file uploader cannot be cleared through session state, so each upload moves on
# to a fresh one.
UPLOAD_NONCE_KEY = "media_upload_nonce"
FILTERS = ("all", *media_library.KINDS)
KIND_ICONS = {"image": ":material/image:", "audio": ":material/music_note:", "video": ":material/movie:",
              "document": ":material/description:"}


def format_size(size: int) -> str:
    """Bytes as "820 KB" or "3,4 MB" (pt-BR decimal comma)."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")


# -- callbacks: they run before the page redraws, so the list shows their effect --------------------------------


def _upload() -> None:
    """Form callback for "Enviar": every chosen file is tried; each gets its own result line."""
    nonce = st.session_state.get(UPLOAD_NONCE_KEY, 0)
    files = st.session_state.get(f"media_upload_{nonce}") or []
    if not files:
        st.session_state[RESULTS_KEY] = [("failed", "", t("media.upload.missing"))]
        return
    known = {item["id"] for item in media_library.list_media(actor)}
    results = []
    for upload in files:
        try:
            item = media_library.upload_media(actor, upload.name, upload.getvalue(), upload.type)
        except PAGE_ERRORS as exc:
            results.append(("failed", upload.name, error_text(exc)))
            continue
        status = "known" if item["id"] in known else "added"
        known.add(item["id"])
        results.append((status, item["filename"], t(f"media.upload.{status}")))
    st.session_state[RESULTS_KEY] = results
    st.session_state[UPLOAD_NONCE_KEY] = nonce + 1


def _rename(media_id: int) -> None:
    key = f"media_name_{media_id}"
    with attempt(FLASH_KEY, t("media.renamed")):
        item = media_library.rename_media(actor, media_id, st.session_state.get(key) or "")
        st.session_state[key] = item["filename"]  # the name as kept (sanitized, extension added)


def _ask_remove(media_id: int) -> None:
    st.session_state[CONFIRM_KEY] = media_id


def _cancel_remove() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _remove(media_id: int) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    with attempt(FLASH_KEY, t("media.removed")):
        media_library.remove_media(actor, media_id)


# -- drawing -------------------------------------------------------------------------------------------------------


def _upload_form() -> None:
    nonce = st.session_state.get(UPLOAD_NONCE_KEY, 0)
    max_mb = get_settings().media_max_mb
    with st.form("media_upload_form"):
        st.file_uploader(t("media.upload.files"), type=list(media_library.ACCEPTED_EXTENSIONS),
                         accept_multiple_files=True, key=f"media_upload_{nonce}", max_upload_size=max_mb,
                         help=t("media.upload.help", max_mb=max_mb))
        st.form_submit_button(t("media.upload.submit"), key="media_upload", type="primary", icon=":material/upload:",
                              on_click=_upload)
    colors = {"added": "green", "known": "blue", "failed": "red"}
    for status, filename, text in st.session_state.pop(RESULTS_KEY, []):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.badge(text, color=colors[status])
            if filename:
                st.text(filename)


def _preview(item: dict[str, Any]) -> None:
    """Thumbnail or player (``pages/ui/media.py``); a file missing from the store, or one that cannot be shown,
    gets a note instead of breaking the list."""
    kind = item["kind"]
    if kind == "document":
        st.markdown(f"## {KIND_ICONS['document']}")
        return
    load = media_library.media_thumbnail if kind == "image" else media_library.media_content
    try:
        data = load(actor, item["id"])
    except PAGE_ERRORS as exc:
        st.warning(error_text(exc), icon=":material/broken_image:")
        return
    # The type was decided from the content at upload; only inline-safe ones reach a player.
    if not show_inline(kind, lambda: data, inline_type(item["mime"]), width=160):
        st.caption(t("media.preview_unavailable"))


def _remove_confirmation(item: dict[str, Any]) -> None:
    media_id = item["id"]
    with attempt() as outcome:
        used_by = media_library.media_usage(actor, media_id)
    if not outcome.ok:
        return
    if used_by:
        st.warning(t("media.confirm_remove_used", count=len(used_by)), icon=":material/warning:")
        st.text("\n".join(f"• {name}" for name in used_by))  # funnel names were typed by people
    else:
        st.warning(t("media.confirm_remove"), icon=":material/warning:")
    with st.container(horizontal=True):
        st.button(t("media.confirm"), key=f"media_yes_remove_{media_id}", type="primary", on_click=_remove,
                  args=(media_id,))
        st.button(t("media.cancel"), key=f"media_no_remove_{media_id}", on_click=_cancel_remove)


def _actions(item: dict[str, Any]) -> None:
    media_id = item["id"]
    with st.container(horizontal=True):
        # Deferred: the file is read only when someone actually downloads it.
        download_button(t("media.download"), functools.partial(media_library.media_content, actor, media_id),
                        item["filename"], key=f"media_download_{media_id}")
        with st.popover(t("media.rename"), icon=":material/edit:", key=f"media_rename_popover_{media_id}"):
            with st.form(f"media_rename_form_{media_id}", border=False):
                st.session_state.setdefault(f"media_name_{media_id}", item["filename"])
                st.text_input(t("media.rename.name"), key=f"media_name_{media_id}",
                              max_chars=media_library.MAX_FILENAME, help=t("media.rename.help"))
                st.form_submit_button(t("media.rename.submit"), key=f"media_rename_{media_id}", on_click=_rename,
                                      args=(media_id,))
        st.button(t("media.remove"), key=f"media_remove_{media_id}", icon=":material/delete:", on_click=_ask_remove,
                  args=(media_id,))


def _card(item: dict[str, Any]) -> None:
    with st.container(border=True):
        preview, details = st.columns([1, 3])
        with preview:
            _preview(item)
        with details:
            st.text(item["filename"])
            st.caption(" · ".join((t(f"media.kind.{item['kind']}"), format_size(item["size"]),
                                   format_moment(item["created_at"]))))
            if st.session_state.get(CONFIRM_KEY) == item["id"]:
                _remove_confirmation(item)
            else:
                _actions(item)


st.title(t("media.title"))
if not actor.is_manager:
    # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
    st.error(t("media.manager_only"))
    st.stop()
st.caption(t("media.intro"))
_upload_form()
show_flash(FLASH_KEY)
choice = st.radio(t("media.filter"), FILTERS, key="media_filter", horizontal=True,
                  format_func=lambda kind: t(f"media.filter.{kind}"))
items = media_library.list_media(actor, None if choice == "all" else choice)
if not items:
    st.info(t("media.empty"), icon=":material/perm_media:")
for entry in items:
    _card(entry)
