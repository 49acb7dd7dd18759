"""The editor in a real browser: headless Chromium, driven over the Chrome DevTools Protocol.

Starts ``streamlit run app.py`` against the test database, logs in through the real form, opens the editor for a
funnel, checks that the canvas iframe drew the nodes, adds a node with the palette, drags a node on the canvas,
saves the draft, reloads the page and checks the canvas again (and the database). Screenshots go to /tmp.

Skipped when ``/usr/bin/chromium`` is missing (install it with ``apt-get install -y chromium``), so the CI run
does not depend on a browser. Every wait polls the page with a generous deadline; nothing asserts timing.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.core.examples import scheduling_funnel
from tests.factories import PASSWORD, make_actor, make_workspace
from workbench.services import funnels

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(tempfile.gettempdir())

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (/usr/bin/chromium): apt-get install -y chromium")

# JavaScript run in the page. The canvas is a component iframe served by the same Streamlit server, so its DOM
# is reachable from the top document.
CANVAS_NODES = """(() => {
  const frame = [...document.querySelectorAll('iframe')].find(f => (f.title || '').includes('streamlit_flow'));
  const doc = frame && frame.contentDocument;
  if (!doc) return null;
  return [...doc.querySelectorAll('.react-flow__node')].map(n => {
    const r = n.getBoundingClientRect(), f = frame.getBoundingClientRect();
    return {id: n.dataset.id, text: n.innerText, x: f.left + r.left + r.width / 2, y: f.top + r.top + r.height / 2};
  });
})()"""
HANDLE = """((nodeId, kind) => {
  const frame = [...document.querySelectorAll('iframe')].find(f => (f.title || '').includes('streamlit_flow'));
  const node = frame.contentDocument.querySelector(`.react-flow__node[data-id="${nodeId}"]`);
  const handle = node && node.querySelector(`.react-flow__handle.${kind}`);
  if (!handle) return null;
  const r = handle.getBoundingClientRect(), f = frame.getBoundingClientRect();
  return [f.left + r.left + r.width / 2, f.top + r.top + r.height / 2];
})(%s, %s)"""
CLICK_BUTTON = """((label) => {
  const button = [...document.querySelectorAll('button')].find(b => b.innerText.trim().endsWith(label));
  if (!button) return false;
  button.click();
  return true;
})(%s)"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what: str, probe: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except (OSError, RuntimeError):  # not up yet, or the page navigated mid-evaluation
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


class DevTools:
    """A minimal CDP client over one page target's websocket (websockets ships with Streamlit)."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(url, max_size=64 * 1024 * 1024, open_timeout=30)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events arriving meanwhile are dropped)."""
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page and return its JSON value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def screenshot(self, name: str) -> Path:
        path = SHOTS / name
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def type_into(self, label: str, text: str) -> None:
        """Focus the input with that aria-label and type, as a user would (React sees real input events)."""
        assert self.js(f"(() => {{ const i = document.querySelector('input[aria-label={json.dumps(label)}]');"
                       " if (!i) return false; i.focus(); i.select(); return true; })()")
        self.call("Input.insertText", text=text)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=start[0], y=start[1])
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=start[0], y=start[1], button="left",
                  clickCount=1)
        for i in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * i / steps
            y = start[1] + (end[1] - start[1]) * i / steps
            self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
            time.sleep(0.03)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=end[0], y=end[1], button="left", clickCount=1)

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def app_server(servers, engine, r) -> Iterator[str]:
    """``streamlit run app.py`` on a free port, on the test database and Redis."""
    port = _free_port()
    env = {**os.environ, **servers, "PYTHONPATH": str(ROOT)}
    streamlit = Path(sys.executable).with_name("streamlit")
    log = tempfile.NamedTemporaryFile(prefix="editor-streamlit-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(streamlit), "run", "app.py", "--server.headless=true", f"--server.port={port}",
         "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("the Streamlit server", lambda: urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).status
              == 200, timeout=90)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def browser() -> Iterator[DevTools]:
    """Headless Chromium with remote debugging; yields a DevTools client on its first tab."""
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="editor-chromium-")
    process = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--no-default-browser-check", f"--remote-debugging-port={port}",
         f"--user-data-dir={profile}", "--window-size=1600,1400", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def page_target() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
            targets = json.load(response)
        return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

    devtools = None
    try:
        devtools = DevTools(_wait("Chromium's DevTools endpoint", page_target, timeout=60))
        devtools.call("Page.enable")
        devtools.call("Runtime.enable")
        yield devtools
    finally:
        if devtools is not None:
            devtools.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _body_text(devtools: DevTools) -> str:
    return devtools.js("document.body ? document.body.innerText : ''") or ""


def _canvas_nodes(devtools: DevTools, count: int) -> list[dict[str, Any]]:
    seen: list[Any] = []

    def probe() -> list[dict[str, Any]] | None:
        nodes = devtools.js(CANVAS_NODES)
        seen[:] = [nodes]
        # the nodes exist a moment before their labels are drawn
        return nodes if nodes and len(nodes) == count and all(n["text"].strip() for n in nodes) else None

    try:
        return _wait(f"the canvas to draw {count} nodes", probe, timeout=90)
    except pytest.fail.Exception:
        devtools.screenshot("editor_failed.png")
        raise AssertionError(f"canvas nodes seen last: {seen}") from None


def test_editor_draws_saves_and_survives_a_reload(app_server, browser):
    ws = make_workspace()
    admin = make_actor(ws, email="marketing@example.com")
    funnel_id = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    expected = len(scheduling_funnel()["nodes"])

    # Log in through the real form; the login cookie then carries the session across the reload.
    browser.call("Page.navigate", url=app_server + "/")
    _wait("the login form", lambda: browser.js("!!document.querySelector('input[aria-label=\"Senha\"]')"))
    browser.type_into("E-mail", "marketing@example.com")
    browser.type_into("Senha", PASSWORD)
    assert browser.js(CLICK_BUTTON % json.dumps("Entrar"))
    _wait("the logged-in panel", lambda: "Sair" in _body_text(browser))

    browser.call("Page.navigate", url=f"{app_server}/editor?funil={funnel_id}")
    _wait("the editor", lambda: "Editor de funil" in _body_text(browser))
    nodes = _canvas_nodes(browser, expected)
    texts = " ".join(n["text"] for n in nodes)
    assert "Gatilho" in texts and "Aguardar resposta" in texts and "Enviar mensagem" in texts
    browser.screenshot("editor_opened.png")

    # Python -> browser: a node added with the palette (default type: the first in the registry) appears.
    assert browser.js(CLICK_BUTTON % json.dumps("Adicionar"))
    nodes = _canvas_nodes(browser, expected + 1)
    assert "trigger_1" in {n["id"] for n in nodes}

    # Browser -> Python: drag a node; the move reaches the draft without another push.
    email = next(n for n in nodes if n["id"] == "pede_email")
    browser.drag((email["x"], email["y"]), (email["x"], email["y"] + 160))
    _wait("the drag to reach Python", lambda: _moved(browser, email), timeout=30)

    # Draw an edge from a node's source handle to another node's target handle; Python labels it.
    start = browser.js(HANDLE % (json.dumps("sem_nome"), json.dumps("source")))
    end = browser.js(HANDLE % (json.dumps("fim"), json.dumps("target")))
    assert start and end
    browser.drag(tuple(start), tuple(end))
    _wait("the drawn edge to come back labelled", lambda: "sem_nome → fim" in _edge_labels(browser), timeout=30)
    browser.screenshot("editor_drawn.png")

    # The confirmation is a one-run message (a canvas event right after the click redraws the page without it),
    # so the database is what is polled; a click that lands while the page is redrawing is simply repeated.
    clicked_at = [0.0]

    def saved() -> dict[str, Any] | None:
        draft = funnels.get_funnel(admin, funnel_id)["draft"]
        if "trigger_1" in {n["id"] for n in draft["nodes"]}:
            return draft
        if time.monotonic() - clicked_at[0] > 5:
            assert browser.js(CLICK_BUTTON % json.dumps("Salvar rascunho"))
            clicked_at[0] = time.monotonic()
        return None

    draft = _wait("the draft to be saved", saved)
    browser.screenshot("editor_saved.png")
    assert "trigger_1" in {n["id"] for n in draft["nodes"]}
    stored = next(n for n in draft["nodes"] if n["id"] == "pede_email")["position"]
    original = next(n for n in scheduling_funnel()["nodes"] if n["id"] == "pede_email")["position"]
    assert stored["y"] > original["y"]
    drawn = next(e for e in draft["edges"] if e["source"] == "sem_nome")
    assert (drawn["id"], drawn["target"], drawn["label"]) == ("st-flow-edge_sem_nome-fim", "fim", "next")

    browser.call("Page.reload", ignoreCache=True)
    _wait("the editor after the reload", lambda: "Editor de funil" in _body_text(browser), timeout=90)
    nodes = _canvas_nodes(browser, expected + 1)
    assert {"trigger_1", "pede_email", "inicio"} <= {n["id"] for n in nodes}
    browser.screenshot("editor_reloaded.png")


def _moved(devtools: DevTools, before: dict[str, Any]) -> bool:
    """The node was drawn lower than before (the browser kept the drag)."""
    after = next((n for n in devtools.js(CANVAS_NODES) or [] if n["id"] == before["id"]), None)
    return bool(after and after["y"] > before["y"] + 20)


def _edge_labels(devtools: DevTools) -> str:
    """The canvas' edges as "source → target" lines, read back from the iframe (React Flow's edge ids)."""
    script = """(() => {
      const frame = [...document.querySelectorAll('iframe')].find(f => (f.title || '').includes('streamlit_flow'));
      return [...frame.contentDocument.querySelectorAll('.react-flow__edge')]
        .map(e => (e.getAttribute('data-testid') || '').replace('rf__edge-st-flow-edge_', '').replace('-', ' → '))
        .join('\\n');
    })()"""
    return devtools.js(script) or ""
