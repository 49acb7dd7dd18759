"""The media library service: type sniffing, refusals, size limit, dedupe, names, roles, workspaces, usage, removal,
and a funnel sending a library item for real (inbound -> runtime -> outbox -> Redis)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest
from PIL import Image
from sqlalchemy import func, select

from connector.contracts import OUT_STREAM, decode_outbound
from connector.media import media_path
from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from workbench.base.errors import InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import funnels, media_library, runs
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import Media, Message


def image(kind: str, size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, kind)
    return out.getvalue()


PNG = image("PNG")
JPEG = image("JPEG")
WEBP = image("WEBP")
OPUS = b"OggS\x00\x02" + bytes(22) + b"OpusHead\x01\x02" + bytes(100)
VORBIS = b"OggS\x00\x02" + bytes(22) + b"\x01vorbis" + bytes(100)
MP3 = b"ID3\x04\x00\x00" + bytes(100)
MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(100)
ADTS = b"\xff\xf1\x50\x80" + bytes(100)
AMR = b"#!AMR\n" + bytes(100)
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(100)
M4A = b"\x00\x00\x00\x18ftypM4A " + bytes(100)
GPP = b"\x00\x00\x00\x18ftyp3gp5" + bytes(100)
MOV = b"\x00\x00\x00\x14ftypqt  " + bytes(100)
PDF = b"%PDF-1.7\n" + bytes(100)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100)
GIF = b"GIF89a" + bytes(100)
EXE = b"MZ\x90\x00" + bytes(100)


def zipped(*names: str, mimetype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if mimetype:
            archive.writestr("mimetype", mimetype)
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


DOCX = zipped("[Content_Types].xml", "word/document.xml")
XLSX = zipped("[Content_Types].xml", "xl/workbook.xml")
ODT = zipped("content.xml", mimetype="application/vnd.oasis.opendocument.text")
ZIP = zipped("fotos/a.txt")


@pytest.fixture
def ws(engine, r) -> int:
    return make_workspace()


@pytest.fixture
def admin(ws):
    return make_actor(ws, "admin")


@pytest.fixture
def small_limit(monkeypatch):
    """A 1 MB media limit for one test (settings are read once per process, so the cache is reset around it)."""
    monkeypatch.setenv("WORKBENCH_MEDIA_MAX_MB", "1")
    get_settings.cache_clear()
    yield 1024 * 1024
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("data, filename, mime, kind", [
    (PNG, "foto.png", "image/png", "image"),
    (PNG, "foto.pdf", "image/png", "image"),  # the content wins over the name
    (JPEG, "foto.jpeg", "image/jpeg", "image"),
    (WEBP, "sticker.webp", "image/webp", "image"),
    (OPUS, "voz.ogg", "audio/ogg; codecs=opus", "audio"),
    (MP3, "jingle.mp3", "audio/mpeg", "audio"),
    (MP3_FRAME, "jingle.mp3", "audio/mpeg", "audio"),
    (ADTS, "som.aac", "audio/aac", "audio"),
    (AMR, "gravacao.amr", "audio/amr", "audio"),
    (M4A, "musica.m4a", "audio/mp4", "audio"),
    (MP4, "audio.m4a", "audio/mp4", "audio"),  # MP4 container with an audio extension
    (MP4, "video.mp4", "video/mp4", "video"),
    (GPP, "video.3gp", "video/3gpp", "video"),
    (PDF, "proposta.pdf", "application/pdf", "document"),
    (OLE, "contrato.doc", "application/msword", "document"),
    (OLE, "planilha.xls", "application/vnd.ms-excel", "document"),
    (DOCX, "contrato.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "document"),
    (XLSX, "precos.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "document"),
    (ODT, "carta.odt", "application/vnd.oasis.opendocument.text", "document"),
    (ZIP, "fotos.zip", "application/zip", "document"),
    (b"nome;email\nAna;a@b.c\n", "leads.CSV", "text/csv", "document"),
    ("Olá, ação!".encode(), "leia.txt", "text/plain", "document"),
])
def test_the_type_comes_from_the_content(admin, data, filename, mime, kind):
    item = media_library.upload_media(admin, filename, data, "application/octet-stream")
    assert (item["mime"], item["kind"], item["size"]) == (mime, kind, len(data))
    assert media_library.list_media(admin)[0]["id"] == item["id"]


@pytest.mark.parametrize("data, filename, mime", [
    (GIF, "anim.gif", "image/gif"),
    (EXE, "proposta.pdf", "application/pdf"),  # a program that calls itself a PDF
    (VORBIS, "musica.ogg", "audio/ogg"),  # WhatsApp plays only Opus in Ogg
    (MOV, "video.mov", "video/quicktime"),
    (OLE, "mensagem.msg", "application/vnd.ms-outlook"),
    (b"#!/bin/sh\nrm -rf /\n", "script.sh", "text/plain"),  # text, but not a .txt or .csv
    (b"abc\x00def", "dados.txt", "text/plain"),  # binary calling itself text
])
def test_types_whatsapp_does_not_take_are_refused(admin, data, filename, mime):
    with pytest.raises(InvalidInput) as caught:
        media_library.upload_media(admin, filename, data, mime)
    assert caught.value.key == "error.media_unsupported"
    assert media_library.list_media(admin) == []


def encrypted_zip() -> bytes:
    """An archive whose entries are password-protected (the "encrypted" flag bit set on each)."""
    plain = zipped("content.xml", mimetype="application/vnd.oasis.opendocument.text")
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = plain.find(signature)
        while at >= 0:
            plain = plain[:at + flags_at] + bytes([plain[at + flags_at] | 1]) + plain[at + flags_at + 1:]
            at = plain.find(signature, at + 4)
    return plain


@pytest.mark.parametrize("data", [encrypted_zip(), b"PK\x03\x04not really a zip", DOCX[:-30]])
def test_archives_that_cannot_be_read_are_refused_plainly(admin, data):
    with pytest.raises(InvalidInput) as caught:
        media_library.upload_media(admin, "pacote.zip", data, "application/zip")
    assert caught.value.key == "error.media_archive"
    assert error_text(caught.value).startswith("Não foi possível abrir esse arquivo compactado")
    assert media_library.list_media(admin) == []


def test_looking_into_an_archive_is_bounded(admin):
    # An OpenDocument "mimetype" entry of 200 MB of zeros: a few hundred KB on disk. Only its first bytes are read.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("mimetype", "w", force_zip64=True) as entry:
            for _ in range(200):
                entry.write(bytes(1024 * 1024))
    tracemalloc.start()
    try:
        item = media_library.upload_media(admin, "bomba.zip", buffer.getvalue(), "application/zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert item["mime"] == "application/zip"
    assert peak < 20 * 1024 * 1024, f"{peak} bytes to look into a {len(buffer.getvalue())}-byte archive"
    # So many entries that listing them would cost memory: a plain archive, not looked into.
    many = zipped(*(f"f/{n}" for n in range(10_001)), "word/document.xml")
    assert media_library.upload_media(admin, "muitos.zip", many, "application/zip")["mime"] == "application/zip"


def test_images_that_do_not_decode_are_refused(admin):
    broken = PNG[:-30]
    bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x9c\x40\x00\x00\x9c\x40\x08\x02\x00\x00\x00"
    for data in (broken, bomb):
        with pytest.raises(InvalidInput) as caught:
            media_library.upload_media(admin, "foto.png", data, "image/png")
        assert caught.value.key == "error.media_image"
        assert error_text(caught.value).startswith("Essa imagem não abre")
    assert media_library.list_media(admin) == []
    item = media_library.upload_media(admin, "foto.png", image("PNG", (1200, 900)))
    thumb = media_library.media_thumbnail(admin, item["id"])
    with Image.open(io.BytesIO(thumb)) as shown:
        assert shown.size == (320, 240)
    with pytest.raises(NotFound):
        media_library.media_thumbnail(make_actor(make_workspace("Outra"), "admin"), item["id"])


def test_text_without_extension_uses_the_declared_type(admin):
    assert media_library.upload_media(admin, "LEIAME", b"ola", "text/plain")["mime"] == "text/plain"
    with pytest.raises(InvalidInput):
        media_library.upload_media(admin, "LEIAME2", b"ola2", "application/x-sh")


def test_empty_and_oversized_files_are_refused(admin, small_limit):
    with pytest.raises(InvalidInput) as caught:
        media_library.upload_media(admin, "vazio.pdf", b"", "application/pdf")
    assert caught.value.key == "error.media_empty"
    with pytest.raises(InvalidInput) as caught:
        media_library.upload_media(admin, "grande.pdf", PDF + bytes(small_limit), "application/pdf")
    assert caught.value.key == "error.media_too_large"
    assert error_text(caught.value) == "Arquivo grande demais (máximo de 1 MB)."
    at_limit = PDF + bytes(small_limit - len(PDF))
    assert media_library.upload_media(admin, "no-limite.pdf", at_limit)["size"] == small_limit


def test_the_same_file_twice_is_one_item(admin, ws):
    first = media_library.upload_media(admin, "promo.png", PNG, "image/png")
    again = media_library.upload_media(admin, "outro-nome.png", PNG, "image/png")
    assert again == first  # same id, the first name stays
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Media)) == 1
        sha = s.get(Media, first["id"]).sha256
    assert media_path(get_settings().data_dir, sha).read_bytes() == PNG


def test_a_file_received_in_a_conversation_joins_the_library(admin, ws):
    media_library.upload_media(admin, "x.pdf", PDF)  # stores the bytes; then make it look like an inbound file
    with session_scope() as s:
        row = s.scalars(select(Media)).one()
        row.in_library, row.filename, row.mime = False, None, "application/octet-stream"
    assert media_library.list_media(admin) == []
    item = media_library.upload_media(admin, "proposta.pdf", PDF)
    assert (item["id"], item["filename"], item["mime"]) == (row.id, "proposta.pdf", "application/pdf")
    assert [m["id"] for m in media_library.list_media(admin)] == [row.id]


@pytest.mark.parametrize("given, kept", [
    ("../../etc/passwd.png", "passwd.png"),
    ("C:\\Users\\ana\\promo.png", "promo.png"),
    ("  .oculto.png ", "oculto.png"),
    ("a\x00b\nc<d>.png", "a_b_c_d_.png"),
    ("", "arquivo.png"),
    ("../", "arquivo.png"),
    ("x" * 300 + ".png", "x" * 116 + ".png"),
])
def test_file_names_are_sanitized(admin, given, kept):
    assert media_library.upload_media(admin, given, PNG)["filename"] == kept


def test_list_is_newest_first_and_filters_by_kind(admin):
    pdf = media_library.upload_media(admin, "a.pdf", PDF)
    png = media_library.upload_media(admin, "b.png", PNG)
    mp3 = media_library.upload_media(admin, "c.mp3", MP3)
    assert [m["id"] for m in media_library.list_media(admin)] == [mp3["id"], png["id"], pdf["id"]]
    assert [m["id"] for m in media_library.list_media(admin, "image")] == [png["id"]]
    assert [m["id"] for m in media_library.list_media(admin, "document")] == [pdf["id"]]
    assert media_library.list_media(admin, "video") == []
    item = media_library.list_media(admin)[0]
    assert set(item) == {"id", "filename", "mime", "size", "kind", "created_at"}
    with pytest.raises(InvalidInput):
        media_library.list_media(admin, "sticker")


def test_roles(ws, admin):
    supervisor = make_actor(ws, "supervisor")
    agent = make_actor(ws, "agent")
    item = media_library.upload_media(supervisor, "a.png", PNG)
    assert [m["id"] for m in media_library.list_media(agent)] == [item["id"]]  # agents may read
    for change in (lambda: media_library.upload_media(agent, "b.pdf", PDF),
                   lambda: media_library.rename_media(agent, item["id"], "novo.png"),
                   lambda: media_library.remove_media(agent, item["id"])):
        with pytest.raises(PermissionDenied):
            change()
    assert media_library.rename_media(supervisor, item["id"], "novo.png")["filename"] == "novo.png"


def test_workspaces_do_not_see_each_others_files(ws, admin):
    mine = media_library.upload_media(admin, "a.png", PNG)
    other = make_actor(make_workspace("Outra"), "admin")
    assert media_library.list_media(other) == []
    for call in (lambda: media_library.get_media(other, mine["id"]),
                 lambda: media_library.media_content(other, mine["id"]),
                 lambda: media_library.rename_media(other, mine["id"], "x.png"),
                 lambda: media_library.remove_media(other, mine["id"]),
                 lambda: media_library.media_usage(other, mine["id"])):
        with pytest.raises(NotFound):
            call()
    theirs = media_library.upload_media(other, "b.png", PNG)  # the same bytes: each workspace has its row
    assert theirs["id"] != mine["id"]
    assert [m["id"] for m in media_library.list_media(admin)] == [mine["id"]]


def test_rename_keeps_the_extension_and_refuses_blank(admin):
    item = media_library.upload_media(admin, "proposta.pdf", PDF)
    assert media_library.rename_media(admin, item["id"], "Proposta 2027")["filename"] == "Proposta 2027.pdf"
    assert media_library.rename_media(admin, item["id"], "../final.PDF")["filename"] == "final.PDF"
    with pytest.raises(InvalidInput) as caught:
        media_library.rename_media(admin, item["id"], "   ")
    assert caught.value.key == "error.media_filename"
    assert media_library.get_media(admin, item["id"])["filename"] == "final.PDF"


def sending(media_id, node_type="send_message") -> dict:
    """A definition whose send-message node sends ``media_id`` (``node_type`` "default" = canvas form)."""
    data = {"media": {"kind": "image", "media_id": media_id, "caption": "Nossa promoção"}}
    if node_type == "default":
        data["node_type"] = "send_message"
    return {"nodes": [{"id": "inicio", "type": "trigger", "position": {"x": 0, "y": 0},
                       "data": {"kind": "any_message"}},
                      {"id": "foto", "type": node_type, "position": {"x": 300, "y": 0}, "data": data},
                      {"id": "fim", "type": "end", "position": {"x": 600, "y": 0}, "data": {}}],
            "edges": [{"id": "e1", "source": "inicio", "target": "foto", "label": "next"},
                      {"id": "e2", "source": "foto", "target": "fim", "label": "next"}]}


def test_usage_lists_funnels_whose_draft_or_published_version_sends_it(ws, admin):
    item = media_library.upload_media(admin, "a.png", PNG)
    other_item = media_library.upload_media(admin, "b.pdf", PDF)
    funnels.create_funnel(admin, "Rascunho", sending(item["id"]))
    funnels.create_funnel(admin, "Canvas", sending(str(item["id"]), node_type="default"))
    published = funnels.create_funnel(admin, "Publicado", sending(item["id"]))
    funnels.publish(admin, published)
    funnels.save_draft(admin, published, sending(other_item["id"]))  # only the published version still sends it
    funnels.create_funnel(admin, "Outro", sending(other_item["id"]))
    funnels.create_funnel(admin, "Quebrado", {"nodes": [{"id": "x", "data": None}, "lixo"], "edges": []})
    other = make_actor(make_workspace("Outra"), "admin")
    funnels.create_funnel(other, "Alheio", sending(item["id"]))
    assert media_library.media_usage(admin, item["id"]) == ["Canvas", "Publicado", "Rascunho"]
    assert media_library.media_usage(admin, other_item["id"]) == ["Outro", "Publicado"]


def test_remove_takes_it_out_of_the_library_but_keeps_the_file(admin):
    item = media_library.upload_media(admin, "a.png", PNG)
    media_library.remove_media(admin, item["id"])
    assert media_library.list_media(admin) == []
    with session_scope() as s:
        row = s.get(Media, item["id"])
        assert row is not None and not row.in_library
        assert media_path(get_settings().data_dir, row.sha256).exists()  # sent messages still point at it
    with pytest.raises(NotFound):
        media_library.remove_media(admin, item["id"])
    assert media_library.upload_media(admin, "de-volta.png", PNG)["id"] == item["id"]
    assert media_library.media_content(admin, item["id"]) == PNG


def test_a_funnel_sends_a_library_item(ws, admin, r):
    inst = make_instance(ws)
    item = media_library.upload_media(admin, "promo.png", PNG)
    funnel_id = funnels.create_funnel(admin, "Promoção", sending(item["id"]))
    funnels.publish(admin, funnel_id)
    funnels.set_active(admin, funnel_id, True)
    runs.clear_cache()
    publish(inbound(inst, phone="5511955554444", text="oi"))
    run_jobs()
    [(_, fields)] = r.xrange(OUT_STREAM.format(inst))
    command = decode_outbound(fields)
    assert (command.type, command.text, command.to_phone) == ("image", "Nossa promoção", "5511955554444")
    assert (command.media.mime, command.media.size, command.media.filename) == ("image/png", len(PNG), "promo.png")
    with session_scope() as s:
        assert command.media.sha256 == s.get(Media, item["id"]).sha256
        message = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert (message.type, message.media_id, message.text) == ("image", item["id"], "Nossa promoção")
