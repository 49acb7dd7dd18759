"""A real local OpenAI-compatible HTTP server with scripted answers, for tests and benchmarks.

MINIMAL VERSION written by the AI-ENGINE helper against the agreed interface (the AI-PROVIDERS helper owns
this file): fixture ``fake_llm`` -> ``FakeLLM`` with ``.url`` (the base URL, ending in ``/v1``) and
``.script(list_of_answers)``. Each POST to ``/v1/chat/completions`` takes the next answer of the script (the last
one repeats when the script runs out; ``default`` when none was given). An answer is a dict:

- ``{"text": "..."}``: a plain assistant message;
- ``{"tool_calls": [{"name": ..., "arguments": {...} | "raw text"}], "text": optional}``;
- ``{"json": {...}}``: the content is that object as JSON (JSON-mode answers);
- ``{"status": 429 | 500 | ...}``: an error status with an OpenAI-style error body;
- ``"delay": seconds`` in any of them: wait before answering (slow answers, timeouts).

Every request is kept in ``.requests`` (headers and JSON body) so tests can check what the model was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class _Server(ThreadingHTTPServer):
    # many clients at once (the benchmark's 50 turns): socketserver's default backlog of 5 drops connections
    request_queue_size = 256
    daemon_threads = True


class FakeLLM:
    """The server's state: the script, the requests received, and the address."""

    def __init__(self, default: dict[str, Any] | None = None, model: str = "fake-model") -> None:
        self.default = default or {"text": "Certo!"}
        self.model = model
        self.answers: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.guard = threading.Lock()
        self.served = 0
        handler = _handler(self)
        self.server = _Server(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, answers: list[dict[str, Any]]) -> None:
        """Answer the next requests with ``answers`` in order (the last one repeats)."""
        with self.guard:
            self.answers = list(answers)
            self.served = 0

    def next_answer(self) -> dict[str, Any]:
        with self.guard:
            if not self.answers:
                return self.default
            answer = self.answers[min(self.served, len(self.answers) - 1)]
            self.served += 1
            return answer

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


def _completion(fake: FakeLLM, answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.get("text")}
    if "json" in answer:
        message["content"] = json.dumps(answer["json"], ensure_ascii=False)
    if answer.get("tool_calls"):
        message["tool_calls"] = [
            {"id": f"call_{n}", "type": "function",
             "function": {"name": call["name"],
                          "arguments": call["arguments"] if isinstance(call["arguments"], str)
                          else json.dumps(call["arguments"], ensure_ascii=False)}}
            for n, call in enumerate(answer["tool_calls"])]
    prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4 + 1
    completion = answer.get("completion_tokens", 12)
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": answer.get("model", fake.model),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if answer.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with fake.guard:
                fake.requests.append({"headers": dict(self.headers), "body": body})
            answer = fake.next_answer()
            if answer.get("delay"):
                time.sleep(answer["delay"])
            status = answer.get("status", 200)
            if status != 200:
                self._send(status, {"error": {"message": f"scripted {status}", "type": "fake", "code": status}})
                return
            self._send(200, _completion(fake, answer, body))

    return Handler


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fresh fake provider for one test."""
    fake = FakeLLM()
    yield fake
    fake.close()
