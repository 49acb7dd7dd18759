"""The funnel editor in a real browser, on the demo's scheduling funnel.

Opening it: the boxes are drawn at their normal size (not shrunk to fit the whole funnel), the trigger is in
view, and the canvas takes the page's width and most of the window's height; "Ver o funil inteiro" then fits
every box in, and editing keeps that view. Editing it: a node added with the palette appears, a drag and a
drawn edge reach the draft, "Salvar rascunho" stores it, and a reload draws it again. Screenshots go to the
temporary directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from engine.core.examples import scheduling_funnel
from tests.browser.support import WINDOW, click_button, log_in, shot, wait_for
from tests.factories import make_actor, make_workspace
from workbench.services import funnels

CANVAS = 'iframe[title*="streamlit_flow"]'
NODES = len(scheduling_funnel()["nodes"])
# Inside the canvas iframe: each node's box and text, and the pane (the visible part of the canvas), in the
# iframe's pixels. getBoundingClientRect includes the scale of React Flow's viewport transform.
READ_CANVAS = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, top: r.top, right: r.right,
                                                                   bottom: r.bottom, height: r.height}; };
  const viewport = document.querySelector('.react-flow__viewport');
  return {
    pane: box(document.querySelector('.react-flow')),
    scale: new DOMMatrixReadOnly(getComputedStyle(viewport).transform).a,
    nodes: Object.fromEntries([...document.querySelectorAll('.react-flow__node')].map(n => {
      const label = n.querySelector('strong');  // the type's name, in bold on the box's first line
      return [n.dataset.id, {box: box(n), text: n.innerText, label: label && box(label),
                             font: label && parseFloat(getComputedStyle(label).fontSize)}];
    })),
  };
}"""
# The width the page gives its content (Streamlit's main block, without its padding).
CONTENT_WIDTH = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]'), style = getComputedStyle(main);
  return main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
}"""


def open_editor(page: Page, base: str, funnel_id: int, count: int) -> dict[str, Any]:
    """Go to the editor of ``funnel_id``; the canvas (``read``) once it draws ``count`` labelled boxes."""
    page.goto(f"{base}/editor?funil={funnel_id}")
    return wait_drawn(page, count)


def wait_drawn(page: Page, count: int) -> dict[str, Any]:
    """The canvas once it shows ``count`` boxes, each with its text (drawn a moment after the box)."""
    return wait_canvas(page, f"the canvas to draw {count} boxes", lambda canvas: len(canvas["nodes"]) == count
                       and all(n["text"].strip() for n in canvas["nodes"].values()))


def wait_canvas(page: Page, what: str, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the canvas (``read``) until ``condition`` holds for it, and return it."""

    def probe() -> dict[str, Any] | None:
        try:
            canvas = read(page)
        except PlaywrightError:  # Streamlit redrew the page and replaced the canvas' iframe meanwhile
            return None
        return canvas if condition(canvas) else None

    return wait_for(what, probe)


def read(page: Page) -> dict[str, Any]:
    """The canvas as READ_CANVAS measures it (the iframe is looked up anew: Streamlit may replace it)."""
    return page.frame_locator(CANVAS).locator("body").evaluate(READ_CANVAS)


def inside(box: dict[str, float], pane: dict[str, float]) -> bool:
    return (box["left"] >= pane["left"] and box["right"] <= pane["right"] and box["top"] >= pane["top"]
            and box["bottom"] <= pane["bottom"])


def test_scheduling_funnel_opens_readable_on_its_trigger(app_server, page):
    ws = make_workspace()
    make_actor(ws, email="marketing@example.com")
    funnel_id = funnels.create_funnel(make_actor(ws), "Agendamento", scheduling_funnel())
    log_in(page, app_server, "marketing@example.com")
    canvas = open_editor(page, app_server, funnel_id, NODES)
    shot(page, "editor_readable.png")
    trigger = canvas["nodes"]["inicio"]
    assert "Gatilho" in trigger["text"]
    # The box text is drawn at its normal size (12 px type at zoom 1), not at the third or so of it that fitting
    # the whole funnel into the canvas gives.
    assert trigger["font"] * canvas["scale"] >= 12
    assert trigger["label"]["height"] >= 12
    assert inside(trigger["box"], canvas["pane"])
    # The canvas spans the page's content width and most of a laptop window's height.
    frame_box = page.locator(CANVAS).bounding_box()
    content_width = page.evaluate(CONTENT_WIDTH)
    assert frame_box["width"] >= 0.95 * content_width
    assert frame_box["height"] >= 0.7 * WINDOW["height"]

    # "Ver o funil inteiro" fits every box into the canvas (zooming out to do it).
    click_button(page, "Ver o funil inteiro")
    fitted = wait_canvas(page, "every box to fit in the canvas", lambda canvas: canvas["scale"] < 1 and all(
        inside(n["box"], canvas["pane"]) for n in canvas["nodes"].values()))
    shot(page, "editor_fitted.png")
    # Editing keeps the view: the canvas takes the new node without zooming back.
    click_button(page, "Adicionar")
    assert wait_drawn(page, NODES + 1)["scale"] == pytest.approx(fitted["scale"])


def test_editor_draws_saves_and_survives_a_reload(app_server, page):
    ws = make_workspace()
    admin = make_actor(ws, email="marketing@example.com")
    funnel_id = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    log_in(page, app_server, "marketing@example.com")
    canvas = open_editor(page, app_server, funnel_id, NODES)
    texts = " ".join(n["text"] for n in canvas["nodes"].values())
    assert "Gatilho" in texts and "Aguardar resposta" in texts and "Enviar mensagem" in texts

    # Python -> browser: a node added with the palette (default type: the first in the registry) appears.
    click_button(page, "Adicionar")
    assert "trigger_1" in wait_drawn(page, NODES + 1)["nodes"]

    # Browser -> Python: drag a node below the others (the canvas in view first, so the mouse can reach it).
    page.locator(CANVAS).evaluate("frame => frame.scrollIntoView({block: 'center'})")
    canvas = page.frame_locator(CANVAS)
    email = canvas.locator('.react-flow__node[data-id="pede_email"]')
    before = email.bounding_box()
    drag(page, centre(before), (centre(before)[0], centre(before)[1] + 320))
    wait_for("the drag to stay", lambda: email.bounding_box()["y"] > before["y"] + 200)

    # Draw an edge from a node's source handle to another node's target handle; Python labels it.
    start = canvas.locator('.react-flow__node[data-id="sem_nome"] .react-flow__handle.source')
    end = canvas.locator('.react-flow__node[data-id="pede_nome"] .react-flow__handle.target')
    drag(page, centre(start.bounding_box()), centre(end.bounding_box()))
    expect(canvas.locator('[data-testid="rf__edge-st-flow-edge_sem_nome-pede_nome"]')).to_contain_text("next")
    shot(page, "editor_drawn.png")

    # The confirmation is a one-run message (a canvas event right after the click redraws the page without it),
    # so the database is what is polled; a click that lands while the page is redrawing is simply repeated.
    clicked_at = [0.0]

    def saved() -> dict[str, Any] | None:
        draft = funnels.get_funnel(admin, funnel_id)["draft"]
        if "trigger_1" in {n["id"] for n in draft["nodes"]}:
            return draft
        if time.monotonic() - clicked_at[0] > 5:
            click_button(page, "Salvar rascunho")
            clicked_at[0] = time.monotonic()
        return None

    draft = wait_for("the draft to be saved", saved)
    stored = next(n for n in draft["nodes"] if n["id"] == "pede_email")["position"]
    original = next(n for n in scheduling_funnel()["nodes"] if n["id"] == "pede_email")["position"]
    assert stored["y"] > original["y"]
    drawn_edge = next(e for e in draft["edges"] if e["source"] == "sem_nome")
    assert (drawn_edge["id"], drawn_edge["target"], drawn_edge["label"]) == (
        "st-flow-edge_sem_nome-pede_nome", "pede_nome", "next")

    page.reload()
    assert {"trigger_1", "pede_email", "inicio"} <= set(wait_drawn(page, NODES + 1)["nodes"])
    shot(page, "editor_reloaded.png")


def centre(box: dict[str, float] | None) -> tuple[float, float]:
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press, move in steps and release, as a hand would (React Flow needs the intermediate moves)."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()

