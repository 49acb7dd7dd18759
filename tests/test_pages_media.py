"""Biblioteca de mídia page: the list with previews, upload of several files with one result each, kind filter,
rename, removal confirmed against the funnels that use the file, and agents kept out."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from connector.media import thumbnail_path
from tests.factories import PASSWORD, make_actor, make_workspace
from tests.test_media_library import MP3, PDF, sending
from tests.test_pages_app import login, new_app, signed_in_app
from workbench.services import funnels, media_library
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Media

# A real 1x1 PNG: st.image reads it.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
                       "AABJRU5ErkJggg==")
HOSTILE = "**x** <b>y</b> [l](http://e.vil) :red[z]"
# What survives the file name sanitizer (no slashes, colons or angle brackets) and still means Markdown.
HOSTILE_NAME = "# _y_ [l](e.vil) $z^2$ ~~s~~.pdf"
PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "media.py")


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)  # logged in (the login itself is tested in test_pages_app)
    at.run()
    return at.switch_page("pages/media.py").run()


def texts(at: AppTest) -> list[str]:
    return [el.value for el in at.main.text]


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


@pytest.fixture
def admin(engine, r):
    return make_actor(make_workspace(), "admin")


def test_the_page_lists_the_library_with_previews(admin):
    media_library.upload_media(admin, HOSTILE_NAME, PDF)
    media_library.upload_media(admin, "jingle.mp3", MP3)
    media_library.upload_media(admin, "foto.png", PNG)
    at = open_page(admin)
    assert not at.exception
    assert [t.value for t in at.title] == ["Biblioteca de mídia"]
    assert texts(at) == ["foto.png", "jingle.mp3", HOSTILE_NAME]  # newest first, names literal
    assert [c.value.split(" · ")[:2] for c in at.caption if " · " in c.value] == [
        ["Imagem", "1 KB"], ["Áudio", "1 KB"], ["Documento", "1 KB"]]
    assert len(at.image) == 1 and len(at.get("audio")) == 1
    assert len(at.get("download_button")) == 3
    at.radio(key="media_filter").set_value("document").run()
    assert texts(at) == [HOSTILE_NAME]
    at.radio(key="media_filter").set_value("video").run()
    assert texts(at) == [] and [i.value for i in at.info] == [
        "Nenhum arquivo aqui ainda. Envie imagens, áudios, vídeos ou documentos acima."]


def test_previews_are_thumbnails_and_downloads_are_never_inline(admin, monkeypatch):
    photo = io.BytesIO()
    Image.new("RGB", (2000, 1500), (10, 120, 60)).save(photo, "PNG")
    item = media_library.upload_media(admin, "foto grande.png", photo.getvalue())
    with session_scope() as s:
        sha = s.get(Media, item["id"]).sha256
    thumbnail_path(get_settings().data_dir, sha).unlink()  # uploaded before thumbnails were kept
    downloads = []
    real_button = st.download_button
    monkeypatch.setattr(st, "download_button", lambda *a, **kw: downloads.append(kw["mime"]) or real_button(*a, **kw))
    at = open_page(admin)
    assert not at.exception
    assert len(at.image) == 1 and thumbnail_path(get_settings().data_dir, sha).exists(), "made on first view"
    assert downloads == ["application/octet-stream"]


def test_uploading_several_files_shows_each_result(admin):
    media_library.upload_media(admin, "ja-tinha.png", PNG)
    at = open_page(admin)
    at.file_uploader(key="media_upload_0").set_value([
        ("proposta.pdf", PDF, "application/pdf"),
        ("de-novo.png", PNG, "image/png"),
        ("programa.pdf", b"MZ\x90\x00" + bytes(64), "application/pdf"),
    ])
    at.button(key="media_upload").click().run()
    assert not at.exception
    assert badges(at)[:3] == [":green-badge[Adicionado]", ":blue-badge[Já estava na biblioteca]",
                              ":red-badge[O WhatsApp não aceita esse tipo de arquivo. Envie imagem JPEG, PNG ou "
                              "WebP; áudio OGG (Opus), MP3, M4A, AAC ou AMR; vídeo MP4 ou 3GP; ou documento PDF, "
                              "Office, OpenDocument, TXT, CSV ou ZIP.]"]
    assert texts(at)[:3] == ["proposta.pdf", "ja-tinha.png", "programa.pdf"]
    assert [m["filename"] for m in media_library.list_media(admin)] == ["proposta.pdf", "ja-tinha.png"]
    assert at.file_uploader(key="media_upload_1")  # a fresh, empty uploader for the next batch


def test_rename(admin):
    item = media_library.upload_media(admin, "proposta.pdf", PDF)
    at = open_page(admin)
    at.text_input(key=f"media_name_{item['id']}").input("Proposta final")
    at.button(key=f"media_rename_{item['id']}").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Nome alterado."]
    assert "Proposta final.pdf" in texts(at)
    assert at.text_input(key=f"media_name_{item['id']}").value == "Proposta final.pdf"
    at.text_input(key=f"media_name_{item['id']}").input("  ")
    at.button(key=f"media_rename_{item['id']}").click().run()
    assert [e.value for e in at.error] == ["Dê um nome ao arquivo."]


def test_remove_lists_the_funnels_that_use_it_and_waits_for_confirmation(admin):
    item = media_library.upload_media(admin, "promo.png", PNG)
    funnels.create_funnel(admin, HOSTILE, sending(item["id"]))
    at = open_page(admin)
    at.button(key=f"media_remove_{item['id']}").click().run()
    assert [w.value for w in at.warning][0].startswith("Este arquivo é enviado por 1 funil(is)")
    assert f"• {HOSTILE}" in texts(at)  # the funnel name, literal
    at.button(key=f"media_no_remove_{item['id']}").click().run()
    assert not at.warning and media_library.list_media(admin)
    at.button(key=f"media_remove_{item['id']}").click().run()
    at.button(key=f"media_yes_remove_{item['id']}").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        "Arquivo removido da biblioteca. As mensagens já enviadas continuam com ele."]
    assert media_library.list_media(admin) == [] and "promo.png" not in texts(at)


def test_remove_of_an_unused_file(admin):
    item = media_library.upload_media(admin, "a.pdf", PDF)
    at = open_page(admin)
    at.button(key=f"media_remove_{item['id']}").click().run()
    assert [w.value for w in at.warning] == ["Remover este arquivo da biblioteca? Nenhum funil o envia."]


def test_agents_do_not_get_the_page(engine, r):
    ws = make_workspace()
    agent = make_actor(ws, "agent")
    at = login(new_app().run(), agent.email, PASSWORD)
    assert not at.exception
    with pytest.raises(ValueError):  # not in the agent's navigation
        at.switch_page("pages/media.py")
    # Loaded directly all the same, the page refuses before showing anything.
    media_library.upload_media(make_actor(ws, "admin"), "a.pdf", PDF)
    direct = AppTest.from_file(PAGE, default_timeout=60)
    direct.session_state["auth_actor"] = agent
    direct.run()
    assert [e.value for e in direct.error] == ["Só administradores e supervisores gerenciam a biblioteca de mídia."]
    assert not direct.text and not direct.file_uploader
