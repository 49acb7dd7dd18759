"""Downloading an entry link's QR code in a real browser: the *Links de entrada* page, *QR code (PNG)* and
*QR code (SVG)*; the files are the images of the link's ``wa.me`` URL."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.support import log_in, shot
from tests.factories import make_actor, make_instance, make_workspace
from workbench.services import entry_links


def test_a_manager_downloads_a_links_qr_code(app_server, page, tmp_path):
    ws = make_workspace()
    inst = make_instance(ws)
    manager = make_actor(ws, "supervisor", "gerente@example.com")
    link = entry_links.create_link(manager, name="Bio do Instagram", instance_id=inst, source="Instagram",
                                   message="Oi! Quero saber mais", phone="5511988887777")

    log_in(page, app_server, "gerente@example.com")
    page.goto(app_server + "/links-de-entrada")
    expect(page.get_by_text("Bio do Instagram")).to_be_visible()
    expect(page.get_by_text(link["url"])).to_be_visible()
    with page.expect_download() as png:
        page.get_by_role("button", name="QR code (PNG)").click()
    saved = tmp_path / png.value.suggested_filename
    png.value.save_as(saved)
    assert saved.name == f"link-{link['code']}.png"
    assert saved.read_bytes() == entry_links.qr_code(link["url"], "png")
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as svg:
        page.get_by_role("button", name="QR code (SVG)").click()
    assert svg.value.suggested_filename == f"link-{link['code']}.svg"
    shot(page, "links_qr_download.png")
