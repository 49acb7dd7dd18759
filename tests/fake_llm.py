"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers, for tests and benchmarks.

``fake_llm`` (a pytest fixture, imported by ``tests/conftest.py``) starts one per test (``FakeLLM()`` starts one
anywhere else; ``close()`` stops it)::

    fake_llm.script([
        {"tool_calls": [{"name": "salvar", "arguments": {"email": "a@b.com"}}]},   # a tool call
        {"tool_calls": [{"name": "salvar", "arguments": "{not json"}]},             # malformed (a string goes as is)
        {"json": {"reply": "Oi", "tool_calls": []}},                              # content = that JSON
        {"text": "Olá!"},                                                         # plain text
        {"status": 429}, {"status": 500},                                         # errors (JSON error body)
        {"text": "tarde", "delay": 2.0},                                          # answers after 2 s
        lambda request: {"text": request["messages"][-1]["content"]},            # computed from the request
    ])

Each request to ``/v1/chat/completions`` takes the next scripted answer; a new ``script`` replaces what is left of
the previous one, and when the script runs out its last answer repeats (a provider that keeps failing is
``script([{"status": 500}])``). With no script the server answers ``fake_llm.default`` (plain text "ok").
``fake_llm.no_tools = True`` makes it refuse requests that carry ``tools`` with a 400, like a server without tool
calling. Answer keys: ``text``, ``tool_calls``, ``json``, ``status`` (and ``body``), ``delay`` (seconds),
``model`` (else the request's), ``usage`` (prompt, completion) or ``completion_tokens``, ``finish_reason``.

``fake_llm.requests`` lists what it got: ``{"method", "path", "headers", "body"}`` (header names lower case, body
parsed from JSON), so tests can check where the lead's text went and that the key travelled only in the
``authorization`` header. ``fake_llm.url`` is the base URL to configure (``http://127.0.0.1:<port>/v1``);
``fake_llm.models`` the ids ``/v1/models`` lists; ``fake_llm.max_in_flight`` the most chat requests it answered at
once.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Answer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class FakeLLM:
    """The server's state: the script, what it received, the model list."""

    def __init__(self, default: Answer | None = None, model: str = "fake-model") -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._last: Answer | None = None  # repeats once the script ran out
        self._stopping = threading.Event()
        self._connections: set[Any] = set()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0  # chat requests being answered now
        self.max_in_flight = 0  # the most at once so far
        self.model = model
        self.models: list[str] = [model, f"{model}-mini"]
        self.default: Answer = default or {"text": "ok"}
        self.no_tools = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread.start()

    def start(self) -> FakeLLM:
        """The server (it serves from construction; kept for ``FakeLLM().start()``)."""
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections (a stopped server is down for every client)."""
        self._stopping.set()  # cuts scripted delays short
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    close = stop

    def script(self, answers: list[Answer]) -> None:
        """Answer the next chat requests with ``answers`` in order, the last one repeating once they ran out."""
        with self._lock:
            self._script = deque(answers)
            self._last = None

    def chat_requests(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests received so far."""
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def _next(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._script:
                answer = self._last = self._script.popleft()
            else:
                answer = self._last if self._last is not None else self.default
        return answer(body) if callable(answer) else answer

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (buffered, flushed after each request) with Nagle off: written apart,
    # they meet the client's delayed ACK and every answer takes 40 ms more.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in test output
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    @property
    def fake(self) -> FakeLLM:
        return self.server.fake  # type: ignore[attr-defined]

    def _record(self, body: Any) -> None:
        with self.fake._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.fake.requests.append({"method": self.command, "path": self.path, "headers": headers, "body": body})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"}
                                                        for m in self.fake.models]})
        else:
            self._send(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        self._record(body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        if self.fake.no_tools and body.get("tools"):
            self._send(400, {"error": {"message": "tools are not supported", "type": "invalid_request_error"}})
            return
        answer = self.fake._next(body)
        with self.fake._lock:
            self.fake.in_flight += 1
            self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake.in_flight)
        try:
            if answer.get("delay"):
                self.fake._sleep(float(answer["delay"]))
            if answer.get("status", 200) != 200:
                self._send(answer["status"], answer.get("body") or {
                    "error": {"message": f"scripted {answer['status']}", "type": "server_error"}})
                return
            self._send(200, completion(body, answer))
        finally:
            with self.fake._lock:
                self.fake.in_flight -= 1


def completion(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A chat completion object for a scripted answer."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if "json" in answer:
        message["content"] = json.dumps(answer["json"], ensure_ascii=False)
    elif "text" in answer:
        message["content"] = answer["text"]
    calls = []
    for index, call in enumerate(answer.get("tool_calls") or []):
        arguments = call.get("arguments", {})
        calls.append({"id": call.get("id", f"call_{index}"), "type": "function",
                      "function": {"name": call["name"],
                                   "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}})
    if calls:
        message["tool_calls"] = calls
    prompt, completion_tokens = answer.get("usage", (11, answer.get("completion_tokens", 7)))
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": answer.get("model") or request.get("model") or "fake-model",
        "choices": [{"index": 0, "message": message,
                     "finish_reason": answer.get("finish_reason") or ("tool_calls" if calls else "stop")}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                  "total_tokens": prompt + completion_tokens},
    }


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A scripted OpenAI-compatible server on 127.0.0.1 for one test."""
    server = FakeLLM()
    try:
        yield server
    finally:
        server.stop()
