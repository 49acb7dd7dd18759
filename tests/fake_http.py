"""A real local HTTP server for the "Chamada HTTP" tests: scripted answers, every request recorded.

``FakeHTTP().start()`` listens on 127.0.0.1 (a free port) in a thread. ``script(answers)`` queues answers taken
one per request (the last one repeats); an answer is a dict with ``status``, ``json`` or ``body`` (bytes),
``headers``, ``hold`` (a ``threading.Event`` the handler waits on before answering: a slow server without a
sleep) and ``redirect`` (a Location). ``requests`` holds what arrived: method, path, query, headers, body.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHTTP:
    requests: list[Received] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=lambda: [{"status": 200, "json": {"ok": True}}])
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)

    def start(self) -> FakeHTTP:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                fake.requests.append(Received(self.command, split.path, parse_qsl(split.query),
                                              {k.lower(): v for k, v in self.headers.items()}, body))
                answer = fake.answers.pop(0) if len(fake.answers) > 1 else fake.answers[0]
                if answer.get("hold") is not None:
                    answer["hold"].wait(30)
                if "redirect" in answer:
                    self.send_response(answer.get("status", 302))
                    self.send_header("Location", answer["redirect"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = answer["body"] if "body" in answer else json.dumps(answer.get("json", {})).encode()
                self.send_response(answer.get("status", 200))
                for name, value in (answer.get("headers") or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (the body cap)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
