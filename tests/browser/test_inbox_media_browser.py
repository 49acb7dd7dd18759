"""Sending an image from the inbox in a real browser: open the conversation, pick a file in *Mídia*, write a
caption, *Enviar mídia*; the image goes to the number's outbound stream with its caption."""

from __future__ import annotations

from playwright.sync_api import expect

from connector.contracts import OUT_STREAM, decode_outbound
from tests.browser.support import log_in, shot, wait_for
from tests.factories import inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from tests.test_media_library import PNG


def test_an_agent_sends_an_image_from_the_inbox(app_server, page, r, tmp_path):
    ws = make_workspace()
    inst = make_instance(ws)
    make_actor(ws, "agent", "agente@example.com")  # agents land on the inbox
    publish(inbound(inst, phone="5511988887777", text="Tem foto do produto?"))
    run_jobs()
    picture = tmp_path / "produto.png"
    picture.write_bytes(PNG)

    log_in(page, app_server, "agente@example.com")
    page.get_by_role("button", name="Abrir").first.click()
    expect(page.get_by_text("Tem foto do produto?")).to_be_visible()
    page.get_by_role("button", name="Mídia").click()
    page.locator('input[type="file"]').first.set_input_files(str(picture))
    expect(page.get_by_text("produto.png")).to_be_visible()
    # the chip shows a spinner until the upload reached the server: a click before that sends no file
    expect(page.get_by_test_id("stFileChipIconSpinner")).to_have_count(0, timeout=60_000)
    page.get_by_role("textbox", name="Legenda (opcional)").fill("Aqui está")
    page.get_by_role("button", name="Enviar mídia").click()
    commands = wait_for("the image in the outbound stream",
                        lambda: [decode_outbound(fields) for _, fields in r.xrange(OUT_STREAM.format(inst))])
    shot(page, "inbox_image_sent.png")
    [command] = commands
    assert (command.type, command.text, command.media.filename) == ("image", "Aqui está", "produto.png")
    assert command.media.size == len(PNG)
